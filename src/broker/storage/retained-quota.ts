// Caps on retained messages: per user (role limits `maxRetained`, `maxRetainedBytes`) and for
// the whole broker (`limits.maxRetainedMessages`). A retained PUBLISH over a cap is still
// delivered live and acknowledged, but not stored, as EMQX's retainer.max_retained_messages
// does: a deliberate exception to [MQTT-3.3.1-5] (store every retained message), which MQTT
// 3.1.1 gives no way to refuse, so that one user cannot fill the broker's memory or Redis.
//
// Each retained topic a client stored is recorded with its owner (the user; none for
// anonymous clients and wills, which meet only the broker-wide cap) and payload size, so that
// replacing a topic or clearing it (an empty payload [MQTT-3.3.1-10]) frees its owner's slot
// and bytes. The ledger is in memory on one node and in Redis in a cluster, updated atomically
// with the check, so every node sees the same counts.
import type { RedisClient } from './redis-clients.js'
import type { RedisKeys } from './redis-keys.js'
import type { RoleLimits } from '../../acl/authorize.js'
import type { Limits } from '../protocol/limits.js'
import type { Logger } from '../observability/logger.js'
import type { BrokerMetrics } from '../observability/metrics.js'

/** Which cap a retained message would break. */
export type RetainedLimit = 'user_count' | 'user_bytes' | 'global_count'

export interface RetainedEntry {
  /** The user storing it; null: counted only against the broker-wide cap. */
  owner: string | null
  topic: string
  /** Payload bytes; 0 clears the topic. */
  bytes: number
  /** Retained messages the owner may have; undefined = unlimited. */
  maxCount: number | undefined
  /** Payload bytes the owner's retained messages may total; undefined = unlimited. */
  maxBytes: number | undefined
}

/**
 * Records a retained message (or the clearing of one) if it is within the caps; resolves with
 * the cap it breaks otherwise, recording nothing.
 */
export type RetainedLedger = (entry: RetainedEntry) => Promise<RetainedLimit | null>

/** One node: the ledger in memory. `maxMessages` 0 = no broker-wide cap. */
export function memoryRetainedLedger (maxMessages: number): RetainedLedger {
  const topics = new Map<string, { owner: string | null, bytes: number }>()
  const owners = new Map<string, { count: number, bytes: number }>()
  const release = (owner: string | null, bytes: number): void => {
    if (owner === null) return
    const used = owners.get(owner)
    if (used === undefined) return
    used.count--
    used.bytes -= bytes
    if (used.count <= 0) owners.delete(owner)
  }
  return async ({ owner, topic, bytes, maxCount, maxBytes }) => {
    const previous = topics.get(topic)
    if (bytes === 0) {
      if (previous !== undefined) release(previous.owner, previous.bytes)
      topics.delete(topic)
      return null
    }
    const replacesOwn = previous !== undefined && previous.owner === owner
    if (owner !== null) {
      const used = owners.get(owner) ?? { count: 0, bytes: 0 }
      if (maxCount !== undefined && used.count + (replacesOwn ? 0 : 1) > maxCount) return 'user_count'
      if (maxBytes !== undefined && used.bytes - (replacesOwn ? previous.bytes : 0) + bytes > maxBytes) return 'user_bytes'
    }
    if (previous === undefined && maxMessages > 0 && topics.size >= maxMessages) return 'global_count'
    if (previous !== undefined) release(previous.owner, previous.bytes)
    topics.set(topic, { owner, bytes })
    if (owner !== null) {
      const used = owners.get(owner) ?? { count: 0, bytes: 0 }
      owners.set(owner, { count: used.count + 1, bytes: used.bytes + bytes })
    }
    return null
  }
}

