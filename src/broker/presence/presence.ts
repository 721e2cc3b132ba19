// Presence of authenticated users: a user is online while at least one of their connections
// is alive, on any node. Changes are published by the broker as a retained JSON state on
// `$presence/<user>`, at most one per user per `minUpdateIntervalMs` across the cluster (the
// last state always follows: a trailing update), so a user opening and closing connections in
// a loop costs observers one message per interval. Connection counts are kept per node: in
// memory on a single node, in Redis in a cluster, where the users of a node that died are
// recounted by the node that claimed its death (cluster/node-registry.ts). The counts also
// serve the per-user connection limit. The retained state of a user offline for `retainedExpiryMs` is
// cleared, by one node.
import type { RedisClient } from '../storage/redis-clients.js'
import type { RedisKeys } from '../storage/redis-keys.js'
import { unsafePlaceholderValue } from '../../acl/topic-pattern.js'
import type { Logger } from '../observability/logger.js'

export const presencePrefix = '$presence/'

export interface PresenceState {
  user: string
  online: boolean
  connections: number
  lastSeen: string
}

/**
 * Publishes a user's state, or clears it (null); the broker wires it to a retained QoS 1
 * publish (an empty payload clears).
 */
export type PresencePublisher = (user: string, state: PresenceState | null) => Promise<void>

/** Counts connections per user across the nodes. */
export interface PresenceStore {
  /** Adds `delta` to this node's count for `user`; resolves with the count on all live nodes. */
  add: (user: string, delta: 1 | -1) => Promise<number>
  /** The user's connections on all live nodes. */
  count: (user: string) => Promise<number>
  /**
   * Claims the right to publish the user's state now, for `intervalMs` (cluster-wide): 0 when
   * claimed, else the milliseconds until it may be claimed again.
   */
  claimUpdate: (user: string, intervalMs: number) => Promise<number>
  /** Records that the user went offline (`since`, ms) or came online (null). */
  markOffline: (user: string, since: number | null) => Promise<void>
  /** Claims the users offline since before `before` (ms): each is returned to one node only. */
  claimLongOffline: (before: number) => Promise<string[]>
  /** Periodic duty: forgets update intervals that ended. */
  sweep: () => Promise<void>
  /** Drops the counts of a dead node; returns its users, recounted. */
  nodeDied: (node: string) => Promise<Array<{ user: string, connections: number }>>
  close: () => Promise<void>
}

/** Users that cannot be a single topic level get no presence topic. */
export function presenceTopic (user: string): string | null {
  return unsafePlaceholderValue(user) === null ? presencePrefix + user : null
}

export interface PresenceOptions {
  /** How often the sweep runs: expired retained states. */
  sweepIntervalMs: number
  /** At most one published state per user per this period, cluster-wide (0 = every change). */
  minUpdateIntervalMs: number
  /** The retained state of a user offline this long is cleared; 0 = never. */
  retainedExpiryMs: number
}

export class Presence {
  private timer: NodeJS.Timeout | null = null
  // Changes for one user are applied one after another, so states are published in order.
  private readonly queues = new Map<string, Promise<void>>()
  // Users whose state is due once their update interval ends (a trailing update).
  private readonly trailing = new Map<string, NodeJS.Timeout>()

  constructor (
    private readonly store: PresenceStore,
    // null: connections are counted (for the per-user limit), no state is published
    private readonly publish: PresencePublisher | null,
    private readonly logger: Logger,
    private readonly options: PresenceOptions
  ) {
    this.timer = setInterval(() => { this.runSweep() }, options.sweepIntervalMs)
    this.timer.unref()
  }

  connected (user: string): void {
    this.change(user, 1)
  }

  disconnected (user: string): void {
    this.change(user, -1)
  }

  /** The user's connections on all live nodes (this node's only in memory). */
  async connections (user: string): Promise<number> {
    return await this.store.count(user)
  }

  async close (): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    // the states still due are published now: observers must see the last one
    for (const [user, timer] of this.trailing) {
      clearTimeout(timer)
      this.enqueue(user, async () => { await this.publishState(user, await this.store.count(user)) })
    }
    this.trailing.clear()
    await Promise.all(this.queues.values())
    await this.store.close()
  }

  private change (user: string, delta: 1 | -1): void {
    if (presenceTopic(user) === null) return
    this.enqueue(user, async () => {
      const connections = await this.store.add(user, delta)
      if (this.publish !== null) await this.publishCoalesced(user, connections)
    })
  }

  /** Publishes now if the user's interval allows it, else once it ends (with the count then). */
  private async publishCoalesced (user: string, connections: number | null): Promise<void> {
    // an update already due reads the count when it runs: this change is in it
    if (this.trailing.has(user)) return
    const wait = this.options.minUpdateIntervalMs === 0 ? 0 : await this.store.claimUpdate(user, this.options.minUpdateIntervalMs)
    if (wait === 0) {
      await this.publishState(user, connections ?? await this.store.count(user))
      return
    }
    const timer = setTimeout(() => {
      this.trailing.delete(user)
      this.enqueue(user, async () => { await this.publishCoalesced(user, null) })
    }, wait)
    timer.unref()
    this.trailing.set(user, timer)
  }

  private async publishState (user: string, connections: number): Promise<void> {
    if (this.publish === null) return
    const state = stateOf(user, connections)
    if (this.options.retainedExpiryMs > 0) await this.store.markOffline(user, state.online ? null : Date.now())
    await this.publish(user, state)
  }

  /** A dead node (claimed by this one): its users are recounted, their states published. */
  async nodeDied (node: string): Promise<void> {
    for (const { user, connections } of await this.store.nodeDied(node)) {
      this.logger.info({ event: 'presence.node-lost', user, connections }, 'user recounted after a node died')
      if (this.publish !== null) this.enqueue(user, async () => { await this.publishCoalesced(user, null) })
    }
  }

  private runSweep (): void {
    this.store.sweep().then(async () => {
      const { publish } = this
      if (publish === null || this.options.retainedExpiryMs === 0) return
      for (const user of await this.store.claimLongOffline(Date.now() - this.options.retainedExpiryMs)) {
        this.enqueue(user, async () => {
          // back online since it was claimed: its state stays
          if (this.trailing.has(user) || await this.store.count(user) > 0) return
          this.logger.info({ event: 'presence.expired', user }, 'retained presence of a user long offline cleared')
          await publish(user, null)
        })
      }
    }).catch((err: Error) => this.logger.warn({ event: 'presence.sweep-failed', reason: err.message }, 'presence sweep failed'))
  }

  private enqueue (user: string, work: () => Promise<void>): void {
    const previous = this.queues.get(user) ?? Promise.resolve()
    const next = previous.then(work).catch((err: Error) => {
      this.logger.warn({ event: 'presence.failed', user, reason: err.message }, 'presence update failed')
    })
    this.queues.set(user, next)
    void next.then(() => { if (this.queues.get(user) === next) this.queues.delete(user) })
  }
}

