// The history of each history topic: its messages numbered by `offset` (one more per message on
// that topic), within an `epoch` that changes when the history is lost, so that an offset of a
// lost history is never taken for one of the new. The memory store serves one node; the Redis
// one (redis-history-store.ts) a cluster, with the same offsets on every node.
import { randomBytes } from 'node:crypto'
import type { MessageProperties } from '../protocol/message-properties.js'
import type { HistoryTopicConfig } from './history-topics.js'

/** A message as history keeps it. */
export interface HistoryMessage {
  offset: number
  topic: string
  payload: Buffer
  qos: number
  /** ms since the epoch, when it was stored */
  time: number
  /** Its MQTT 5 properties, the position's user properties left out. */
  properties?: MessageProperties
}

export interface HistoryPosition {
  epoch: string
  offset: number
}

/**
 * Called once per append with its position, or the store's error. `duplicate`: the idempotency
 * key was seen within the window, `offset` is the first message's, nothing was stored. Plain
 * arguments, not a promise or an object: one call per message on the publish path.
 */
export type AppendDone = (err: Error | null, epoch: string, offset: number, duplicate: boolean) => void

/**
 * A message to store and whom to tell: its own `appended` method, not a closure beside it, so
 * that a message waiting for the store is one object (the publish path holds many at once).
 */
export interface Append extends AppendInput {
  appended: AppendDone
}

export interface AppendInput {
  topic: string
  payload: Buffer
  qos: number
  properties?: MessageProperties
  /** ms since the epoch */
  time: number
  idempotencyKey?: string
}

export interface ReadRequest {
  topic: string
  /** The most messages returned. */
  limit: number
  /** Messages after this offset, oldest first; without it, the newest `limit`. */
  since?: number
  /** The epoch `since` belongs to, if the reader knows it. */
  epoch?: string
  /** ms since the epoch */
  now: number
}

export interface ReadResult {
  epoch: string
  /** The offset of the topic's latest message (0: none yet in this epoch). */
  offset: number
  /** Oldest first. */
  messages: HistoryMessage[]
  /**
   * With `since`: whether every message after it is still held (and it is of this epoch). When
   * false the reader missed messages history no longer has: it must resync.
   */
  recovered?: boolean
}

export interface HistoryStore {
  /**
   * Stores `input`; its `appended` is called in the order of the calls of its topic, and of all
   * topics in memory and on one Redis (not on a Redis Cluster, where topics live on their own masters).
   */
  append: (input: Append, topic: HistoryTopicConfig, idempotencyWindowMs: number) => void
  read: (request: ReadRequest, topic: HistoryTopicConfig) => Promise<ReadResult>
  /** Messages held per stream, for the metrics (Redis: sampled, bounded). */
  lengths: () => Promise<number[]>
}

/** The characters of an epoch that name its source (the Redis store's call ids read them). */
export const epochSourceChars = 8

/** A source of new epochs: each one unique (a random prefix per source, then a count in base 36), short, opaque. */
export function epochSource (): () => string {
  const prefix = randomBytes(epochSourceChars * 3 / 4).toString('base64url')
  let count = 0
  return () => `${prefix}${(count++).toString(36)}`
}

/**
 * Whether a reader at `since` (of `readerEpoch`) misses nothing: same epoch, not ahead of the
 * latest offset, and the first message after `since` is still held (`firstAfter`, the oldest
 * unexpired message returned after it).
 */
export function isRecovered (since: number, readerEpoch: string | undefined, epoch: string, latest: number, firstAfter: number | undefined): boolean {
  if (readerEpoch !== undefined && readerEpoch !== epoch) return false
  if (since > latest) return false
  return since === latest || firstAfter === since + 1
}

/** The result of a read over `held` (oldest first, unexpired, offsets consecutive). */
export function readFrom (held: readonly HistoryMessage[], request: ReadRequest, epoch: string, latest: number): ReadResult {
  if (request.since === undefined) return { epoch, offset: latest, messages: held.slice(Math.max(0, held.length - request.limit)) }
  const since = request.since
  const start = held.findIndex((message) => message.offset > since)
  const messages = start < 0 ? [] : held.slice(start, start + request.limit)
  return { epoch, offset: latest, messages, recovered: isRecovered(since, request.epoch, epoch, latest, messages[0]?.offset) }
}

