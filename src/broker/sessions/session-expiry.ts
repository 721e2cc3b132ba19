// Session expiry (sessions.expirySeconds): a persistent session (CleanSession 0) whose client
// has been disconnected for longer than the TTL is deleted, with its subscriptions, queued
// messages, inbound QoS 2 state and will. MQTT 3.1.1 keeps a session until a CleanSession 1
// connection discards it [MQTT-3.1.2-4]; like Mosquitto's persistent_client_expiration, this is
// the operator's bound on the storage of clients that never come back.
//
// Each connection of a client id carries a token (node id + sequence number); the session is
// offline only when the connection holding the latest token ends, so a takeover by a newer
// connection, on this node or another, never marks it offline. In a cluster the offline sessions
// are a Redis sorted set scored by disconnect time: a reconnect on any node removes the entry,
// and a sweeper claims an expired entry with ZREM, so exactly one node deletes each session.
// Sessions online on a node that died (SIGKILL) go offline when a survivor claims the dead node
// (cluster/node-registry.ts).
import type { Redis } from 'ioredis'
import type { Logger } from '../observability/logger.js'

/** Where online and offline sessions are tracked. */
export interface SessionStore {
  /** A CleanSession 0 connection (token) of `clientId` is up: its session is online. */
  connected: (clientId: string, token: string) => Promise<void>
  /** A CleanSession 1 connection is up: any session of `clientId` is discarded [MQTT-3.1.2-6], none stays. */
  discarded: (clientId: string) => Promise<void>
  /** The connection `token` ended: its session goes offline unless a newer connection holds it. */
  disconnected: (clientId: string, token: string, at: number) => Promise<void>
  /** Takes sessions offline since before `cutoff` (ms), at most `limit`; each is handed to one caller only. */
  claimExpired: (cutoff: number, limit: number) => Promise<string[]>
  /** Sessions held by connections of a dead node are offline from now. */
  nodeDied: (node: string, at: number) => Promise<void>
  /**
   * Deletes what the persistence's cleanSubscriptions leaves of a session (Redis: its queued
   * packets), and its owner unless a connection holds the client id again.
   */
  purge: (clientId: string) => Promise<void>
  /**
   * The connection `token` of `owner` (client-id-owner.ts) holds `clientId`: the id becomes
   * `owner`'s if it has no owner. A token is `<node>|<sequence>|clean` for a CleanSession 1
   * connection (its session ends with it, also when its node dies), `...|persistent` else. Resolves with the id's owner when it is someone else (then
   * nothing changes), null when claimed.
   */
  claim: (clientId: string, owner: string, token: string) => Promise<string | null>
  /** The connection `token` ended; its session too when `ended`, which frees the id if no newer connection holds it. */
  release: (clientId: string, token: string, ended: boolean) => Promise<void>
}

/** The callback-or-promise persistence methods of Aedes that delete a session's state. */
export interface SessionPersistence {
  cleanSubscriptions: (client: { id: string }) => Promise<unknown>
  cleanIncoming?: (client: { id: string }) => Promise<unknown>
  delWill: (client: { id: string, brokerId: string }) => Promise<unknown>
}

export interface SessionExpiryOptions {
  store: SessionStore
  persistence: SessionPersistence
  ttlMs: number
  nodeId: string
  /** Whether a client id is connected to this node right now. */
  isConnectedHere: (clientId: string) => boolean
  onExpired: () => void
  logger: Logger
}

/** How often expired sessions are looked for: a quarter of the TTL, at least once a minute. */
export function sweepIntervalMs (ttlMs: number): number {
  return Math.min(ttlMs / 4, 60_000)
}

const batch = 100

export class SessionExpiry {
  private readonly tokens = new WeakMap<object, string>()
  private sequence = 0
  private timer: NodeJS.Timeout | null
  private sweeping: Promise<void> | null = null
  private readonly pending = new Set<Promise<void>>()

  constructor (private readonly options: SessionExpiryOptions) {
    this.timer = setInterval(() => { void this.sweep() }, sweepIntervalMs(options.ttlMs))
    this.timer.unref()
  }

  connected (client: { id: string, clean: boolean }): void {
    if (client.clean) {
      this.track(this.options.store.discarded(client.id))
      return
    }
    const token = `${this.options.nodeId}|${++this.sequence}`
    this.tokens.set(client, token)
    this.track(this.options.store.connected(client.id, token))
  }

