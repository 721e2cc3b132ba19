// History in Redis Streams, for a cluster: one stream per topic, its entries' IDs `<offset>-0`
// so that a read from an offset is one XRANGE; the offset counter and the epoch in a hash
// beside it, incremented in the same script as the XADD, one script call per topic for the
// messages of one event-loop turn (one round trip for a burst). The stream is trimmed by size
// (MAXLEN ~) and by age (its oldest entries, a few per batch, and a key expiry when idle).
// Every key of a topic carries the topic as its hash tag: one Redis Cluster slot per topic.
import type { RedisClient } from '../storage/redis-clients.js'
import type { MessageProperties } from '../protocol/message-properties.js'
import { epochSource, historyGraceMs, readFrom, type AppendInput, type AppendResult, type HistoryMessage, type HistoryStore } from './history-store.js'
import type { HistoryTopicConfig } from './history-topics.js'

export const historyKeyPrefix = 'history:'
const streamKey = (topic: string): string => `${historyKeyPrefix}{${topic}}:s`
const metaKey = (topic: string): string => `${historyKeyPrefix}{${topic}}:m`
const idempotencyKey = (topic: string, key: string): string => `${historyKeyPrefix}{${topic}}:i:${key}`
// Streams whose lengths the metrics sample at a scrape.
const maxSampledStreams = 1000

// A missing hash means the history was lost (or never was): a new epoch, and any stream left
// without its counter is dropped. Returns the epoch.
const ensureEpoch = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
end
`

// Appends a batch of one topic's messages (those published in one turn of the event loop): one
// round trip for them all. KEYS: meta, stream, then the batch's idempotency keys.
// ARGV: candidate epoch, now ms, size, ttl ms (0 = none), idempotency window ms, then per
// message: payload, properties JSON ('' = none), qos, index of its idempotency key in KEYS (0 = none).
// Returns the epoch and per message its offset, negated for a repeat (the first one's offset).
const appendScript = ensureEpoch + `
local window = tonumber(ARGV[5])
local results = {}
local offset = 0
for base = 6, #ARGV, 4 do
  local keyIndex = tonumber(ARGV[base + 3])
  local seen = false
  if keyIndex > 0 and window > 0 then seen = redis.call('GET', KEYS[keyIndex]) end
  if seen then
    results[#results + 1] = -tonumber(seen)
  else
    offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], offset .. '-0', 'p', ARGV[base], 't', ARGV[2], 'q', ARGV[base + 2], 'm', ARGV[base + 1])
    if keyIndex > 0 and window > 0 then redis.call('SET', KEYS[keyIndex], offset, 'PX', window) end
    results[#results + 1] = offset
  end
end
local ttl = tonumber(ARGV[4])
if ttl > 0 and offset > 0 then
  local cut = tonumber(ARGV[2]) - ttl
  -- a few expired entries per batch: trimming keeps up with appending
  for _ = 1, 16 do
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
    if oldest == nil or tonumber(oldest[2][4]) >= cut then break end
    redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(string.match(oldest[1], '^%d+')) + 1) .. '-0')
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[1], ttl + ${historyGraceMs})
elseif offset > 0 then
  -- kept for good, like its stream (a read may have created it with an expiry)
  redis.call('PERSIST', KEYS[1])
end
return {epoch, results}
`

// KEYS: meta, stream; ARGV: candidate epoch, since ('' = the newest), limit, ttl ms (0 = none).
// A topic first seen by a read is forgotten after its TTL and the grace unless a message comes.
const readScript = ensureEpoch + `
if redis.call('PTTL', KEYS[1]) == -1 and redis.call('HGET', KEYS[1], 'offset') == '0' then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + ${historyGraceMs})
end
local latest = tonumber(redis.call('HGET', KEYS[1], 'offset'))
local entries
if ARGV[2] == '' then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[3])
else
  entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[2] .. '-0', '+', 'COUNT', ARGV[3])
