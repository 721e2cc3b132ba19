// The injected parts of Aedes: persistence (sessions, subscriptions, retained, offline
// queues, wills) and the emitter that carries messages between clients and between nodes.
// In memory by default; through Redis when redis.url is set.
import type { EventEmitter } from 'node:events'
import type { AedesPublishPacket } from 'aedes'
import type { Redis, RedisOptions } from 'ioredis'
import { createRequire } from 'node:module'
import aedesPersistenceRedis, { type RedisPersistence } from 'aedes-persistence-redis'
import mqemitterRedis from 'mqemitter-redis'
import type { BrokerConfig } from '../config/config-schema.js'
import type { Logger } from '../observability/logger.js'
import { redisConnector, redisKeys, type RedisClient } from './redis-clients.js'
import { coalesceWrites } from './coalesced-writes.js'
import { RedisKeys } from './redis-keys.js'
import { memoryRetainedLedger, redisRetainedLedger, type RetainedLedger } from './retained-quota.js'
import { NodeRegistry, registryTiming } from '../cluster/node-registry.js'
import { RoutedEmitter } from '../cluster/routed-emitter.js'
import { SharedMembers } from '../cluster/shared-members.js'
import type { ShareCluster } from '../shared/shared-emitter.js'
import { memoryQueueLengths, redisQueueLengths, type QueueLengths } from '../sessions/session-queue-cap.js'
import { memorySessionStore, redisSessionStore, type SessionStore } from '../sessions/session-expiry.js'
import type { RouteSettling } from '../sessions/queue-catch-up.js'

/** The part of Aedes' in-memory persistence the broker uses besides Aedes itself. */
interface MemoryPersistence {
  setup: (broker: unknown) => Promise<void>
  createRetainedStreamCombi: (patterns: string[]) => AsyncIterable<AedesPublishPacket>
  /** The wrapped store; outgoingLength is added by patches/aedes-persistence+11.0.0.patch. */
  asyncPersistence: { outgoingLength: (client: { id: string }) => Promise<number> }
}

// aedes-persistence is CommonJS, and its typings declare an ESM default export, which TypeScript
// (NodeNext) then refuses to call: load it as what it is.
const memoryPersistence = createRequire(import.meta.url)('aedes-persistence') as () => MemoryPersistence

export interface Storage {
  kind: 'memory' | 'redis'
  /** For Aedes' `persistence` option. */
  persistence: RedisPersistence | MemoryPersistence
  /** For Aedes' `mq` option; undefined = Aedes' in-memory default. */
  mq: unknown
  /** Whether every Redis connection is up (always true in memory). */
  healthy: () => boolean
  /** Each Redis connection and whether it is up; empty in memory. */
  redisState: () => Record<string, boolean>
  /** Retained messages stored (cluster-wide with Redis). */
  retainedCount: () => Promise<number>
  /** Owners and sizes of the retained messages clients stored, for the retained caps. */
  retainedLedger: RetainedLedger
  /** A Redis connection for the broker's own keys (key prefix applied); null in memory. */
  redis: RedisClient | null
  /** Names the keys on `redis` (hash-tagged on a Redis Cluster). */
  redisKeys: RedisKeys
  /** Messages each persistent session holds, for sessions.maxQueuedMessages. */
  queueLengths: QueueLengths
  /** Online and offline persistent sessions, for sessions.expirySeconds. */
  sessionStore: SessionStore
  /** Which nodes are alive (started; only this one in memory). */
  registry: NodeRegistry
  /** Shared subscription members across the cluster (the routed emitter only); undefined: this node alone. */
  shareCluster?: ShareCluster
  /** When the other nodes route a filter subscribed here (the routed emitter only); undefined: no route to wait for. */
  routes?: RouteSettling
  /** Closes the persistence; Aedes closes the emitter itself. */
  close: () => Promise<void>
}

type RedisConfig = NonNullable<BrokerConfig['redis']>