interface MemoryStream {
  epoch: string
  latest: number
  /** ms since the epoch of its last append (or creation) */
  touched: number
  /** its topic's TTL; 0 = none */
  ttlMs: number
  // held messages are entries[head..], oldest first; compacted when head passes half
  entries: HistoryMessage[]
  head: number
}

/**
 * A topic's counter and epoch outlive its last message by its TTL and this long: a reader back
 * within it, having missed nothing, is still recovered.
 */
export const historyGraceMs = 86_400_000
// appends between two sweeps of the memory store for topics idle past their TTL and grace
const sweepEvery = 1000

/** History in this process: lost on restart, hence a new epoch per topic each start. */
export function memoryHistoryStore (): HistoryStore {
  const streams = new Map<string, MemoryStream>()
  const newEpoch = epochSource()
  let appendsSinceSweep = 0
  // a topic idle past its TTL and the grace is forgotten (a new epoch if it comes back), as its Redis keys expire
  const sweep = (now: number): void => {
    for (const [topic, stream] of streams) {
      // one never published to (only read) goes too, whatever its TTL
      if ((stream.ttlMs > 0 || stream.latest === 0) && stream.touched < now - stream.ttlMs - historyGraceMs) streams.delete(topic)
    }
  }
  // `${topic}\0${key}` -> the offset its first message got and when the key is forgotten, in insertion order
  const keys = new Map<string, { offset: number, until: number }>()
  const streamOf = (topic: string, config: HistoryTopicConfig): MemoryStream => {
    let stream = streams.get(topic)
    if (stream === undefined) {
      stream = { epoch: newEpoch(), latest: 0, touched: Date.now(), ttlMs: config.ttlSeconds * 1000, entries: [], head: 0 }
      streams.set(topic, stream)
    }
    return stream
  }
  const trim = (stream: MemoryStream, config: HistoryTopicConfig, now: number): void => {
    const cut = config.ttlSeconds === 0 ? -Infinity : now - config.ttlSeconds * 1000
    while (stream.head < stream.entries.length && (stream.entries.length - stream.head > config.size || (stream.entries[stream.head] as HistoryMessage).time < cut)) stream.head++
    if (stream.head > stream.entries.length / 2) {
      stream.entries = stream.entries.slice(stream.head)
      stream.head = 0
    }
  }
  return {
    append: (input, config, windowMs) => {
      if (++appendsSinceSweep >= sweepEvery) {
        appendsSinceSweep = 0
        sweep(input.time)
      }
      const stream = streamOf(input.topic, config)
      const keyId = input.idempotencyKey === undefined || windowMs === 0 ? undefined : `${input.topic}\0${input.idempotencyKey}`
      if (keyId !== undefined) {
        for (const [id, entry] of keys) {
          if (entry.until > input.time) break
          keys.delete(id)
        }
        const seen = keys.get(keyId)
        if (seen !== undefined) return input.appended(null, stream.epoch, seen.offset, true)
      }
      const offset = ++stream.latest
      stream.touched = input.time
      stream.entries.push({ offset, topic: input.topic, payload: input.payload, qos: input.qos, time: input.time, ...(input.properties === undefined ? {} : { properties: input.properties }) })
      trim(stream, config, input.time)
      if (keyId !== undefined) keys.set(keyId, { offset, until: input.time + windowMs })
      input.appended(null, stream.epoch, offset, false)
    },
    read: async (request, config) => {
      const stream = streamOf(request.topic, config)
      trim(stream, config, request.now)
      // offsets are consecutive: the messages asked for are found by arithmetic, and only they copied
      const { entries, head } = stream
      const first = entries[head]?.offset ?? stream.latest + 1
      const from = request.since === undefined ? Math.max(head, entries.length - request.limit) : head + Math.max(0, request.since + 1 - first)
      return readFrom(entries.slice(from, from + request.limit), request, stream.epoch, stream.latest)
    },
    lengths: async () => [...streams.values()].map((stream) => stream.entries.length - stream.head)
  }
}