end
return {epoch, latest, entries}
`

type Entry = [Buffer, Buffer[]]
interface Batch {
  config: HistoryTopicConfig
  windowMs: number
  appends: Array<{ input: AppendInput, resolve: (result: AppendResult) => void, reject: (err: Error) => void }>
}
interface HistoryCommands {
  historyAppend: (keyCount: number, ...keysThenArgs: Array<string | number | Buffer>) => Promise<[string, number[]]>
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

function decodeEntry (topic: string, [id, fields]: Entry): HistoryMessage {
  const field = (name: string): Buffer | undefined => {
    for (let i = 0; i < fields.length; i += 2) if ((fields[i] as Buffer).toString() === name) return fields[i + 1]
    return undefined
  }
  const properties = decodeProperties(field('m')?.toString('utf8') ?? '')
  return {
    offset: Number.parseInt(id.toString(), 10),
    topic,
    payload: field('p') ?? Buffer.alloc(0),
    qos: Number(field('q')?.toString() ?? 0),
    time: Number(field('t')?.toString() ?? 0),
    ...(properties === undefined ? {} : { properties })
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
  const flush = (): void => {
    const now = Date.now()
    for (const [topic, { config, windowMs, appends }] of batches) {
      const keys = [metaKey(topic), streamKey(topic)]
      const args: Array<string | number | Buffer> = [newEpoch(), now, config.size, config.ttlSeconds * 1000, windowMs]
      for (const { input } of appends) {
        const key = windowMs === 0 ? undefined : input.idempotencyKey
        if (key !== undefined) keys.push(idempotencyKey(topic, key))
        args.push(input.payload, encodeProperties(input.properties), input.qos, key === undefined ? 0 : keys.length)
      }
      commands.historyAppend(keys.length, ...keys, ...args).then(([epoch, offsets]) => {
        appends.forEach(({ resolve }, i) => {
          const offset = offsets[i] as number
          resolve({ epoch, offset: Math.abs(offset), duplicate: offset < 0 })
        })
      }, (err: Error) => { for (const { reject } of appends) reject(err) })
    }
    batches.clear()
  }
  return {
    append: (input, config, windowMs) => new Promise((resolve, reject) => {
      let batch = batches.get(input.topic)
      if (batch === undefined) {
        batch = { config, windowMs, appends: [] }
        batches.set(input.topic, batch)
      }
      batch.appends.push({ input, resolve, reject })
      if (batches.size === 1 && batch.appends.length === 1) setImmediate(flush)
    }),
    read: async (request, config) => {
      const [epoch, latest, entries] = await commands.historyReadBuffer(metaKey(request.topic), streamKey(request.topic), newEpoch(), request.since === undefined ? '' : String(request.since), request.limit, config.ttlSeconds * 1000)
      const cut = config.ttlSeconds === 0 ? -Infinity : request.now - config.ttlSeconds * 1000
      const messages = entries.map((entry) => decodeEntry(request.topic, entry)).filter((message) => message.time >= cut)
      if (request.since === undefined) messages.reverse()
      // the script returned at most `limit` messages from the right place: readFrom judges recovery
      return readFrom(messages, request, epoch.toString(), latest)
    },
    lengths: async () => {
      // SCAN matches the key as stored: with the connection's key prefix
      const prefix = (redis.options.keyPrefix ?? '')
      const lengths: number[] = []
      let cursor = '0'
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}${historyKeyPrefix}*:s`, 'COUNT', 500)
        cursor = next
        if (found.length > 0) {
          const pipeline = redis.pipeline()
          // the key as found carries the prefix, which the connection adds again
          for (const key of found) pipeline.xlen(key.slice(prefix.length))
          for (const [err, length] of (await pipeline.exec()) ?? []) if (err === null) lengths.push(length as number)
        }
      } while (cursor !== '0' && lengths.length < maxSampledStreams)
      return lengths
    }
  }
}
