// Session expiry: a session whose client has been disconnected for longer than its lifetime is
// deleted, with its subscriptions, queued messages, inbound QoS 2 state and will.
// - MQTT 5: the lifetime is the client's Session Expiry Interval (CONNECT, or DISCONNECT
//   [MQTT-3.14.2-2]), capped by sessions.expirySeconds (Aedes clamps it and says so in the
//   CONNACK); 0 ends the session with its connection [MQTT-3.1.2-23].
// - MQTT 3.1.1 keeps a persistent session (CleanSession 0) until a CleanSession 1 connection
//   discards it [MQTT-3.1.2-4]; like Mosquitto's persistent_client_expiration,
//   sessions.expirySeconds is the operator's bound on the storage of clients that never return.
//
// Aedes 2 times v5 sessions per process, which a cluster cannot use: a client resumed on another
// node had its session wiped by the old node's timer. Here each connection of a client id
// carries a token (node id + sequence number); the session is offline only when the connection
// holding the latest token ends, so a takeover by a newer connection, on this node or another,
// never marks it offline. In a cluster the offline sessions are a Redis sorted set scored by
// when they expire: a reconnect on any node removes the entry, and a sweeper claims an expired
// entry with ZREM, so exactly one node deletes each session. Sessions online on a node that
// died (SIGKILL) go offline when a survivor claims the dead node (cluster/node-registry.ts),
// each with the lifetime it connected with.
import type { RedisClient } from '../storage/redis-clients.js'
import type { RedisKeys } from '../storage/redis-keys.js'
import type { Logger } from '../observability/logger.js'

/** What the store knows of one session (the admin API). */
export interface SessionRecord {
  clientId: string
  /** Who owns its client id (client-id-owner.ts: `user:<sub>`, `anonymous`), null when unknown. */
  owner: string | null
  online: boolean
  /** The node of the connection holding it (online). */
  node: string | null
  /** Online: how long it outlives its connection (ms; -1 for ever, 0 ends with it). */
  lifetimeMs: number | null
  /** Offline: when it expires (ms). */
  expiresAt: number | null
}

/** Where online and offline sessions are tracked. */
export interface SessionStore {
  /** A connection (token) of `clientId` whose session outlives it by `lifetimeMs` (-1: for ever) is up: its session is online. */
  connected: (clientId: string, token: string, lifetimeMs: number) => Promise<void>
  /** A CleanSession 1 connection is up: any session of `clientId` is discarded [MQTT-3.1.2-6], none stays. */
  discarded: (clientId: string) => Promise<void>
  /** The connection `token` ended: its session goes offline until `expiresAt` (ms; -1: for ever) unless a newer connection holds it. */
  disconnected: (clientId: string, token: string, expiresAt: number) => Promise<void>
  /** Takes sessions expired by `now` (ms), at most `limit`; each is handed to one caller only. */
  claimExpired: (now: number, limit: number) => Promise<string[]>
  /** Sessions held by connections of a dead node are offline from `at`, each for the lifetime it connected with. */
  nodeDied: (node: string, at: number) => Promise<void>
  /** Whether a connection, on any node, holds `clientId` now (claimed and not released). */
  isHeld: (clientId: string) => Promise<boolean>
  /**
   * Deletes what the persistence's cleanSubscriptions leaves of a session (Redis: its queued
   * packets), and its owner unless a connection holds the client id again.
   */
  purge: (clientId: string) => Promise<void>
  /**
   * The connection `token` of `owner` (client-id-owner.ts) holds `clientId`: the id becomes
   * `owner`'s if it has no owner. A token is `<node>|<sequence>|clean` for a CleanSession 1
   * connection (its session ends with it, also when its node dies), `...|persistent` else.
   * With `discard` (an MQTT 3.1.1 CleanSession 1 connection), any session of `clientId` is
   * discarded too, as `discarded` does [MQTT-3.1.2-6]. Resolves with the id's owner when it is
   * someone else (then nothing changes), null when claimed.
   */
  claim: (clientId: string, owner: string, token: string, discard: boolean) => Promise<string | null>
  /** The connection `token` ended; its session too when `ended`, which frees the id if no newer connection holds it. */
  release: (clientId: string, token: string, ended: boolean) => Promise<void>
  /**
   * A page of the sessions, online then offline, from `cursor` ('' for the first page; the
   * page's `next`, '' after the last); about `limit` each (a scan: an entry may come twice).
   */
  page: (cursor: string, limit: number) => Promise<{ sessions: SessionRecord[], next: string }>
  /** One session, or null when it is neither online nor offline. */
  record: (clientId: string) => Promise<SessionRecord | null>
}

