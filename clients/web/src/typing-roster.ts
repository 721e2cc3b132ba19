// Who is typing, with expiry, without timers or I/O (what TypingIndicator.watch feeds).

export interface TypingMessage {
  user: string
  typing: boolean
  /** How long a reader should show this user typing without a newer message. */
  ttlMs?: number
}

export class TypingRoster {
  private readonly expiries = new Map<string, number>()

  constructor (private readonly defaultTtlMs = 6000, private readonly maxTtlMs = 30_000) {}

  /** Applies a message; true when the set of typists changed. */
  apply (message: TypingMessage, now: number): boolean {
    const had = this.expiries.has(message.user)
    if (!message.typing) return this.expiries.delete(message.user)
    const ttl = Math.min(message.ttlMs ?? this.defaultTtlMs, this.maxTtlMs)
    this.expiries.set(message.user, now + ttl)
    return !had
  }

  /** Removes typists whose time is up; true when any was removed. */
  expire (now: number): boolean {
    let changed = false
    for (const [user, until] of this.expiries) {
      if (until <= now) {
        this.expiries.delete(user)
        changed = true
      }
    }
    return changed
  }

  users (): string[] {
    return [...this.expiries.keys()].sort()
  }

  nextExpiry (): number | null {
    return this.expiries.size === 0 ? null : Math.min(...this.expiries.values())
  }
}
