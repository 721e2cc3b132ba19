// History in Redis Streams, for a cluster: one stream per topic, and the offset counter and
// the epoch in a hash beside it. One stream entry holds the messages of a topic published in one
// turn of the event loop (a batch), its ID `<offset of its last message>-0`: one script call,
// one HSET and one XADD per topic and turn, whatever the number of messages (an entry per
// message cost Redis a HINCRBY and an XADD each, and the broker an argument and a reply each).
// A read from an offset is then two XRANGEs (the entries before the last one it needs, and that
// one). The turn's calls of all topics go in one pipeline on one Redis. The stream is trimmed
// by size (MINID: entries that hold none of the newest `size` messages) and by age (its oldest
// entries, at most once a second, and a key expiry when idle); a read leaves out what a trimmed
// stream would not hold, so that `size` and `ttlSeconds` bound what is returned exactly.
// Every key of a topic carries the topic as its hash tag: one Redis Cluster slot per topic.
import { Cluster } from 'ioredis'
import type { RedisClient } from '../storage/redis-clients.js'
import { RedisKeys } from '../storage/redis-keys.js'
import type { MessageProperties } from '../protocol/message-properties.js'
import { epochSource, historyGraceMs, readFrom, type Append, type HistoryMessage, type HistoryStore } from './history-store.js'
import type { HistoryTopicConfig } from './history-topics.js'

// A topic's keys are its own (`history:{<topic>}:…`), tagged on one Redis too: they always were,
// and the tag keeps a topic's name apart from the parts after it whatever colons it holds. The
// connection's ioredis keyPrefix adds redis.keyPrefix.
const keys = new RedisKeys('', true)
const historyConcern = 'history'
const streamKey = (topic: string): string => keys.owned(historyConcern, topic, 's')
const metaKey = (topic: string): string => keys.owned(historyConcern, topic, 'm')
const idempotencyKey = (topic: string, key: string): string => keys.owned(historyConcern, topic, 'i', key)
// The most messages one entry holds (or `size` if fewer): a stream holds fewer than `size` plus
// this many messages.
const maxEntryMessages = 100
// Streams whose lengths the metrics sample at a scrape.
const maxSampledStreams = 1000

// A missing hash means the history was lost (or never was): a new epoch, and any stream left
// without its counter is dropped. Sets `epoch` and `latest` (the offset of the newest message).
const ensureEpoch = `
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'offset', 'trimmed')
local epoch = meta[1]
local latest = tonumber(meta[2])
local trimmed = tonumber(meta[3] or 0)
if not epoch then
  epoch = ARGV[1]
  latest = 0
  trimmed = 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
end
`

// Appends a batch of one topic's messages as one entry. KEYS: meta, stream, then the
// idempotency keys of the batch's messages that carry one, in the messages' order.
// ARGV: candidate epoch, now ms, size, ttl ms (0 = none), idempotency window ms, the number of
// messages, the batch (encodeBatch), then per idempotency key: its message's index and the
// message's first and end byte in the batch (0-based). A message whose key was seen within the
// window is cut out of the batch and not counted.
// Returns {epoch, the offset before the batch's first, then per repeat: its index, the offset its
// key's first message got}; the others' offsets follow one another.
const appendScript = ensureEpoch + `
local window = tonumber(ARGV[5])
local batch = ARGV[7]
local reply = {epoch, latest}
local repeats = 0
local kept = nil
local from = 1
if window > 0 then
  for k = 3, #KEYS do
    local at = 8 + (k - 3) * 3
    local index = tonumber(ARGV[at])
    local seen = redis.call('GET', KEYS[k])
    if seen then
      kept = kept or {}
      kept[#kept + 1] = string.sub(batch, from, tonumber(ARGV[at + 1]))
      from = tonumber(ARGV[at + 2]) + 1
      repeats = repeats + 1
      reply[#reply + 1] = index
      reply[#reply + 1] = tonumber(seen)
    else
      redis.call('SET', KEYS[k], latest + 1 + index - repeats, 'PX', window)
    end
  end
end
local count = tonumber(ARGV[6]) - repeats
if count == 0 then return reply end
if kept then
  kept[#kept + 1] = string.sub(batch, from)
  batch = table.concat(kept)
end
local last = latest + count
redis.call('HSET', KEYS[1], 'offset', last)
-- exact MINID: the entries that hold any of the newest (size) messages stay, no more
local oldest = last - tonumber(ARGV[3]) + 1
if oldest < 1 then oldest = 1 end
redis.call('XADD', KEYS[2], 'MINID', oldest .. '-0', last .. '-0', 'n', count, 't', ARGV[2], 'b', batch)
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  local now = tonumber(ARGV[2])
  -- expired entries and the idle expiries, at most once a second: a read leaves out what this
  -- has not trimmed yet, and the stream's expiry has that second as margin, so it never comes
  -- before the TTL of a message appended since
  if now - trimmed >= 1000 then
    redis.call('HSET', KEYS[1], 'trimmed', now)
    for _ = 1, 16 do
      local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
      if first == nil or tonumber(first[2][4]) >= now - ttl then break end
      redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(string.match(first[1], '^%d+')) + 1) .. '-0')
    end
    redis.call('PEXPIRE', KEYS[2], ttl + 1000)
    redis.call('PEXPIRE', KEYS[1], ttl + ${historyGraceMs})
  end
else
  -- kept for good, like its stream (a read may have created it with an expiry)
  redis.call('PERSIST', KEYS[1])
end
return reply
`