export async function createStorage (config: BrokerConfig, nodeId: string, logger: Logger, onShed: () => void): Promise<Storage> {
  if (config.redis === undefined) {
    const persistence = memoryPersistence()
    return {
      kind: 'memory',
      persistence,
      mq: undefined,
      healthy: () => true,
      redisState: () => ({}),
      redis: null,
      redisKeys: new RedisKeys('', false),
      queueLengths: memoryQueueLengths(persistence.asyncPersistence),
      sessionStore: memorySessionStore(),
      registry: new NodeRegistry(nodeId, null, registryTiming(config), new RedisKeys('', false), logger),
      retainedCount: async () => {
        // the persistence's matcher lets # reach $ topics too ($presence states included)
        let count = 0
        for await (const _packet of persistence.createRetainedStreamCombi(['#'])) count++
        return count
      },
      retainedLedger: memoryRetainedLedger(config.limits.maxRetainedMessages),
      close: async () => {}
    }
  }
  return await createRedisStorage(config, config.redis, nodeId, logger, onShed)
}

async function createRedisStorage (config: BrokerConfig, redis: RedisConfig, nodeId: string, logger: Logger, onShed: () => void): Promise<Storage> {
  const options: RedisOptions = {
    // Keep commands queued while Redis is briefly away instead of failing them after 20 tries:
    // a QoS 1/2 publish then waits for storage rather than being refused.
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 100, 2000)
  }
  // ioredis prefixes keys, not pub/sub channels: the emitters prefix their own keys and channels
  const unprefixed = redisConnector(redis, options)
  const connections: Record<string, RedisClient> = {
    // the commands of a turn in one write (coalesced-writes.ts): a session resume is ten of them
    persistence: coalesceWrites(unprefixed(redis.keyPrefix === '' ? {} : { keyPrefix: redis.keyPrefix })),
    subscriber: unprefixed(),
    // mqemitter-redis sends one PUBLISH per message: ioredis' auto-pipelining batches them. The
    // routed emitter batches its own XADDs per turn, and auto-pipelining there kept every
    // command alive long enough to be promoted: 6-9 ms scavenges every half second and a
    // cross-node p99 of 7 ms at 2,000 msg/s (1 ms scavenges without it).
    publisher: coalesceWrites(unprefixed({ enableAutoPipelining: redis.emitter === 'mqemitter-redis' }))
  }
  if (redis.emitter === 'routed') connections.inbox = unprefixed()
  // Never busy: its PINGs measure whether Redis answers, and the node registry's heartbeats
  // go through it, so a backlog of messages does not make a live node look dead.
  connections.health = unprefixed()
  const up = new Map<string, boolean>()
  for (const [role, connection] of Object.entries(connections)) {
    up.set(role, false)
    watchConnection(role, connection, up, logger)
  }
  probeReachability(connections.health, up, logger, config.cluster.heartbeatIntervalMs)
  // On reconnect a session is re-sent at most maxSessionDelivery + 1 queued messages (the rest
  // wait for the next reconnect): as many as it may hold, or all when uncapped.
  const maxQueued = config.sessions.maxQueuedMessages
  const persistence = aedesPersistenceRedis({ conn: connections.persistence, maxSessionDelivery: maxQueued === 0 ? -1 : Math.max(maxQueued, 1000) })
  const concurrency = config.limits.concurrency
  // the emitter's and the registry's connections have no ioredis keyPrefix: their keys carry it
  const keys = redisKeys(redis, redis.keyPrefix)
  const registry = new NodeRegistry(nodeId, connections.health, registryTiming(config), keys, logger)
  await registry.start()
  let mq: unknown
  let shareCluster: ShareCluster | undefined
  let routes: RouteSettling | undefined
  if (redis.emitter === 'routed') {
    const emitter = new RoutedEmitter({
      nodeId,
      commands: connections.publisher as RedisClient,
      registry,
      subscriber: connections.subscriber as RedisClient,
      reader: connections.inbox as RedisClient,
      keys,
      concurrency,
      inboxMaxLen: redis.inboxMaxLen,
      maxPendingQos0: redis.maxPendingQos0,
      logger,
      onShed,
      routeChangeDelayMs: config.testOnly.routeChangeDelayMs
    })
    await emitter.start()
    mq = emitter
    routes = emitter
    shareCluster = new SharedMembers({ nodeId, commands: connections.publisher as RedisClient, subscriber: connections.subscriber as RedisClient, registry, emitter, keys, logger })
  } else {
    // the schema allows mqemitter-redis on one Redis only: its connections are never a Cluster
    const emitterOptions = { subConn: connections.subscriber as Redis, pubConn: connections.publisher as Redis, concurrency, matchEmptyLevels: true }
    // mqemitter-redis exports the prefixed emitter beside its default, which its typings leave out
    const stock = redis.keyPrefix === ''
      ? mqemitterRedis(emitterOptions)
      : new (mqemitterRedis as unknown as { MQEmitterRedisPrefix: new (prefix: string, options: object) => object }).MQEmitterRedisPrefix(redis.keyPrefix, emitterOptions)
    // mqemitter-redis re-emits Redis errors on `state`; with no listener the process would die.
    // The connection watchers above already log them, once per state change.
    ;(stock as { state: EventEmitter }).state.on('error', () => {})
    mq = stock
  }

  let closed = false
  const persistenceConnection = connections.persistence as RedisClient
  const persistenceKeys = redisKeys(redis, '')
  return {
    kind: 'redis',
    persistence,
    mq,
    healthy: () => [...up.values()].every(Boolean),
    redisState: () => Object.fromEntries(up),
    redis: persistenceConnection,
    redisKeys: persistenceKeys,
    queueLengths: redisQueueLengths(persistenceConnection),
    sessionStore: redisSessionStore(persistenceConnection, nodeId, redis.keyPrefix, persistenceKeys),
    registry,
    ...(shareCluster === undefined ? {} : { shareCluster }),
    ...(routes === undefined ? {} : { routes }),
    // aedes-persistence-redis keeps retained messages in one hash; ioredis adds the key prefix
    retainedCount: async () => await persistenceConnection.hlen('retained'),
    retainedLedger: redisRetainedLedger(persistenceConnection, config.limits.maxRetainedMessages, persistenceKeys),
    close: async () => {
      if (closed) return
      closed = true
      await persistence.destroy()
      await registry.close()
      connections.health?.disconnect()
    }
  }
}

