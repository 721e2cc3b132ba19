// Presence of authenticated users: a user is online while at least one of their connections
// is alive, on any node. Every change is published by the broker as a retained JSON state on
// `$presence/<user>`. Connection counts are kept per node: in memory on a single node, in
// Redis in a cluster, where nodes also beat a heartbeat so that the users of a node that died
// go offline within `nodeTimeoutMs`.
import type { Redis } from 'ioredis'
import { unsafePlaceholderValue } from '../acl/topic-pattern.js'
import type { Logger } from './logger.js'

export const presencePrefix = '$presence/'

export interface PresenceState {
  user: string
  online: boolean
  connections: number
  lastSeen: string
}

/** Publishes a user's state; the broker wires it to a retained QoS 1 publish. */
export type PresencePublisher = (state: PresenceState) => Promise<void>

/** Counts connections per user across the nodes. */
export interface PresenceStore {
  /** Adds `delta` to this node's count for `user`; resolves with the count on all live nodes. */
  add: (user: string, delta: 1 | -1) => Promise<number>
  /** Periodic duty: beat this node's heartbeat; returns users of dead nodes, now recounted. */
  sweep: () => Promise<Array<{ user: string, connections: number }>>
  close: () => Promise<void>
}

/** Users that cannot be a single topic level get no presence topic. */
export function presenceTopic (user: string): string | null {
  return unsafePlaceholderValue(user) === null ? presencePrefix + user : null
}

export class Presence {
  private timer: NodeJS.Timeout | null = null
  // Changes for one user are applied one after another, so states are published in order.
  private readonly queues = new Map<string, Promise<void>>()

  constructor (
    private readonly store: PresenceStore,
    private readonly publish: PresencePublisher,
    private readonly logger: Logger,
    sweepIntervalMs: number
  ) {
    this.timer = setInterval(() => { this.runSweep() }, sweepIntervalMs)
    this.timer.unref()
  }

  connected (user: string): void {
    this.change(user, 1)
  }

  disconnected (user: string): void {
    this.change(user, -1)
  }

  async close (): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    await Promise.all(this.queues.values())
    await this.store.close()
  }

  private change (user: string, delta: 1 | -1): void {
    if (presenceTopic(user) === null) return
    this.enqueue(user, async () => {
      const connections = await this.store.add(user, delta)
      await this.publish(stateOf(user, connections))
    })
  }

  private runSweep (): void {
    this.store.sweep().then((recounted) => {
      for (const { user, connections } of recounted) {
        this.logger.info({ event: 'presence.node-lost', user, connections }, 'user recounted after a node died')
        this.enqueue(user, async () => { await this.publish(stateOf(user, connections)) })
      }
    }, (err: Error) => this.logger.warn({ event: 'presence.sweep-failed', reason: err.message }, 'presence sweep failed'))
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
  return {
    add: async (user, delta) => {
      const count = Math.max(0, (counts.get(user) ?? 0) + delta)
      if (count === 0) counts.delete(user)
      else counts.set(user, count)
      return count
    },
    sweep: async () => [],
    close: async () => {}
  }
}

// Redis keys (ioredis adds the configured key prefix):
//   presence:user:<user>   hash  node id -> connections of that user on that node
//   presence:node:<node>   set   users with connections on that node
//   presence:nodes         zset  node id -> last heartbeat (ms)
const userKey = (user: string): string => `presence:user:${user}`
const nodeKey = (node: string): string => `presence:node:${node}`
const nodesKey = 'presence:nodes'

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

/**
 * A cluster: counts in Redis, node heartbeats, recount of the users of dead nodes. `onNodeDead`
 * runs once in the cluster for each dead node, on the node that claimed it (session expiry).
 */
export function redisPresenceStore (redis: Redis, nodeId: string, nodeTimeoutMs: number, onNodeDead: (node: string) => Promise<void> = async () => {}): PresenceStore {
  const beat = async (): Promise<void> => { await redis.zadd(nodesKey, Date.now(), nodeId) }
  void beat().catch(() => {})
  return {
    add: async (user, delta) => Number(await redis.eval(addScript, 2, userKey(user), nodeKey(nodeId), nodeId, delta, user)),
    sweep: async () => {
      await beat()
      const dead = await redis.zrangebyscore(nodesKey, '-inf', Date.now() - nodeTimeoutMs)
      const recounted: Array<{ user: string, connections: number }> = []
      for (const node of dead) {
        // ZREM succeeds for one node only: the one that recounts this dead node's users.
        if (await redis.zrem(nodesKey, node) === 0) continue
        await onNodeDead(node)
        const users = await redis.smembers(nodeKey(node))
        for (const user of users) {
          await redis.hdel(userKey(user), node)
          const counts = await redis.hvals(userKey(user))
          recounted.push({ user, connections: counts.reduce((sum, v) => sum + Number(v), 0) })
        }
        await redis.del(nodeKey(node))
      }
      return recounted
    },
    close: async () => {
      // A clean stop: this node's clients were disconnected one by one already.
      await redis.zrem(nodesKey, nodeId).catch(() => {})
    }
  }
}