  disconnected (client: { id: string }): void {
    const token = this.tokens.get(client)
    if (token === undefined) return
    this.tokens.delete(client)
    this.track(this.options.store.disconnected(client.id, token, Date.now()))
  }

  nodeDied (node: string): Promise<void> {
    return this.options.store.nodeDied(node, Date.now())
  }

  /** Deletes the sessions expired by now; concurrent calls share one sweep. */
  sweep (): Promise<void> {
    this.sweeping ??= this.expire().catch((err: Error) => {
      this.options.logger.warn({ event: 'session.sweep-failed', reason: err.message }, 'session expiry sweep failed')
    }).finally(() => { this.sweeping = null })
    return this.sweeping
  }

  async close (): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    await this.sweeping
    await Promise.all(this.pending)
  }

  private async expire (): Promise<void> {
    const { store, ttlMs } = this.options
    for (;;) {
      const claimed = await store.claimExpired(Date.now() - ttlMs, batch)
      for (const clientId of claimed) await this.delete(clientId)
      if (claimed.length < batch || this.timer === null) return
    }
  }

  private async delete (clientId: string): Promise<void> {
    const { persistence, store, logger, nodeId } = this.options
    // tracking is asynchronous: a connection that is up here keeps its session regardless
    if (this.options.isConnectedHere(clientId)) return
    const client = { id: clientId, brokerId: nodeId }
    await store.purge(clientId)
    await persistence.cleanSubscriptions(client)
    await persistence.cleanIncoming?.(client)
    // Wills are published or deleted when their connection ends (or by the survivors when a
    // node dies), so one is rarely left; this node's copy is deleted in case.
    await persistence.delWill(client)
    this.options.onExpired()
    logger.info({ event: 'session.expired', clientId, expirySeconds: this.options.ttlMs / 1000 }, 'persistent session expired: subscriptions and queued messages deleted')
  }

  private track (work: Promise<void>): void {
    const tracked = work.catch((err: Error) => {
      this.options.logger.warn({ event: 'session.track-failed', reason: err.message }, 'could not record a session connect or disconnect')
    })
    this.pending.add(tracked)
    void tracked.finally(() => this.pending.delete(tracked))
  }
}

/** One node: maps in memory. */
export function memorySessionStore (): SessionStore {
  const owners = new Map<string, string>()
  const holders = new Map<string, string>()
  const online = new Map<string, string>()
  // insertion order is disconnect order: an entry is deleted before it is set again
  const offline = new Map<string, number>()
  return {
    connected: async (clientId, token) => {
      offline.delete(clientId)
      online.set(clientId, token)
    },
    discarded: async (clientId) => {
      offline.delete(clientId)
      online.delete(clientId)
    },
    disconnected: async (clientId, token, at) => {
      if (online.get(clientId) !== token) return
      online.delete(clientId)
      offline.set(clientId, at)
    },
    claimExpired: async (cutoff, limit) => {
      const claimed: string[] = []
      for (const [clientId, at] of offline) {
        if (at > cutoff || claimed.length === limit) break
        offline.delete(clientId)
        claimed.push(clientId)
      }
      return claimed
    },
    nodeDied: async () => {},
    purge: async (clientId) => {
      if (!holders.has(clientId)) owners.delete(clientId)
    },
    claim: async (clientId, owner, token) => {
      const current = owners.get(clientId)
      if (current !== undefined && current !== owner) return current
      owners.set(clientId, owner)
      holders.set(clientId, token)
      return null
    },
    release: async (clientId, token, ended) => {
      if (holders.get(clientId) !== token) return
      holders.delete(clientId)
      if (ended) owners.delete(clientId)
    }
  }
}

// Redis keys (ioredis adds the configured key prefix):
//   sessions:online        hash  client id -> token of the connection holding its session
//   sessions:node:<node>   set   client ids whose holding connection is on that node
//   sessions:offline       zset  client id -> when its persistent session went offline (ms)
//   sessions:owner         hash  client id -> who owns it (client-id-owner.ts), while its session lives
//   sessions:holder        hash  client id -> token of the latest connection that claimed it
//   sessions:held:<node>   set   client ids claimed by connections on that node
const onlineKey = 'sessions:online'
const ownerKey = 'sessions:owner'
const holderKey = 'sessions:holder'
const offlineKey = 'sessions:offline'
const nodeKey = (node: string): string => `sessions:node:${node}`
const heldKey = (node: string): string => `sessions:held:${node}`
const nodeOfToken = (token: string): string => token.slice(0, token.lastIndexOf('|'))

const connectScript = `
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])`