/** The callback-or-promise persistence methods of Aedes that delete a session's state. */
export interface SessionPersistence {
  cleanSubscriptions: (client: { id: string }) => Promise<unknown>
  cleanIncoming?: (client: { id: string }) => Promise<unknown>
  delWill: (client: { id: string, brokerId: string }) => Promise<unknown>
}

/** What a session's lifetime is read from: Aedes' client. */
export interface SessionHolder {
  id: string
  clean: boolean
  /** 5 for MQTT 5, 3 or 4 else. */
  version: number | null
  /** MQTT 5: seconds, clamped by Aedes to sessions.expirySeconds; 0xFFFFFFFF never expires. */
  sessionExpiryInterval: number
}

export interface SessionExpiryOptions {
  store: SessionStore
  persistence: SessionPersistence
  /** sessions.expirySeconds in ms: the lifetime of an MQTT 3.1.1 persistent session, the cap of a v5 one; 0 = no bound. */
  maxLifetimeMs: number
  nodeId: string
  /** Whether a client id is connected to this node right now. */
  isConnectedHere: (clientId: string) => boolean
  onExpired: (clientId: string) => void
  logger: Logger
}

/** How often expired sessions are looked for: a quarter of the bound, at least once a minute. */
export function sweepIntervalMs (maxLifetimeMs: number): number {
  return maxLifetimeMs === 0 ? 60_000 : Math.min(maxLifetimeMs / 4, 60_000)
}

// MQTT 5's Session Expiry Interval for "never" [MQTT-3.1.2.11.2]
const neverExpires = 0xFFFFFFFF

const batch = 100

export class SessionExpiry {
  private readonly tokens = new WeakMap<object, string>()
  private sequence = 0
  private timer: NodeJS.Timeout | null
  private sweeping: Promise<void> | null = null
  private sweepAgain: Promise<void> | null = null
  private readonly pending = new Set<Promise<void>>()
  // sweeps due before the periodic one (sessions with short lifetimes went offline here), and
  // one timer for the earliest; each due time is kept until swept, so a later one is not lost
  private due: number[] = []
  private early: { at: number, timer: NodeJS.Timeout } | null = null

  constructor (private readonly options: SessionExpiryOptions) {
    this.timer = setInterval(() => { void this.sweep() }, sweepIntervalMs(options.maxLifetimeMs))
    this.timer.unref()
  }

  /** How long the session of `client` outlives its connection, in ms; -1 for ever. */
  lifetimeMs (client: SessionHolder): number {
    const { maxLifetimeMs } = this.options
    if (client.version !== 5) return maxLifetimeMs === 0 ? -1 : maxLifetimeMs
    if (client.sessionExpiryInterval === neverExpires) return maxLifetimeMs === 0 ? -1 : maxLifetimeMs
    return client.sessionExpiryInterval * 1000
  }

  connected (client: SessionHolder): void {
    // an MQTT 3.1.1 clean session was discarded by its client-id claim (client-id-owner.ts), in
    // the same round trip [MQTT-3.1.2-6]; a v5 one ends with its connection, once no newer
    // connection holds the id
    if (client.clean && client.version !== 5) return
    const token = `${this.options.nodeId}|${++this.sequence}`
    this.tokens.set(client, token)
    this.track(this.options.store.connected(client.id, token, this.lifetimeMs(client)))
  }

  disconnected (client: SessionHolder): void {
    const token = this.tokens.get(client)
    if (token === undefined) return
    this.tokens.delete(client)
    // read now: a v5 DISCONNECT may have changed it [MQTT-3.14.2-2]
    const lifetime = this.lifetimeMs(client)
    const expiresAt = lifetime < 0 ? -1 : Date.now() + lifetime
    this.track(this.options.store.disconnected(client.id, token, expiresAt).then(() => {
      if (expiresAt >= 0) this.sweepAt(expiresAt)
    }))
  }

  /** Sweeps at `at` when that is before the periodic sweep (one timer, for the earliest due time). */
  private sweepAt (at: number): void {
    if (this.timer === null || at - Date.now() >= sweepIntervalMs(this.options.maxLifetimeMs)) return
    this.due.push(at)
    if (this.early === null || at < this.early.at) this.armEarly(at)
  }

  private armEarly (at: number): void {
    if (this.early !== null) clearTimeout(this.early.timer)
    const timer = setTimeout(() => {
      this.early = null
      const now = Date.now()
      this.due = this.due.filter((due) => due > now)
      void this.sweep()
      // the next due time, found in one pass (the list can be long)
      let next = Infinity
      for (const due of this.due) if (due < next) next = due
      if (next !== Infinity) this.armEarly(next)
    }, Math.max(0, at - Date.now()))
    timer.unref()
    this.early = { at, timer }
  }