function stateOf (user: string, connections: number): PresenceState {
  return { user, online: connections > 0, connections, lastSeen: new Date().toISOString() }
}

/** One node: counts in memory. */
export function memoryPresenceStore (): PresenceStore {
  const counts = new Map<string, number>()
  // user -> when its update interval ends (ms); user -> offline since (ms)
  const claimedUntil = new Map<string, number>()
  const offlineSince = new Map<string, number>()
  return {
    add: async (user, delta) => {
      const count = Math.max(0, (counts.get(user) ?? 0) + delta)
      if (count === 0) counts.delete(user)
      else counts.set(user, count)
      return count
    },
    count: async (user) => counts.get(user) ?? 0,
    claimUpdate: async (user, intervalMs) => {
      const now = Date.now()
      const until = claimedUntil.get(user) ?? 0
      if (until > now) return until - now
      claimedUntil.set(user, now + intervalMs)
      return 0
    },
    markOffline: async (user, since) => {
      if (since === null) offlineSince.delete(user)
      else offlineSince.set(user, since)
    },
    claimLongOffline: async (before) => {
      const users = [...offlineSince].filter(([, since]) => since < before).map(([user]) => user)
      for (const user of users) offlineSince.delete(user)
      return users
    },
    sweep: async () => {
      // intervals that ended are forgotten, so the map holds only recently updated users
      const now = Date.now()
      for (const [user, until] of claimedUntil) if (until <= now) claimedUntil.delete(user)
    },
    nodeDied: async () => [],
    close: async () => {}
  }
}

// Redis keys (ioredis adds the configured key prefix), all of them on one slot of a Redis
// Cluster (tag {presence}): the count script touches a user's and a node's key together.
//   presence:user:<user>   hash  node id -> connections of that user on that node
//   presence:node:<node>   set   users with connections on that node
//   presence:updated:<user> string, expires when the user's update interval ends
//   presence:offline       zset  user -> offline since (ms)

// Adds to this node's count and returns the total over all nodes, atomically.
const addScript = `
local count = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if count <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[3])
else
  redis.call('SADD', KEYS[2], ARGV[3])
end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
return total`

/** A cluster: counts in Redis, recount of the users of dead nodes. */
export function redisPresenceStore (redis: RedisClient, nodeId: string, keys: RedisKeys): PresenceStore {
  const userKey = (user: string): string => keys.shared('presence', 'user', user)
  const nodeKey = (node: string): string => keys.shared('presence', 'node', node)
  const updatedKey = (user: string): string => keys.shared('presence', 'updated', user)
  const offlineKey = keys.shared('presence', 'offline')
  const count = async (user: string): Promise<number> => (await redis.hvals(userKey(user))).reduce((sum, v) => sum + Number(v), 0)
  // run on most CONNECTs and disconnects: by its SHA (EVALSHA), not its text each time
  redis.defineCommand('presenceAdd', { numberOfKeys: 2, lua: addScript })
  const commands = redis as unknown as { presenceAdd: (...keysThenArgs: Array<string | number>) => Promise<number> }
  return {
    add: async (user, delta) => Number(await commands.presenceAdd(userKey(user), nodeKey(nodeId), nodeId, delta, user)),
    count,
    claimUpdate: async (user, intervalMs) => {
      if (await redis.set(updatedKey(user), '1', 'PX', intervalMs, 'NX') === 'OK') return 0
      // -2: expired in between, claimable at once (1 ms: claimed on the next try)
      return Math.max(1, await redis.pttl(updatedKey(user)))
    },
    markOffline: async (user, since) => {
      if (since === null) await redis.zrem(offlineKey, user)
      else await redis.zadd(offlineKey, since, user)
    },
    claimLongOffline: async (before) => {
      const users = await redis.zrangebyscore(offlineKey, '-inf', before, 'LIMIT', 0, 1000)
      const claimed: string[] = []
      // ZREM succeeds for one node only: the one that clears this user's state
      for (const user of users) if (await redis.zrem(offlineKey, user) === 1) claimed.push(user)
      return claimed
    },
    // update intervals expire in Redis by themselves
    sweep: async () => {},
    nodeDied: async (node) => {
      const recounted: Array<{ user: string, connections: number }> = []
      for (const user of await redis.smembers(nodeKey(node))) {
        await redis.hdel(userKey(user), node)
        recounted.push({ user, connections: await count(user) })
      }
      await redis.del(nodeKey(node))
      return recounted
    },
    // a clean stop: this node's clients were disconnected one by one already
    close: async () => {}
  }
}
