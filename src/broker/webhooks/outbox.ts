// Where webhook events wait until their endpoint acknowledged them: the contract, and the
// in-memory outbox of an embedded (Redis-less) broker, bounded per endpoint and counted.
// redis-outbox.ts is the durable, cluster-wide one.
import type { EventBytes } from './events.js'

/**
 * Events waiting for their endpoint, in the order they happened: those one node queued in one
 * event-loop turn (at most webhooks.batchSize), stored and sent together. One entry per turn
 * rather than per event keeps an event's cost in the outbox to a string in an array: the
 * outbox's work (a Redis command, an id, an acknowledgement) is per entry.
 */
export interface OutboxEntry {
  /** The outbox's own id of the entry (not an event id). */
  id: string
  /** The events' JSON, joined by commas (text, or its UTF-8 bytes): a slice of a request's `events` array as is. */
  events: string | Buffer
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
  return (JSON.parse(`[${entry.events.toString()}]`) as unknown[]).map((event) => JSON.stringify(event))
}

export interface WebhookOutbox {
  /** Queues an event for `endpoint`; false when its backlog is full (the event is dropped). */
  append: (endpoint: string, event: string) => boolean
  /** The same, the event copied as the bytes it writes. */
  appendBytes: (endpoint: string, event: EventBytes) => boolean
  /**
   * Whether this node sends `endpoint`'s events now. One sender per endpoint at a time keeps
   * its events in order; another node takes over (with the entries left unacknowledged) when
   * the sender dies.
   */
  acquire: (endpoint: string) => Promise<boolean>
  /**
   * The oldest entries not acknowledged, at most `max` events and a body of `maxBytes` (or the
   * oldest entry alone, if larger); the sender takes more only after ack or deadLetter.
   */
  take: (endpoint: string, max: number, maxBytes?: number) => Promise<Batch>
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
  at (index: number): T | undefined { return this.items[this.head + index] }
  last (): T | undefined { return this.length === 0 ? undefined : this.items[this.items.length - 1] }
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
    // called per event in memory: no lookup while no sender waits (it waits only when idle)
    if (this.waiters.size === 0) return
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

// a request body's bytes besides its entries: `{"events":[` and `]}`
const bodyFrame = 13

/**
 * The entries of `queued` from the oldest that hold at most `max` events together, in a
 * request body of at most `maxBytes` (a comma between entries): the first one always.
 */
export function entriesWithin (queued: readonly OutboxEntry[], max: number, maxBytes = Infinity): Batch {
  let events = 0
  let bytes = bodyFrame - 1
  let taken = 0
  for (const entry of queued) {
    const size = 1 + (typeof entry.events === 'string' ? Buffer.byteLength(entry.events) : entry.events.length)
    if (taken > 0 && (events + entry.count > max || bytes + size > maxBytes)) break
    events += entry.count
    bytes += size
    taken++
  }
  return { entries: queued.slice(0, taken), full: events >= max || taken < queued.length }
}

/** Events of one endpoint written one after another as JSON bytes, commas between them: one entry. */
interface Chunk {
  bytes: Buffer
  /** Bytes written. */
  length: number
  count: number
  /** The number of its first event among all the endpoint ever queued (its id). */
  first: number
  enqueuedAt: number
  /** No more events go in: full, or handed to the sender. */
  sealed: boolean
}

// a chunk's room: some 200 events of ~300 bytes (a batch spans several); a larger event gets a chunk of its own size
const chunkBytes = 64 * 1024
// acknowledged chunks kept for reuse: a default batch (1,000 events of ~330 bytes) spans 5-6,
// and with 4 kept the rest were allocated afresh, each time page-faulted in again (perf stat:
// ~180 page faults a second at 10,000 events a second, against ~5 without webhooks)
const maxSpareChunks = 8
const comma = 0x2c

/**
 * The outbox of a broker without Redis: lost with the process, bounded, one sender (this node).
 * Each event is written as UTF-8 into its endpoint's open chunk as it is appended (a batch's
 * body is those bytes as they are): a queued event is no JavaScript object, so the events
 * waiting for the sender cost the garbage collector nothing; chunks are reused once acknowledged.
 */
export class MemoryOutbox implements WebhookOutbox {
  private readonly queues = new Map<string, { chunks: Fifo<Chunk>, events: number, queued: number }>()
  private readonly dead = new Map<string, DeadLetter[]>()
  private readonly signal = new AppendSignal()
  private readonly spare: Buffer[] = []