// KEYS: meta, stream; ARGV: candidate epoch, since ('' = the newest), limit, ttl ms (0 = none).
// Returns the entries that hold the messages after `since` (or the newest `limit`), at most
// `limit` of them: those wholly before the last one asked for, then the one that holds it.
// A topic first seen by a read is forgotten after its TTL and the grace unless a message comes.
const readScript = ensureEpoch + `
if latest == 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + ${historyGraceMs})
end
local limit = tonumber(ARGV[3])
local since = latest - limit
if ARGV[2] ~= '' then since = tonumber(ARGV[2]) end
if since < 0 then since = 0 end
local entries = {}
if since + 1 <= since + limit - 1 then entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', (since + limit - 1) .. '-0') end
local last = redis.call('XRANGE', KEYS[2], (since + limit) .. '-0', '+', 'COUNT', 1)[1]
if last then entries[#entries + 1] = last end
return {epoch, latest, entries}
`

type Entry = [Buffer, Buffer[]]
interface Batch {
  config: HistoryTopicConfig
  windowMs: number
  appends: Append[]
}
type AppendReply = [string, number, ...number[]]
interface HistoryCommands {
  historyAppend: (...keyCountThenKeysThenArgsThenCallback: Array<string | number | Buffer | ((err: Error | null, reply?: AppendReply) => void)>) => unknown
  historyReadBuffer: (meta: string, stream: string, epoch: string, since: string, limit: number, ttlMs: number) => Promise<[Buffer, number, Entry[]]>
}

/** Properties as stored: JSON, the correlation data in base64. */
function encodeProperties (properties: MessageProperties | undefined): string {
  if (properties === undefined) return ''
  const { correlationData, ...rest } = properties
  return JSON.stringify(correlationData === undefined ? rest : { ...rest, correlationData: correlationData.toString('base64') })
}

function decodeProperties (text: string): MessageProperties | undefined {
  if (text === '') return undefined
  const parsed = JSON.parse(text) as Omit<MessageProperties, 'correlationData'> & { correlationData?: string }
  const { correlationData, ...rest } = parsed
  return correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') }
}

// A batch, the messages one after the other: u8 qos · u32 + bytes properties JSON (0: none) ·
// u32 + bytes payload.
const messageHeaderBytes = 1 + 4 + 4

