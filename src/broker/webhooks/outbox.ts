// Where webhook events wait until their endpoint acknowledged them: the contract, and the
// in-memory outbox of an embedded (Redis-less) broker, bounded per endpoint and counted.
// redis-outbox.ts is the durable, cluster-wide one.

/**
 * Events waiting for their endpoint, in the order they happened: those one node queued in one
 * event-loop turn (at most webhooks.batchSize), stored and sent together. One entry per turn
 * rather than per event keeps an event's cost in the outbox to a string in an array: the
 * outbox's work (a Redis command, an id, an acknowledgement) is per entry.
 */
export interface OutboxEntry {
  /** The outbox's own id of the entry (not an event id). */
  id: string
  /** The events' JSON, joined by commas: a slice of a request's `events` array as is. */
  events: string
  /** How many events `events` holds. */
  count: number
  /** When it was queued (ms): an entry undelivered for webhooks.deadLetterAfterMs is dead-lettered. */
  enqueuedAt: number
}

/** What a sender sends next. */
export interface Batch {
  entries: OutboxEntry[]
  /** Whether waiting would not make it larger: `max` events, or the next entry would not fit. */
  full: boolean
}

/** One event that was not delivered in time, kept for the admin API to list and replay. */
export interface DeadLetter {
  id: string
  /** The event, as JSON. */
  event: string
  enqueuedAt: number
  deadAt: number
  /** The last failure, e.g. "HTTP 500" or "timeout". */
  reason: string
}

/** The events of an entry one by one (dead-lettering only: an event is parsed and written again). */
export function entryEvents (entry: OutboxEntry): string[] {
  return (JSON.parse(`[${entry.events}]`) as unknown[]).map((event) => JSON.stringify(event))
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
  /**
   * The oldest entries not acknowledged, at most `max` events (or the oldest entry alone, if
   * larger); the sender takes more only after ack or deadLetter.
   */
  take: (endpoint: string, max: number) => Promise<Batch>
  ack: (endpoint: string, entries: readonly OutboxEntry[]) => Promise<void>
  deadLetter: (endpoint: string, entries: readonly OutboxEntry[], reason: string) => Promise<void>
  /** The oldest dead letters, at most `max`. */
  deadLetters: (endpoint: string, max: number) => Promise<DeadLetter[]>
  /** Queues dead letters again (those with the given entry ids, or all); resolves with how many. */
  replay: (endpoint: string, ids: readonly string[] | null) => Promise<number>
  /** Resolves once every event appended so far is stored; null when they already are. */
  written: () => Promise<void> | null
  /** Events waiting for `endpoint` (the last known count, for the gauge and the bound). */
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

/** The events the entries hold. */
export function eventCount (entries: readonly OutboxEntry[]): number {
  let events = 0
  for (const entry of entries) events += entry.count
  return events
}

/** The entries of `queued` from the oldest that hold at most `max` events together (the first one always). */
export function entriesWithin (queued: readonly OutboxEntry[], max: number): Batch {
  let events = 0
  let taken = 0
  for (const entry of queued) {
    if (taken > 0 && events + entry.count > max) break
    events += entry.count
    taken++
  }
  return { entries: queued.slice(0, taken), full: events >= max || taken < queued.length }
}

/**
 * The outbox of a broker without Redis: lost with the process, bounded, one sender (this node).
 * Events wait one by one (a string and a time each, no object); a batch is one entry.
 */
export class MemoryOutbox implements WebhookOutbox {
  private readonly queues = new Map<string, { events: Fifo<string>, times: Fifo<number> }>()
  private readonly dead = new Map<string, DeadLetter[]>()
  private readonly signal = new AppendSignal()
  // the number of events ever queued per endpoint: a batch's id is its first event's number
  private readonly queued = new Map<string, number>()

  constructor (private readonly maxPending: number, private readonly maxDeadLetters: number) {}

  private queue (endpoint: string): { events: Fifo<string>, times: Fifo<number> } {
    let queue = this.queues.get(endpoint)
    if (queue === undefined) this.queues.set(endpoint, queue = { events: new Fifo(), times: new Fifo() })
    return queue
  }

  append (endpoint: string, event: string): boolean {
    const queue = this.queue(endpoint)
    if (queue.events.length >= this.maxPending) return false
    queue.events.push(event)
    queue.times.push(Date.now())
    this.queued.set(endpoint, (this.queued.get(endpoint) ?? 0) + 1)
    this.signal.notify(endpoint)
    return true
  }

  async acquire (): Promise<boolean> { return true }

  async take (endpoint: string, max: number): Promise<Batch> {
    const { events, times } = this.queue(endpoint)
    const batch = events.peek(max)
    if (batch.length === 0) return { entries: [], full: false }
    const first = (this.queued.get(endpoint) ?? 0) - events.length + 1
    return { entries: [{ id: String(first), events: batch.join(','), count: batch.length, enqueuedAt: times.peek(1)[0] ?? Date.now() }], full: batch.length >= max }
  }

  async ack (endpoint: string, entries: readonly OutboxEntry[]): Promise<void> {
    const { events, times } = this.queue(endpoint)
    const count = eventCount(entries)
    events.drop(count)
    times.drop(count)
  }

  async deadLetter (endpoint: string, entries: readonly OutboxEntry[], reason: string): Promise<void> {
    await this.ack(endpoint, entries)
    const dead = this.dead.get(endpoint) ?? []
    this.dead.set(endpoint, dead)
    const deadAt = Date.now()
    for (const entry of entries) {
      entryEvents(entry).forEach((event, at) => dead.push({ id: `${Number(entry.id) + at}`, event, enqueuedAt: entry.enqueuedAt, deadAt, reason }))
    }
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
    return this.queues.get(endpoint)?.events.length ?? 0
  }

  appended (endpoint: string, ms: number): Promise<void> {
    return this.signal.wait(endpoint, ms)
  }

  async close (): Promise<void> {
    this.signal.close()
  }
}