  nodeDied (node: string): Promise<void> {
    return this.options.store.nodeDied(node, Date.now())
  }

  /** Deletes the sessions expired by now; concurrent calls share one sweep. */
  sweep (): Promise<void> {
    if (this.sweeping !== null) {
      // the sweep under way may have read the store before this request's session went
      // offline: one more after it (one for all the requests made meanwhile)
      this.sweepAgain ??= this.sweeping.then(() => {
        this.sweepAgain = null
        return this.timer === null ? undefined : this.sweep()
      })
      return this.sweepAgain
    }
    this.sweeping = this.expire().catch((err: Error) => {
      this.options.logger.warn({ event: 'session.sweep-failed', reason: err.message }, 'session expiry sweep failed')
    }).finally(() => { this.sweeping = null })
    return this.sweeping
  }

  async close (): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    if (this.early !== null) clearTimeout(this.early.timer)
    this.early = null
    this.due = []
    await this.sweeping
    await this.sweepAgain
    await Promise.all(this.pending)
  }

  private async expire (): Promise<void> {
    const { store } = this.options
    for (;;) {
      const claimed = await store.claimExpired(Date.now(), batch)
      for (const clientId of claimed) await this.delete(clientId)
      if (claimed.length < batch || this.timer === null) return
    }
  }

  private async delete (clientId: string): Promise<void> {
    // tracking is asynchronous: a connection that is up here keeps its session regardless
    if (this.options.isConnectedHere(clientId)) return
    await this.remove(clientId)
    this.options.onExpired(clientId)
    this.options.logger.info({ event: 'session.expired', clientId }, 'session expired: subscriptions and queued messages deleted')
  }

  /** Deletes a session now (the admin API; its connection, if any, was closed first), whatever its expiry. */
  async discard (clientId: string): Promise<void> {
    await this.options.store.discarded(clientId)
    await this.remove(clientId)
  }

  private async remove (clientId: string): Promise<void> {
    const { persistence, store, nodeId } = this.options
    const client = { id: clientId, brokerId: nodeId }
    await store.purge(clientId)
    await persistence.cleanSubscriptions(client)
    await persistence.cleanIncoming?.(client)
    // Wills are published or deleted when their connection ends (or by the survivors when a
    // node dies), so one is rarely left; this node's copy is deleted in case.
    await persistence.delWill(client)
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
  const lifetimes = new Map<string, number>()
  // client id -> when its session expires
  const offline = new Map<string, number>()
  const record = (clientId: string): SessionRecord | null => {
    const token = online.get(clientId)
    const expiresAt = offline.get(clientId)
    if (token === undefined && expiresAt === undefined) return null
    return { clientId, owner: owners.get(clientId) ?? null, online: token !== undefined, node: token === undefined ? null : nodeOfToken(token), lifetimeMs: lifetimes.get(clientId) ?? null, expiresAt: expiresAt ?? null }
  }
  return {
    connected: async (clientId, token, lifetimeMs) => {
      offline.delete(clientId)
      online.set(clientId, token)
      lifetimes.set(clientId, lifetimeMs)
    },
    discarded: async (clientId) => {
      offline.delete(clientId)
      online.delete(clientId)
      lifetimes.delete(clientId)
    },
    disconnected: async (clientId, token, expiresAt) => {
      if (online.get(clientId) !== token) return
      online.delete(clientId)
      lifetimes.delete(clientId)
      if (expiresAt >= 0) offline.set(clientId, expiresAt)
    },
    claimExpired: async (now, limit) => {
      const claimed: string[] = []
      for (const [clientId, expiresAt] of offline) {
        if (claimed.length === limit) break
        if (expiresAt > now) continue
        offline.delete(clientId)
        claimed.push(clientId)
      }
      return claimed
    },
    nodeDied: async () => {},
    isHeld: async (clientId) => holders.has(clientId),
    purge: async (clientId) => {
      if (!holders.has(clientId)) owners.delete(clientId)
    },
    claim: async (clientId, owner, token, discard) => {
      const current = owners.get(clientId)
      if (current !== undefined && current !== owner) return current
      owners.set(clientId, owner)
      holders.set(clientId, token)
      if (discard) {
        offline.delete(clientId)
        online.delete(clientId)
        lifetimes.delete(clientId)
      }
      return null
    },
    release: async (clientId, token, ended) => {
      if (holders.get(clientId) !== token) return
      holders.delete(clientId)
      if (ended) owners.delete(clientId)
    },
    // the cursor is a phase (online, then offline) and a position in it, as in Redis
    page: async (cursor, limit) => {
      const [phase, at = '0'] = cursor === '' ? ['online'] : cursor.split(':')
      const start = Number(at) || 0
      const ids = [...(phase === 'offline' ? offline : online).keys()]
      const sessions = ids.slice(start, start + limit).map(record).filter((found) => found !== null)
      const next = start + limit < ids.length ? `${phase}:${start + limit}` : phase === 'offline' ? '' : 'offline:0'
      return { sessions, next }
    },
    record: async (clientId) => record(clientId)
  }
}