// Redis keys (ioredis adds the configured key prefix), on one slot of a Redis Cluster (tag
// {retained-quota}: the script updates all three):
//   retained-quota:topics   hash  topic -> "<bytes> <owner>" (owner empty: none)
//   retained-quota:counts   hash  owner -> retained messages
//   retained-quota:bytes    hash  owner -> their payload bytes
// ARGV: topic, owner ('' = none), bytes, max count, max bytes, broker-wide max (-1 = none).
const admitScript = `
local topic, owner, bytes = ARGV[1], ARGV[2], tonumber(ARGV[3])
local maxCount, maxBytes, maxMessages = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local previous = redis.call('HGET', KEYS[1], topic)
local previousBytes, previousOwner = 0, nil
if previous then
  local space = string.find(previous, ' ', 1, true)
  previousBytes = tonumber(string.sub(previous, 1, space - 1))
  previousOwner = string.sub(previous, space + 1)
end
local function release ()
  if previousOwner == nil or previousOwner == '' then return end
  if redis.call('HINCRBY', KEYS[2], previousOwner, -1) <= 0 then
    redis.call('HDEL', KEYS[2], previousOwner)
    redis.call('HDEL', KEYS[3], previousOwner)
  else
    redis.call('HINCRBY', KEYS[3], previousOwner, -previousBytes)
  end
end
if bytes == 0 then
  release()
  redis.call('HDEL', KEYS[1], topic)
  return false
end
local replacesOwn = previousOwner == owner
if owner ~= '' then
  local count = tonumber(redis.call('HGET', KEYS[2], owner) or '0')
  local used = tonumber(redis.call('HGET', KEYS[3], owner) or '0')
  if not replacesOwn then count = count + 1 else used = used - previousBytes end
  if maxCount >= 0 and count > maxCount then return 'user_count' end
  if maxBytes >= 0 and used + bytes > maxBytes then return 'user_bytes' end
end
if not previous and maxMessages >= 0 and redis.call('HLEN', KEYS[1]) >= maxMessages then return 'global_count' end
release()
redis.call('HSET', KEYS[1], topic, bytes .. ' ' .. owner)
if owner ~= '' then
  redis.call('HINCRBY', KEYS[2], owner, 1)
  redis.call('HINCRBY', KEYS[3], owner, bytes)
end
return false`

/** A cluster: the ledger in Redis, checked and updated in one script. */
export function redisRetainedLedger (redis: RedisClient, maxMessages: number, keys: RedisKeys): RetainedLedger {
  const unlimited = (max: number | undefined): number => max ?? -1
  const [topics, counts, sizes] = ['topics', 'counts', 'bytes'].map((name) => keys.shared('retained-quota', name))
  return async ({ owner, topic, bytes, maxCount, maxBytes }) => {
    const refused = await redis.eval(admitScript, 3, topics as string, counts as string, sizes as string,
      topic, owner ?? '', bytes, unlimited(maxCount), unlimited(maxBytes), maxMessages === 0 ? -1 : maxMessages)
    return typeof refused === 'string' ? refused as RetainedLimit : null
  }
}

/** What a retained message looks like to the caps (Aedes' and the HTTP API's packets). */
interface RetainedPacket {
  topic: string
  payload: Buffer | string
  retain: boolean
}

/** Who publishes, for the audit line. */
export interface Publisher {
  user: string | null
  clientId: string | null
  via: 'mqtt' | 'will' | 'http'
}

/** Applies the retained caps to every path a retained message enters by (MQTT, wills, HTTP). */
export class RetainedCaps {
  constructor (private readonly parts: { ledger: RetainedLedger, limits: Limits, metrics: BrokerMetrics, audit: Logger, logger: Logger }) {}

  /**
   * Records a retained packet within the caps; over one, clears its retain flag, so that it is
   * delivered live and not stored, and counts and logs it.
   */
  async apply (packet: RetainedPacket, publisher: Publisher, limits: RoleLimits): Promise<void> {
    const { ledger, metrics, audit, logger } = this.parts
    const entry = {
      owner: publisher.user,
      topic: packet.topic,
      bytes: Buffer.byteLength(packet.payload),
      // roles that set no limit get the broker-wide default per user
      maxCount: limits.maxRetained ?? unlimitedAsUndefined(this.parts.limits.maxRetainedPerUser),
      maxBytes: limits.maxRetainedBytes ?? unlimitedAsUndefined(this.parts.limits.maxRetainedBytesPerUser)
    }
    const refused = await ledger(entry).catch((err: Error) => {
      // the store itself needs Redis too: the message is stored or fails there
      logger.warn({ event: 'retained.unchecked', topic: packet.topic, reason: err.message }, 'retained caps not checked')
      return null
    })
    if (refused === null) return
    packet.retain = false
    metrics.retainedRefused(refused)
    audit.warn({ event: 'limit.exceeded', action: 'retain', ...publisher, topic: packet.topic, reason: refused }, 'retained message delivered live, not stored')
  }
}

const unlimitedAsUndefined = (max: number): number | undefined => max === 0 ? undefined : max