  /** `maxPerEntry`: events in one chunk at most (webhooks.batchSize: a chunk is a request's body). */
  constructor (private readonly maxPending: number, private readonly maxDeadLetters: number, private readonly maxPerEntry: number) {}

  private queue (endpoint: string): { chunks: Fifo<Chunk>, events: number, queued: number } {
    let queue = this.queues.get(endpoint)
    if (queue === undefined) this.queues.set(endpoint, queue = { chunks: new Fifo(), events: 0, queued: 0 })
    return queue
  }

  append (endpoint: string, event: string): boolean {
    const queue = this.queue(endpoint)
    if (queue.events >= this.maxPending) return false
    const open = queue.chunks.last()
    // UTF-8 takes 3 bytes at most per UTF-16 unit: an event that surely fits is not measured first
    const size = open !== undefined && !open.sealed && event.length * 3 < open.bytes.length - open.length ? event.length : Buffer.byteLength(event)
    const chunk = this.room(queue, size)
    chunk.length += chunk.bytes.write(event, chunk.length)
    this.counted(endpoint, queue, chunk)
    return true
  }

  appendBytes (endpoint: string, event: EventBytes): boolean {
    const queue = this.queue(endpoint)
    if (queue.events >= this.maxPending) return false
    const chunk = this.room(queue, event.length)
    event.writeTo(chunk.bytes, chunk.length)
    chunk.length += event.length
    this.counted(endpoint, queue, chunk)
    return true
  }

  /** The chunk an event of at most `size` bytes goes in (its comma written), a new one if the open one has no room. */
  private room (queue: { chunks: Fifo<Chunk>, queued: number }, size: number): Chunk {
    let chunk = queue.chunks.last()
    if (chunk === undefined || chunk.sealed || size + 1 > chunk.bytes.length - chunk.length) {
      if (chunk !== undefined) chunk.sealed = true
      const bytes = size <= chunkBytes ? this.spare.pop() ?? Buffer.allocUnsafeSlow(chunkBytes) : Buffer.allocUnsafeSlow(size)
      queue.chunks.push(chunk = { bytes, length: 0, count: 0, first: queue.queued + 1, enqueuedAt: Date.now(), sealed: false })
    }
    if (chunk.count > 0) chunk.bytes[chunk.length++] = comma
    return chunk
  }

  private counted (endpoint: string, queue: { events: number, queued: number }, chunk: Chunk): void {
    if (++chunk.count >= this.maxPerEntry) chunk.sealed = true
    queue.events++
    queue.queued++
    this.signal.notify(endpoint)
  }

  async acquire (): Promise<boolean> { return true }

  async take (endpoint: string, max: number, maxBytes?: number): Promise<Batch> {
    const { chunks } = this.queue(endpoint)
    const batch = entriesWithin(chunks.peek(max).map(toEntry), max, maxBytes)
    // what the sender holds gets no more events: it may send it as it is
    for (let at = 0; at < batch.entries.length; at++) (chunks.at(at) as Chunk).sealed = true
    return batch
  }

  async ack (endpoint: string, entries: readonly OutboxEntry[]): Promise<void> {
    const queue = this.queue(endpoint)
    for (const chunk of queue.chunks.peek(entries.length)) {
      queue.events -= chunk.count
      // the entries' bytes are read no more: the sender is done with them
      if (chunk.bytes.length === chunkBytes && this.spare.length < maxSpareChunks) this.spare.push(chunk.bytes)
    }
    queue.chunks.drop(entries.length)
  }

  async deadLetter (endpoint: string, entries: readonly OutboxEntry[], reason: string): Promise<void> {
    const dead = this.dead.get(endpoint) ?? []
    this.dead.set(endpoint, dead)
    const deadAt = Date.now()
    for (const entry of entries) {
      entryEvents(entry).forEach((event, at) => dead.push({ id: `${Number(entry.id) + at}`, event, enqueuedAt: entry.enqueuedAt, deadAt, reason }))
    }
    await this.ack(endpoint, entries)
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
    return this.queues.get(endpoint)?.events ?? 0
  }

  appended (endpoint: string, ms: number): Promise<void> {
    return this.signal.wait(endpoint, ms)
  }

  async close (): Promise<void> {
    this.signal.close()
  }
}

function toEntry (chunk: Chunk): OutboxEntry {
  return { id: String(chunk.first), events: chunk.bytes.subarray(0, chunk.length), count: chunk.count, enqueuedAt: chunk.enqueuedAt }
}