/** The appends' messages as one batch; `ends[i]` is the byte after message i. */
function encodeBatch (appends: readonly Append[], properties: readonly string[]): { batch: Buffer, ends: number[] } {
  let size = 0
  appends.forEach((input, i) => { size += messageHeaderBytes + Buffer.byteLength(properties[i] as string) + input.payload.length })
  const batch = Buffer.allocUnsafe(size)
  const ends: number[] = []
  let at = 0
  appends.forEach((input, i) => {
    at = batch.writeUInt8(input.qos, at)
    const json = properties[i] as string
    const length = json === '' ? 0 : batch.write(json, at + 4, 'utf8')
    at = batch.writeUInt32BE(length, at) + length
    at = batch.writeUInt32BE(input.payload.length, at)
    at += input.payload.copy(batch, at)
    ends.push(at)
  })
  return { batch, ends }
}

/** The messages of entry `[id, fields]` of `topic`; payloads are views into the entry. */
function decodeEntry (topic: string, [id, fields]: Entry, into: HistoryMessage[]): void {
  const field = (name: string): Buffer | undefined => {
    for (let i = 0; i < fields.length; i += 2) if ((fields[i] as Buffer).toString() === name) return fields[i + 1]
    return undefined
  }
  const last = Number.parseInt(id.toString(), 10)
  const time = Number(field('t')?.toString() ?? 0)
  const batch = field('b')
  if (batch === undefined) {
    // an entry of one message, as releases before batches stored them
    const properties = decodeProperties(field('m')?.toString('utf8') ?? '')
    into.push({ offset: last, topic, payload: field('p') ?? Buffer.alloc(0), qos: Number(field('q')?.toString() ?? 0), time, ...(properties === undefined ? {} : { properties }) })
    return
  }
  let offset = last - Number(field('n')?.toString() ?? 0)
  for (let at = 0; at < batch.length;) {
    const qos = batch.readUInt8(at)
    const propertiesEnd = at + 5 + batch.readUInt32BE(at + 1)
    const properties = decodeProperties(batch.toString('utf8', at + 5, propertiesEnd))
    const payloadEnd = propertiesEnd + 4 + batch.readUInt32BE(propertiesEnd)
    into.push({ offset: ++offset, topic, payload: batch.subarray(propertiesEnd + 4, payloadEnd), qos, time, ...(properties === undefined ? {} : { properties }) })
    at = payloadEnd
  }
}

