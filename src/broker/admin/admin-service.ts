// The admin API's parts on one node, built from the config and storage: the node-to-node
// requests, the bans, the audit trail, the drain and this node's answers. The wiring
// (server.ts) wraps the authenticate hook with `admitting`, attaches Aedes once it exists and
// hands `cluster` and `trail` to the HTTP routes.
import type { Aedes } from 'aedes'
import type { Authenticator } from '../../acl/authenticate.js'
import { ConnackCode } from '../../acl/identity.js'
import type { BrokerConfig } from '../config/config-schema.js'
import type { ClientRegistry } from '../client-registry.js'
import type { BrokerHooks } from '../hooks.js'
import type { Logger } from '../observability/logger.js'
import type { BrokerMetrics } from '../observability/metrics.js'
import { NodeDrain } from '../process/drain.js'
import type { Storage } from '../storage/storage.js'
import { redisKeys } from '../storage/redis-clients.js'
import { AdminRpc } from './admin-rpc.js'
import { admitting, disconnectBanned } from './admission.js'
import { AuditTrail } from './audit-trail.js'
import { Bans, memoryBanStore, redisBanStore } from './bans.js'
import { ClusterAdmin } from './cluster-admin.js'
import { NodeAdmin } from './node-admin.js'
import { RetainedAdmin } from './retained-admin.js'
import { SessionAdmin } from './session-admin.js'
import { retainedStore, sessionPersistence } from '../aedes-adapter.js'
import type { SessionExpiry } from '../sessions/session-expiry.js'

// How often each node checks the bans' version: a node that missed the admin API's "reload"
// (its Redis subscriber was reconnecting) still enforces a new ban within this.
const banRefreshMs = 500

export interface AdminServiceParts {
  config: BrokerConfig
  nodeId: string
  storage: Storage
  clients: ClientRegistry
  metrics: BrokerMetrics
  audit: Logger
  logger: Logger
}

export class AdminService {
  readonly rpc: AdminRpc
  readonly bans: Bans
  readonly trail: AuditTrail
  readonly cluster: ClusterAdmin
  readonly retained: RetainedAdmin
  readonly sessions: SessionAdmin
  private expiry: SessionExpiry | null = null
  private aedes: Aedes | null = null
  private drain: NodeDrain | null = null
  private node: NodeAdmin | null = null

  constructor (private readonly parts: AdminServiceParts) {
    const { config, nodeId, storage, logger, audit, clients } = parts
    const subscriber = storage.redis?.duplicate() ?? null
    let lastError = ''
    subscriber?.on('error', (err: Error) => {
      if (err.message !== lastError) logger.warn({ event: 'redis.error', connection: 'admin', reason: err.message }, 'Redis connection error')
      lastError = err.message
    })
    this.rpc = new AdminRpc({
      nodeId,
      commands: storage.redis,
      subscriber,
      keys: config.redis === undefined ? storage.redisKeys : redisKeys(config.redis, config.redis.keyPrefix),
      timeoutMs: config.admin.requestTimeoutMs,
      logger
    })
    this.bans = new Bans({
      store: storage.redis === null ? memoryBanStore() : redisBanStore(storage.redis, storage.redisKeys),
      refreshMs: banRefreshMs,
      onNewBans: (matcher) => { if (this.aedes !== null) disconnectBanned(this.aedes, clients, matcher, audit) },
      onError: (err) => logger.warn({ event: 'admin.bans-unloaded', reason: err.message }, 'could not reload the bans: the last ones loaded stay in force')
    })
    this.trail = new AuditTrail({ redis: storage.redis, keys: storage.redisKeys, audit, nodeId, maxEntries: config.admin.auditEntries })
    this.cluster = new ClusterAdmin({ rpc: this.rpc, liveNodes: () => storage.registry.live(), bans: this.bans, timeoutMs: config.admin.requestTimeoutMs })
    this.retained = new RetainedAdmin(retainedStore(storage), storage.retainedLedger)
    this.sessions = new SessionAdmin({
      store: storage.sessionStore,
      persistence: sessionPersistence(storage),
      queueLengths: storage.queueLengths,
      discard: async (clientId) => { await this.expiry?.discard(clientId) },
      cluster: this.cluster
    })
  }

  async start (): Promise<void> {
    await this.rpc.start()
    await this.bans.start()
  }

  /** `authenticate` refusing banned clients, and every client while this node is drained. */
  admitting (authenticate: BrokerHooks['authenticate']): BrokerHooks['authenticate'] {
    const { clients, audit, metrics } = this.parts
    return admitting(authenticate, { bans: this.bans, draining: () => this.draining, clients, audit, metrics })
  }

  /**
   * `authenticator` refusing banned users, for HTTP publish and Server-Sent Events (an HTTP
   * request has no client id, and its address is not checked there).
   */
  unlessBanned (authenticator: Authenticator): Authenticator {
    return (credentials) => {
      const result = authenticator(credentials)
      if (!result.ok || result.identity.user === null) return result
      const ban = this.bans.match({ clientId: '', user: result.identity.user, address: undefined })
      return ban === undefined ? result : { ok: false, code: ConnackCode.NotAuthorized, kind: 'banned', reason: `banned: ${ban.reason}` }
    }
  }

  /** Answers for this node's clients, and for the sessions, from now on. */
  attach (aedes: Aedes, expiry: SessionExpiry): void {
    const { config, nodeId, storage, clients, metrics } = this.parts
    this.aedes = aedes
    this.expiry = expiry
    this.drain = new NodeDrain(aedes, clients, config.shutdown.drainMs)
    this.node = new NodeAdmin({ aedes, nodeId, clients, queueLengths: storage.queueLengths, metrics, redisState: storage.redisState, drain: this.drain, bans: this.bans })
    this.node.serve(this.rpc)
  }

  /** Whether this node is drained through the admin API (not ready, refusing new clients). */
  get draining (): boolean {
    return this.drain?.draining ?? false
  }

  async close (): Promise<void> {
    this.bans.close()
    this.node?.close()
    await this.rpc.close()
  }
}
