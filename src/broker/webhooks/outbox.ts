// Where webhook events wait until their endpoint acknowledged them: the contract, and the
// in-memory outbox of an embedded (Redis-less) broker, bounded per endpoint and counted.
// redis-outbox.ts is the durable, cluster-wide one.

/** An event waiting for its endpoint, in the order it happened. */
export interface OutboxEntry {
  /** The outbox's own id of the entry (not the event id). */
  id: string
  /** The event, as JSON. */
  event: string
  /** When it was queued (ms): an entry undelivered for webhooks.deadLetterAfterMs is dead-lettered. */
  enqueuedAt: number
}

export interface DeadLetter extends OutboxEntry {
  deadAt: number
  /** The last failure, e.g. "HTTP 500" or "timeout". */
  reason: string
}

export interface WebhookOutbox {
  /** Queues an event for `endpoint`; false when its backlog is full (the event is dropped). */
  append: (endpoint: string, event: string) => boolean
  /**
   * Whether this node sends `endpoint`'s events now. One sender per endpoint at a time keeps
   * its events in order; another node takes over (with the entries left unacknowledged) when
   * the sender dies.
   */
  acquire: (endpoint: string) => Promise<boolean>
  /** The oldest entries not acknowledged, at most `max`; the sender takes more only after ack or deadLetter. */
  take: (endpoint: string, max: number) => Promise<OutboxEntry[]>
  ack: (endpoint: string, entries: readonly OutboxEntry[]) => Promise<void>
  deadLetter: (endpoint: string, entries: readonly OutboxEntry[], reason: string) => Promise<void>
  /** The oldest dead letters, at most `max`. */
  deadLetters: (endpoint: string, max: number) => Promise<DeadLetter[]>
  /** Queues dead letters again (those with the given entry ids, or all); resolves with how many. */
  replay: (endpoint: string, ids: readonly string[] | null) => Promise<number>
  /** Resolves once every event appended so far is stored; null when they already are. */
  written: () => Promise<void> | null
  /** Events waiting for `endpoint` (the last known count, for the gauge). */
  pending: (endpoint: string) => number
  /** Resolves when events were appended for `endpoint` on this node (or after `ms`). */
  appended: (endpoint: string, ms: number) => Promise<void>
  close: () => Promise<void>
}

/** A FIFO queue that takes from its head without shifting the array each time. */
class Fifo<T> {
  private items: T[] = []
  private head = 0

  get length (): number { return this.items.length - this.head }
  push (item: T): void { this.items.push(item) }
  peek (max: number): T[] { return this.items.slice(this.head, this.head + max) }
  drop (count: number): void {
    this.head += count
    // compacted once the dead half is large: amortized O(1) per item
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }
}

/** Wakes a waiting sender when an event is appended. */
export class AppendSignal {
  private readonly waiters = new Map<string, () => void>()

  notify (endpoint: string): void {
    const wake = this.waiters.get(endpoint)
    if (wake === undefined) return
    this.waiters.delete(endpoint)
    wake()
  }

  wait (endpoint: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiters.delete(endpoint); resolve() }, ms)
      this.waiters.set(endpoint, () => { clearTimeout(timer); resolve() })
    })
  }

  close (): void {
    for (const wake of this.waiters.values()) wake()
    this.waiters.clear()
  }
}

/** The outbox of a broker without Redis: lost with the process, bounded, one sender (this node). */
export class MemoryOutbox implements WebhookOutbox {
  private readonly queues = new Map<string, Fifo<OutboxEntry>>()
  private readonly dead = new Map<string, DeadLetter[]>()
  private readonly signal = new AppendSignal()
  private sequence = 0

  constructor (private readonly maxPending: number, private readonly maxDeadLetters: number) {}

  private queue (endpoint: string): Fifo<OutboxEntry> {
    let queue = this.queues.get(endpoint)
    if (queue === undefined) this.queues.set(endpoint, queue = new Fifo())
    return queue
  }

  append (endpoint: string, event: string): boolean {
    const queue = this.queue(endpoint)
    if (queue.length >= this.maxPending) return false
    queue.push({ id: String(++this.sequence), event, enqueuedAt: Date.now() })
    this.signal.notify(endpoint)
    return true
  }

  async acquire (): Promise<boolean> { return true }

  async take (endpoint: string, max: number): Promise<OutboxEntry[]> {
    return this.queue(endpoint).peek(max)
  }

  async ack (endpoint: string, entries: readonly OutboxEntry[]): Promise<void> {
    this.queue(endpoint).drop(entries.length)
  }

  async deadLetter (endpoint: string, entries: readonly OutboxEntry[], reason: string): Promise<void> {
    await this.ack(endpoint, entries)
    const dead = this.dead.get(endpoint) ?? []
    this.dead.set(endpoint, dead)
    const deadAt = Date.now()
    for (const entry of entries) dead.push({ ...entry, deadAt, reason })
    if (dead.length > this.maxDeadLetters) dead.splice(0, dead.length - this.maxDeadLetters)
  }

  async deadLetters (endpoint: string, max: number): Promise<DeadLetter[]> {
    return (this.dead.get(endpoint) ?? []).slice(0, max)
  }

  async replay (endpoint: string, ids: readonly string[] | null): Promise<number> {
    const dead = this.dead.get(endpoint) ?? []
    const wanted = ids === null ? null : new Set(ids)
    const chosen = dead.filter((entry) => wanted === null || wanted.has(entry.id))
    this.dead.set(endpoint, dead.filter((entry) => !chosen.includes(entry)))
    let queued = 0
    for (const entry of chosen) if (this.append(endpoint, entry.event)) queued++
    return queued
  }

  written (): null {
    return null
  }

  pending (endpoint: string): number {
    return this.queues.get(endpoint)?.length ?? 0
  }

  appended (endpoint: string, ms: number): Promise<void> {
    return this.signal.wait(endpoint, ms)
  }

  async close (): Promise<void> {
    this.signal.close()
  }
}