// Redis keys (ioredis adds the configured key prefix), all on one slot of a Redis Cluster (tag
// {sessions}): the scripts below update several of them at once.
//   sessions:online        hash  client id -> token of the connection holding its session
//   sessions:node:<node>   set   client ids whose holding connection is on that node
//   sessions:lifetime      hash  client id -> how long its online session outlives its connection (ms; -1 for ever)
//   sessions:offline       zset  client id -> when its offline session expires (ms)
//   sessions:owner         hash  client id -> who owns it (client-id-owner.ts), while its session lives
//   sessions:holder        hash  client id -> token of the latest connection that claimed it
//   sessions:held:<node>   set   client ids claimed by connections on that node
const nodeOfToken = (token: string): string => token.slice(0, token.lastIndexOf('|'))

const connectScript = `
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])`

// Only the connection holding the latest token takes the session offline.
const disconnectScript = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  if tonumber(ARGV[3]) >= 0 then
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  end
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
    local lifetime = tonumber(redis.call('HGET', KEYS[7], client) or '-1')
    redis.call('HDEL', KEYS[7], client)
    if lifetime >= 0 then
      redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) + lifetime, client)
    end
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

// The end of purgeScript, for a Redis Cluster, where a session's queue and the packets it
// shares with other sessions sit on other slots than the sessions' keys.
const freeIdScript = `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end`

/**
 * purgeScript's queue release, one key at a time (a Redis Cluster refuses a script whose keys
 * span slots, and keys a script computes): not atomic, which a session that expired, and
 * whose client is not connected, does not need.
 */
async function releaseQueue (redis: RedisClient, clientId: string): Promise<void> {
  const queue = `outgoing:${encodeURIComponent(clientId)}`
  for (const entry of await redis.lrange(queue, 0, -1)) {
    let packet = entry
    const copy = /^outgoing:[^:]*:(.+):([^:]+)$/.exec(entry)
    if (copy !== null) {
      await redis.del(entry)
      packet = `packet:${copy[1] as string}:${copy[2] as string}`
    }
    if (await redis.decr(`${packet}:offlineCount`) <= 0) await Promise.all([redis.del(packet), redis.del(`${packet}:offlineCount`)])
  }
  await redis.del(queue)
}