// Only the connection holding the latest token takes the session offline.
const disconnectScript = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
elseif not current or string.sub(current, 1, #ARGV[4]) ~= ARGV[4] then
  redis.call('SREM', KEYS[3], ARGV[1])
end`

// The dead node's sessions that it still held go offline now. Its connections hold their ids no
// more: a clean session's ended with its connection, which frees the id; a persistent one's is
// freed when it expires.
const nodeDiedScript = `
for _, client in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local current = redis.call('HGET', KEYS[1], client)
  if current and string.sub(current, 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], client)
    redis.call('ZADD', KEYS[2], ARGV[2], client)
  end
end
redis.call('DEL', KEYS[3])
for _, client in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local holder = redis.call('HGET', KEYS[4], client)
  if holder and string.sub(holder, 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[4], client)
    if string.sub(holder, -6) == '|clean' then
      redis.call('HDEL', KEYS[6], client)
    end
  end
end
redis.call('DEL', KEYS[5])`

// aedes-persistence-redis queues a message once (packet:<broker>:<counter>, with a count of the
// sessions holding it) and lists it per session (outgoing:<client>), or the session's own copy
// (outgoing:<client>:<broker>:<counter>) once sent. Deleting only the list, as its
// cleanSubscriptions does, would leave the packets of an expired session behind forever. The
// session gone, its client id is free again, unless a connection claimed it meanwhile.
const purgeScript = `
local prefix = ARGV[1]
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local packet = entry
  local broker, counter = string.match(entry, '^outgoing:[^:]*:(.+):([^:]+)$')
  if broker then
    redis.call('DEL', prefix .. entry)
    packet = 'packet:' .. broker .. ':' .. counter
  end
  if redis.call('DECR', prefix .. packet .. ':offlineCount') <= 0 then
    redis.call('DEL', prefix .. packet, prefix .. packet .. ':offlineCount')
  end
end
redis.call('DEL', KEYS[1])
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
end`

// Atomic, so that two users claiming a free id at once cannot both get it.
const claimScript = `
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if owner and owner ~= ARGV[2] then
  return owner
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
return false`

// Only the connection that claimed last frees the id: a takeover's old connection never does.
const releaseScript = `
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  if ARGV[3] == '1' then
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
end`

/** A cluster: Redis, shared by the nodes. `redis` applies `keyPrefix` to keys. */
export function redisSessionStore (redis: Redis, nodeId: string, keyPrefix: string): SessionStore {
  return {
    connected: async (clientId, token) => {
      await redis.eval(connectScript, 3, onlineKey, offlineKey, nodeKey(nodeOfToken(token)), clientId, token)
    },
    // a persistent connection still open elsewhere then finds no token of its own at its
    // disconnect, and leaves no offline entry
    discarded: async (clientId) => {
      for (const [err] of await redis.pipeline().zrem(offlineKey, clientId).hdel(onlineKey, clientId).exec() ?? []) {
        if (err !== null) throw err
      }
    },
    disconnected: async (clientId, token, at) => {
      await redis.eval(disconnectScript, 3, onlineKey, offlineKey, nodeKey(nodeId), clientId, token, at, `${nodeId}|`)
    },
    claimExpired: async (cutoff, limit) => {
      const candidates = await redis.zrangebyscore(offlineKey, '-inf', cutoff, 'LIMIT', 0, limit)
      if (candidates.length === 0) return []
      const pipeline = redis.pipeline()
      for (const clientId of candidates) pipeline.zrem(offlineKey, clientId)
      const removed = await pipeline.exec() ?? []
      // ZREM removes an entry for one caller only: the node that deletes that session
      return candidates.filter((_, i) => removed[i]?.[0] === null && removed[i]?.[1] === 1)
    },
    nodeDied: async (node, at) => {
      await redis.eval(nodeDiedScript, 6, onlineKey, offlineKey, nodeKey(node), holderKey, heldKey(node), ownerKey, `${node}|`, at)
    },
    purge: async (clientId) => {
      await redis.eval(purgeScript, 3, `outgoing:${encodeURIComponent(clientId)}`, ownerKey, holderKey, keyPrefix, clientId)
    },
    claim: async (clientId, owner, token) => {
      return await redis.eval(claimScript, 3, ownerKey, holderKey, heldKey(nodeId), clientId, owner, token) as string | null
    },
    release: async (clientId, token, ended) => {
      await redis.eval(releaseScript, 3, ownerKey, holderKey, heldKey(nodeId), clientId, token, ended ? '1' : '0')
    }
  }
}