/** History in Redis, on `redis` (the broker's own connection, key prefix applied). */
export function redisHistoryStore (redis: RedisClient): HistoryStore {
  // the number of keys comes first in each call: a batch names its idempotency keys
  redis.defineCommand('historyAppend', { lua: appendScript })
  redis.defineCommand('historyRead', { numberOfKeys: 2, lua: readScript })
  const commands = redis as unknown as HistoryCommands
  const newEpoch = epochSource()
  // appends of this turn, per topic, sent as one script call per topic at the end of the turn
  const batches = new Map<string, Batch>()
  // batches that reached maxEntryMessages, in the order they filled, sent before the others
  const full: Array<[string, Batch]> = []
  // one Redis: the turn's calls go in one pipeline, one write; a Cluster pipeline must stay on
  // one node, so there each call goes to its topic's node on its own
  const cluster = redis instanceof Cluster
  const flush = (): void => {
    const now = Date.now()
    const pipeline = cluster ? null : redis.pipeline()
    // one Redis: every batch of the pipeline is settled when its last reply is in, so that the
    // turn's messages are delivered in one turn (one write to each subscriber), not in as many
    // as the chunks Redis answered in (it reads a large pipeline 16 KB at a time)
    const settles: Array<(err: Error | null, reply?: AppendReply) => void> = []
    for (const [topic, { config, windowMs, appends }] of [...full, ...batches]) {
      const { batch, ends } = encodeBatch(appends, appends.map((input) => encodeProperties(input.properties)))
      const keys = [metaKey(topic), streamKey(topic)]
      const keyed: number[] = []
      appends.forEach((input, i) => {
        if (windowMs === 0 || input.idempotencyKey === undefined) return
        keys.push(idempotencyKey(topic, input.idempotencyKey))
        keyed.push(i, i === 0 ? 0 : ends[i - 1] as number, ends[i] as number)
      })
      const settle = (err: Error | null, reply?: AppendReply): void => {
        if (err !== null || reply === undefined) {
          for (const append of appends) append.appended(err ?? new Error('no reply'), '', 0, false)
          return
        }
        const [epoch, before] = reply
        let offset = before
        let repeat = 2
        appends.forEach((append, i) => {
          if (reply[repeat] === i) {
            append.appended(null, epoch, reply[repeat + 1] as number, true)
            repeat += 2
          } else {
            append.appended(null, epoch, ++offset, false)
          }
        })
      }
      const args = [keys.length, ...keys, newEpoch(), now, config.size, config.ttlSeconds * 1000, windowMs, appends.length, batch, ...keyed]
      if (pipeline === null) {
        (redis as unknown as HistoryCommands).historyAppend(...args, settle)
      } else {
        (pipeline as unknown as HistoryCommands).historyAppend(...args)
        settles.push(settle)
      }
    }
    full.length = 0
    batches.clear()
    if (pipeline !== null) {
      pipeline.exec().then((replies) => {
        settles.forEach((settle, i) => {
          const [err, reply] = replies?.[i] ?? [new Error('no reply')]
          settle(err, reply as AppendReply | undefined)
        })
      }, (err: Error) => { for (const settle of settles) settle(err) })
    }
  }
  return {
    append: (input, config, windowMs) => {
      let batch = batches.get(input.topic)
      if (batch === undefined) {
        batch = { config, windowMs, appends: [] }
        batches.set(input.topic, batch)
      }
      batch.appends.push(input)
      if (batches.size === 1 && batch.appends.length === 1 && full.length === 0) setImmediate(flush)
      if (batch.appends.length === Math.min(maxEntryMessages, config.size)) {
        full.push([input.topic, batch])
        batches.delete(input.topic)
      }
    },
    read: async (request, config) => {
      const [epoch, latest, entries] = await commands.historyReadBuffer(metaKey(request.topic), streamKey(request.topic), newEpoch(), request.since === undefined ? '' : String(request.since), request.limit, config.ttlSeconds * 1000)
      // what a trimmed stream holds: the newest `size` messages, none older than the TTL
      const cut = config.ttlSeconds === 0 ? -Infinity : request.now - config.ttlSeconds * 1000
      const since = Math.max(request.since ?? latest - request.limit, latest - config.size)
      const messages: HistoryMessage[] = []
      for (const entry of entries) decodeEntry(request.topic, entry, messages)
      const held = messages.filter((message) => message.offset > since && message.time >= cut)
      // the script returned the entries of at most `limit` messages from the right place: readFrom judges recovery
      return readFrom(held, request, epoch.toString(), latest)
    },
    lengths: async () => {
      // every master of a Cluster holds some streams; SCAN matches keys as stored, with the
      // connection's key prefix, which one Redis's connection adds again (a Cluster's node
      // connections do not)
      const prefix = redis.options.keyPrefix ?? ''
      const servers = cluster ? redis.nodes('master') : [redis]
      const lengths: number[] = []
      for (const server of servers) {
        if (lengths.length >= maxSampledStreams) break
        const strip = cluster ? 0 : prefix.length
        let cursor = '0'
        do {
          const [next, found] = await server.scan(cursor, 'MATCH', `${prefix}${historyConcern}:{*}:s`, 'COUNT', 500)
          cursor = next
          if (found.length === 0) continue
          // messages held: the latest offset, less the offset before the oldest entry's first
          const pipeline = server.pipeline()
          for (const key of found) pipeline.hget(`${key.slice(strip, -1)}m`, 'offset').xrange(key.slice(strip), '-', '+', 'COUNT', 1)
          const replies = (await pipeline.exec()) ?? []
          for (let i = 0; i < replies.length; i += 2) {
            const [metaErr, latest] = replies[i] as [Error | null, string | null]
            const [streamErr, oldest] = replies[i + 1] as [Error | null, Array<[string, string[]]>]
            const entry = oldest?.[0]
            if (metaErr !== null || streamErr !== null || latest === null || entry === undefined) continue
            const count = entry[1][0] === 'n' ? Number(entry[1][1]) : 1
            lengths.push(Number(latest) - Number.parseInt(entry[0], 10) + count)
          }
        } while (cursor !== '0' && lengths.length < maxSampledStreams)
      }
      return lengths
    }
  }
}
