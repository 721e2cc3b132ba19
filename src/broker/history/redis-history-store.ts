// History in Redis Streams, for a cluster: one stream per topic, its entries' IDs `<offset>-0`
// so that a read from an offset is one XRANGE; the offset counter and the epoch in a hash
// beside it, incremented in the same script as the XADD. The stream is trimmed by size
// (MAXLEN ~) and by age (its oldest entries, a few per append, and a key expiry when idle).
// Every key of a topic carries the topic as its hash tag: one Redis Cluster slot per topic.
import type { Redis } from 'ioredis'
import type { MessageProperties } from '../protocol/message-properties.js'
import { newEpoch, readFrom, type HistoryMessage, type HistoryStore } from './history-store.js'

export const historyKeyPrefix = 'history:'
const streamKey = (topic: string): string => `${historyKeyPrefix}{${topic}}:s`
const metaKey = (topic: string): string => `${historyKeyPrefix}{${topic}}:m`
const idempotencyKey = (topic: string, key: string): string => `${historyKeyPrefix}{${topic}}:i:${key}`
// The counter and epoch outlive an idle stream by this long: a reader back within it, having
// missed nothing, is still recovered.
const metaGraceMs = 86_400_000
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

// KEYS: meta, stream, idempotency key (meta when none)
// ARGV: candidate epoch, payload, properties JSON ('' = none), now ms, size, ttl ms (0 = none), idempotency window ms (0 = none), qos
const appendScript = ensureEpoch + `
local window = tonumber(ARGV[7])
if window > 0 then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {epoch, tonumber(seen), 1} end
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], offset .. '-0', 'p', ARGV[2], 't', ARGV[4], 'q', ARGV[8], 'm', ARGV[3])
if window > 0 then redis.call('SET', KEYS[3], offset, 'PX', window) end
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  local cut = tonumber(ARGV[4]) - ttl
  -- a few expired entries per append: trimming keeps up with appending
  for _ = 1, 4 do
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
    if oldest == nil or tonumber(oldest[2][4]) >= cut then break end
    redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(string.match(oldest[1], '^%d+')) + 1) .. '-0')
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[1], ttl + ${metaGraceMs})
end
return {epoch, offset, 0}
`

// KEYS: meta, stream; ARGV: candidate epoch, since ('' = the newest), limit
const readScript = ensureEpoch + `
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
interface HistoryCommands {
  historyAppend: (meta: string, stream: string, idempotency: string, epoch: string, payload: Buffer, properties: string, now: number, size: number, ttlMs: number, windowMs: number, qos: number) => Promise<[string, number, number]>
  historyReadBuffer: (meta: string, stream: string, epoch: string, since: string, limit: number) => Promise<[Buffer, number, Entry[]]>
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
export function redisHistoryStore (redis: Redis): HistoryStore {
  redis.defineCommand('historyAppend', { numberOfKeys: 3, lua: appendScript })
  redis.defineCommand('historyRead', { numberOfKeys: 2, lua: readScript })
  const commands = redis as unknown as HistoryCommands
  return {
    append: async (input, config, windowMs) => {
      const window = input.idempotencyKey === undefined ? 0 : windowMs
      const [epoch, offset, duplicate] = await commands.historyAppend(
        metaKey(input.topic), streamKey(input.topic), window === 0 ? metaKey(input.topic) : idempotencyKey(input.topic, input.idempotencyKey as string),
        newEpoch(), input.payload, encodeProperties(input.properties), input.time, config.size, config.ttlSeconds * 1000, window, input.qos)
      return { epoch, offset, duplicate: duplicate === 1 }
    },
    read: async (request, config) => {
      const [epoch, latest, entries] = await commands.historyReadBuffer(metaKey(request.topic), streamKey(request.topic), newEpoch(), request.since === undefined ? '' : String(request.since), request.limit)
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