/**
 * Whether Redis answers, on a connection of its own: a PING each second left unanswered for
 * `timeoutMs` sets `up.reachable` to false until one is answered. A silent partition closes
 * nothing, so the connections' own state never says it; and a PING on a busy connection would
 * wait behind its backlog, which is slowness, not absence.
 */
function probeReachability (connection: RedisClient, up: Map<string, boolean>, logger: Logger, timeoutMs: number): void {
  up.set('reachable', true)
  let pending = false
  const probe = setInterval(() => {
    if (pending || connection.status !== 'ready') return
    pending = true
    const unanswered = setTimeout(() => {
      logger.warn({ event: 'redis.unresponsive', timeoutMs }, 'Redis did not answer a PING in time: not ready until it does')
      up.set('reachable', false)
    }, timeoutMs)
    connection.ping().catch(() => {}).finally(() => {
      clearTimeout(unanswered)
      if (up.get('reachable') === false) logger.info({ event: 'redis.reachable' }, 'Redis answers again')
      up.set('reachable', true)
      pending = false
    })
  }, 1000)
  probe.unref()
  connection.once('end', () => clearInterval(probe))
}

/** Logs each state change of a Redis connection once, and tracks whether it is up. */
function watchConnection (role: string, connection: RedisClient, up: Map<string, boolean>, logger: Logger): void {
  let lastError = ''
  connection.on('ready', () => {
    if (up.get(role) !== true) logger.info({ event: 'redis.up', connection: role }, 'Redis connection ready')
    up.set(role, true)
    lastError = ''
  })
  connection.on('error', (err: Error) => {
    if (err.message !== lastError) logger.warn({ event: 'redis.error', connection: role, reason: err.message }, 'Redis connection error')
    lastError = err.message
  })
  connection.on('close', () => {
    if (up.get(role) === true) logger.warn({ event: 'redis.down', connection: role }, 'Redis connection lost; reconnecting')
    up.set(role, false)
  })
}
