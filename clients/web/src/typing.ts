// "Is typing" indicators: ephemeral QoS 0 messages, sent at most once per throttle period
// while the user types, and a stop when they pause. Readers expire each typist by itself, so
// a lost stop (a closed tab) never leaves someone typing forever.
import type { RealtimeClient, Unsubscribe } from './client.js'
import { RealtimeError } from './errors.js'
import { TypingRoster, type TypingMessage } from './typing-roster.js'

export type { TypingMessage }

export interface TypingOptions {
  /** Default: the client's user. */
  user?: string
  /** At most one "typing" message per this many ms. Default 2000. */
  throttleMs?: number
  /** Send "stopped" after this long without notify(). Default 3000. */
  idleMs?: number
  /** How long readers show the user typing after a message. Default 6000. */
  ttlMs?: number
}

export class TypingIndicator {
  private readonly user: string
  private lastSentAt = -Infinity
  private announced = false
  private idleTimer: ReturnType<typeof setTimeout> | undefined

  constructor (private readonly client: RealtimeClient, private readonly topic: string, private readonly options: TypingOptions = {}) {
    const user = options.user ?? client.user
    if (user === null) throw new RealtimeError('publish-failed', 'typing indicator: no user (pass options.user, or connect with a token or user)')
    this.user = user
  }

  /** Call on every keystroke. */
  notify (): void {
    const now = Date.now()
    clearTimeout(this.idleTimer)
    this.idleTimer = setTimeout(() => this.stop(), this.options.idleMs ?? 3000)
    if (now - this.lastSentAt < (this.options.throttleMs ?? 2000)) return
    this.lastSentAt = now
    this.announced = true
    this.send({ user: this.user, typing: true, ttlMs: this.options.ttlMs ?? 6000 })
  }

  /** Call when the message was sent or the input cleared. */
  stop (): void {
    clearTimeout(this.idleTimer)
    if (!this.announced) return
    this.announced = false
    this.lastSentAt = -Infinity
    this.send({ user: this.user, typing: false })
  }

  /** Calls `onChange` with the other users typing whenever that changes. */
  async watch (onChange: (users: string[]) => void): Promise<Unsubscribe> {
    const roster = new TypingRoster(this.options.ttlMs ?? 6000)
    let timer: ReturnType<typeof setTimeout> | undefined
    const schedule = (): void => {
      clearTimeout(timer)
      const next = roster.nextExpiry()
      if (next === null) return
      timer = setTimeout(() => {
        if (roster.expire(Date.now())) onChange(roster.users())
        schedule()
      }, Math.max(0, next - Date.now()))
    }
    const unsubscribe = await this.client.subscribe(this.topic, (data) => {
      if (!isTypingMessage(data) || data.user === this.user) return
      if (roster.apply(data, Date.now())) onChange(roster.users())
      schedule()
    }, { qos: 0 })
    return async () => {
      clearTimeout(timer)
      await unsubscribe()
    }
  }

  private send (message: TypingMessage): void {
    // Ephemeral: not queued while offline, and a failure needs no retry.
    this.client.publish(this.topic, message, { qos: 0, queue: false }).catch(() => {})
  }
}

function isTypingMessage (data: unknown): data is TypingMessage {
  if (typeof data !== 'object' || data === null) return false
  const { user, typing, ttlMs } = data as Record<string, unknown>
  return typeof user === 'string' && typeof typing === 'boolean' && (ttlMs === undefined || (typeof ttlMs === 'number' && ttlMs > 0))
}