// Atomic, so that two users claiming a free id at once cannot both get it. With ARGV[4] '1',
// the id's session is discarded as well (as `discarded`): one round trip per clean CONNECT.
const claimScript = `
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if owner and owner ~= ARGV[2] then
  return owner
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[6], ARGV[1])
end
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

type ScriptCall = (...keysThenArgs: Array<string | number>) => Promise<unknown>
/** The scripts run on every CONNECT and disconnect, by SHA (EVALSHA): not their text each time. */
interface SessionCommands {
  sessionConnect: ScriptCall
  sessionDisconnect: ScriptCall
  sessionClaim: ScriptCall
  sessionRelease: ScriptCall
}

/** A cluster: Redis, shared by the nodes. `redis` applies `keyPrefix` to keys; `keys` names them without it. */
export function redisSessionStore (redis: RedisClient, nodeId: string, keyPrefix: string, keys: RedisKeys): SessionStore {
  redis.defineCommand('sessionConnect', { numberOfKeys: 4, lua: connectScript })
  redis.defineCommand('sessionDisconnect', { numberOfKeys: 4, lua: disconnectScript })
  redis.defineCommand('sessionClaim', { numberOfKeys: 6, lua: claimScript })
  redis.defineCommand('sessionRelease', { numberOfKeys: 3, lua: releaseScript })
  const commands = redis as unknown as SessionCommands
  const [onlineKey, ownerKey, holderKey, offlineKey, lifetimeKey] = ['online', 'owner', 'holder', 'offline', 'lifetime'].map((name) => keys.shared('sessions', name)) as [string, string, string, string, string]
  const nodeKey = (node: string): string => keys.shared('sessions', 'node', node)
  const heldKey = (node: string): string => keys.shared('sessions', 'held', node)
  return {
    connected: async (clientId, token, lifetimeMs) => {
      await commands.sessionConnect(onlineKey, offlineKey, nodeKey(nodeOfToken(token)), lifetimeKey, clientId, token, lifetimeMs)
    },
    // a persistent connection still open elsewhere then finds no token of its own at its
    // disconnect, and leaves no offline entry
    discarded: async (clientId) => {
      for (const [err] of await redis.pipeline().zrem(offlineKey, clientId).hdel(onlineKey, clientId).hdel(lifetimeKey, clientId).exec() ?? []) {
        if (err !== null) throw err
      }
    },
    disconnected: async (clientId, token, expiresAt) => {
      await commands.sessionDisconnect(onlineKey, offlineKey, nodeKey(nodeId), lifetimeKey, clientId, token, expiresAt, `${nodeId}|`)
    },
    claimExpired: async (now, limit) => {
      const candidates = await redis.zrangebyscore(offlineKey, '-inf', now, 'LIMIT', 0, limit)
      if (candidates.length === 0) return []
      const pipeline = redis.pipeline()
      for (const clientId of candidates) pipeline.zrem(offlineKey, clientId)
      const removed = await pipeline.exec() ?? []
      // ZREM removes an entry for one caller only: the node that deletes that session
      return candidates.filter((_, i) => removed[i]?.[0] === null && removed[i]?.[1] === 1)
    },
    nodeDied: async (node, at) => {
      await redis.eval(nodeDiedScript, 7, onlineKey, offlineKey, nodeKey(node), holderKey, heldKey(node), ownerKey, lifetimeKey, `${node}|`, at)
    },
    isHeld: async (clientId) => await redis.hexists(holderKey, clientId) === 1,
    purge: async (clientId) => {
      if (keys.cluster) {
        await releaseQueue(redis, clientId)
        await redis.eval(freeIdScript, 2, ownerKey, holderKey, clientId)
        return
      }
      await redis.eval(purgeScript, 3, `outgoing:${encodeURIComponent(clientId)}`, ownerKey, holderKey, keyPrefix, clientId)
    },
    claim: async (clientId, owner, token, discard) => {
      return await commands.sessionClaim(ownerKey, holderKey, heldKey(nodeId), onlineKey, offlineKey, lifetimeKey, clientId, owner, token, discard ? '1' : '0') as string | null
    },
    release: async (clientId, token, ended) => {
      await commands.sessionRelease(ownerKey, holderKey, heldKey(nodeId), clientId, token, ended ? '1' : '0')
    },
    // HSCAN of the online sessions, then ZSCAN of the offline ones; the cursor says which
    page: async (cursor, limit) => {
      const [phase, at = '0'] = cursor === '' ? ['online'] : cursor.split(':')
      const offlinePhase = phase === 'offline'
      const [next, flat] = offlinePhase
        ? await redis.zscan(offlineKey, at, 'COUNT', limit)
        : await redis.hscan(onlineKey, at, 'COUNT', limit)
      const ids: string[] = []
      const values: string[] = []
      for (let i = 0; i + 1 < flat.length; i += 2) {
        ids.push(flat[i] as string)
        values.push(flat[i + 1] as string)
      }
      const [owners, lifetimes] = ids.length === 0
        ? [[], []]
        : await Promise.all([redis.hmget(ownerKey, ...ids), offlinePhase ? Promise.resolve([]) : redis.hmget(lifetimeKey, ...ids)])
      const sessions = ids.map((clientId, i): SessionRecord => ({
        clientId,
        owner: owners[i] ?? null,
        online: !offlinePhase,
        node: offlinePhase ? null : nodeOfToken(values[i] as string),
        lifetimeMs: offlinePhase || lifetimes[i] == null ? null : Number(lifetimes[i]),
        expiresAt: offlinePhase ? Number(values[i]) : null
      }))
      const more = next !== '0'
      return { sessions, next: more ? `${offlinePhase ? 'offline' : 'online'}:${next}` : offlinePhase ? '' : 'offline:0' }
    },
    record: async (clientId) => {
      const [token, expiresAt, owner, lifetime] = await Promise.all([redis.hget(onlineKey, clientId), redis.zscore(offlineKey, clientId), redis.hget(ownerKey, clientId), redis.hget(lifetimeKey, clientId)])
      if (token === null && expiresAt === null) return null
      return { clientId, owner, online: token !== null, node: token === null ? null : nodeOfToken(token), lifetimeMs: lifetime === null ? null : Number(lifetime), expiresAt: expiresAt === null ? null : Number(expiresAt) }
    }
  }
}
