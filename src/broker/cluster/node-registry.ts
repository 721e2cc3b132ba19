// The cluster's one answer to "is node X alive?". Every node beats its heartbeat into one Redis
// sorted set (node id -> last beat, ms) every `beatMs`, on the connection kept for heartbeats
// and PINGs, so that a backlog of messages never makes a live node look dead; a node silent for
// `timeoutMs` is dead. At each beat a node also looks for dead nodes and claims each with ZREM,
// which succeeds on one node only: that node alone handles the death ("died" fires once in the
// cluster). Events:
// - joined(node): a node this one had not seen beats (each node sees it);
// - died(node): a node stopped beating, on the one node that claimed it;
// - retired(): the others took this node for dead (it could not reach Redis for `timeoutMs`):
//   its beat adds it to the set again instead of updating it.
// Without Redis (one node) the registry is "only me" and no event ever fires.
import type { RedisClient } from '../storage/redis-clients.js'
import type { RedisKeys } from '../storage/redis-keys.js'
import type { BrokerConfig } from '../config/config-schema.js'
import type { Logger } from '../observability/logger.js'

export interface LiveNode {
  id: string
  /** When it last beat (ms since the epoch, its own clock). */
  lastBeat: number
}

type Handler<A extends unknown[]> = (...args: A) => Promise<void> | void

export interface NodeRegistryTiming {
  beatMs: number
  timeoutMs: number
}

/**
 * One beat and one timeout from the keys of the former routing and presence heartbeats: the
 * cluster's (a node silent for 3 beats is dead) or presence's, whichever is shorter, so every
 * bound those keys promise still holds.
 */
export function registryTiming (config: Pick<BrokerConfig, 'cluster' | 'presence'>): NodeRegistryTiming {
  const cluster = config.cluster.heartbeatIntervalMs
  return {
    beatMs: Math.min(cluster, config.presence.heartbeatMs),
    timeoutMs: Math.min(3 * cluster, config.presence.nodeTimeoutMs)
  }
}

export class NodeRegistry {
  private readonly key: string
  private readonly handlers = {
    joined: [] as Array<Handler<[string]>>,
    died: [] as Array<Handler<[string]>>,
    retired: [] as Array<Handler<[]>>
  }

  private known = new Set<string>()
  private timer: NodeJS.Timeout | null = null
  private beating: Promise<void> = Promise.resolve()

  constructor (
    readonly nodeId: string,
    // null: one node, no cluster
    private readonly redis: RedisClient | null,
    readonly timing: NodeRegistryTiming,
    /** Names the key, with its prefix (the heartbeat connection has no ioredis keyPrefix). */
    keys: RedisKeys,
    private readonly logger: Logger
  ) {
    this.key = keys.shared('cluster', 'nodes')
  }

  on (event: 'joined' | 'died', handler: Handler<[string]>): void
  on (event: 'retired', handler: Handler<[]>): void
  on (event: 'joined' | 'died' | 'retired', handler: Handler<[string]> | Handler<[]>): void {
    (this.handlers[event] as Array<typeof handler>).push(handler)
  }

  /** Announces this node and starts beating. */
  async start (): Promise<void> {
    if (this.redis === null) return
    await this.redis.zadd(this.key, Date.now(), this.nodeId)
    this.known = new Set((await this.live()).map(({ id }) => id))
    this.timer = setInterval(() => {
      this.beating = this.beat().catch((err: Error) => this.logger.warn({ event: 'cluster.heartbeat-failed', reason: err.message }, 'heartbeat failed'))
    }, this.timing.beatMs)
    this.timer.unref()
  }

  /** The nodes that beat within the timeout, this one included. */
  async live (): Promise<LiveNode[]> {
    if (this.redis === null) return [{ id: this.nodeId, lastBeat: Date.now() }]
    const flat = await this.redis.zrangebyscore(this.key, Date.now() - this.timing.timeoutMs, '+inf', 'WITHSCORES')
    const nodes: LiveNode[] = []
    for (let i = 0; i + 1 < flat.length; i += 2) nodes.push({ id: flat[i] as string, lastBeat: Number(flat[i + 1]) })
    return nodes
  }

  /** Leaves the cluster cleanly: the others see this node gone, not dead. */
  async close (): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    await this.beating
    await this.redis?.zrem(this.key, this.nodeId).catch(() => {})
  }

  private async beat (): Promise<void> {
    const redis = this.redis as RedisClient
    const now = Date.now()
    const [added, listing] = await redis.multi().zadd(this.key, now, this.nodeId).zrange(this.key, 0, -1, 'WITHSCORES').exec() ?? []
    if (added?.[0] != null) throw added[0]
    if (listing?.[0] != null) throw listing[0]
    // ZADD adds (1) rather than updates (0) only if the others retired this node meanwhile
    if (added?.[1] === 1) for (const handler of this.handlers.retired) await this.run(handler)
    const flat = listing?.[1] as string[]
    const seen = new Set<string>()
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const node = flat[i] as string
      if (Number(flat[i + 1]) >= now - this.timing.timeoutMs) {
        seen.add(node)
        if (!this.known.has(node)) {
          this.logger.info({ event: 'cluster.node-joined', joined: node }, 'a node joined the cluster')
          for (const handler of this.handlers.joined) await this.run(handler, node)
        }
      } else if (await redis.zrem(this.key, node) === 1) {
        this.logger.warn({ event: 'cluster.node-died', died: node, timeoutMs: this.timing.timeoutMs }, 'a node stopped beating: this node handles its death')
        // one after another, in the order they were registered: each sees the ones before done
        for (const handler of this.handlers.died) await this.run(handler, node)
      }
    }
    this.known = seen
  }

  private async run<A extends unknown[]> (handler: Handler<A>, ...args: A): Promise<void> {
    try {
      await handler(...args)
    } catch (err) {
      this.logger.warn({ event: 'cluster.handler-failed', reason: (err as Error).message }, 'a node registry event handler failed')
    }
  }
}
