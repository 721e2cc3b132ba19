// What one node answers to the cluster's admin requests (admin-rpc.ts): its clients (a filtered
// page, one with its subscriptions and session, disconnecting one), its stats and its drain.
// Plain data in and out, so that a node answers another exactly as it answers itself.
import type { Aedes, Client } from 'aedes'
import { clientById, subscriptionsOf } from '../aedes-adapter.js'
import type { ClientRegistry, ClientState } from '../client-registry.js'
import type { BrokerMetrics } from '../observability/metrics.js'
import type { NodeDrain } from '../process/drain.js'
import { ReasonCode } from '../protocol/reason-codes.js'
import type { QueueLengths } from '../sessions/session-queue-cap.js'
import type { AdminRpc } from './admin-rpc.js'
import type { Bans } from './bans.js'

export interface ClientSummary {
  id: string
  user: string | null
  node: string
  transport: string
  address: string | null
  connectedSince: string
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5. */
  protocolVersion: number
  /** Whether its session outlives the connection. */
  persistentSession: boolean
  subscriptions: number
}

export interface ClientDetail extends Omit<ClientSummary, 'subscriptions'> {
  subscriptions: Array<{ topic: string, qos: number }>
  session: {
    persistent: boolean
    /** MQTT 5's Session Expiry Interval granted, seconds; null for 3.1.1. */
    expiryIntervalS: number | null
    /** QoS 1/2 messages its session holds (queued or unacknowledged). */
    queued: number
  }
}

/** The filters of a client list; every one optional. */
export interface ClientQuery {
  /** Client ids starting with this. */
  prefix?: string
  user?: string
  transport?: string
  /** Only ids after this one (the cursor of the previous page). */
  after?: string
  /** How many to return at most (the first ones by id). */
  take: number
}

export interface NodeStats {
  id: string
  uptimeS: number
  connections: number
  messagesInPerS: number
  messagesOutPerS: number
  memory: { rss: number, heapUsed: number }
  /** Each Redis connection and whether it is up; empty without Redis. */
  redis: Record<string, boolean>
  draining: boolean
}

export interface NodeAdminParts {
  aedes: Aedes
  nodeId: string
  clients: ClientRegistry
  queueLengths: QueueLengths
  metrics: BrokerMetrics
  redisState: () => Record<string, boolean>
  drain: NodeDrain
  bans: Bans
}

/**
 * Whether a client's session outlives its connection: MQTT 5, when its Session Expiry Interval
 * is not 0, whatever Clean Start said [MQTT-3.1.2-23]; 3.1.1, when CleanSession is 0.
 */
function outlivesConnection (client: Client): boolean {
  return client.version === 5 ? client.sessionExpiryInterval > 0 : !client.clean
}

/** Messages per second in and out, measured over the last second (a sample a second, off the message path). */
class MessageRates {
  private last: { at: number, in: number, out: number }
  private perS = { in: 0, out: 0 }
  private readonly timer: NodeJS.Timeout

  constructor (private readonly metrics: BrokerMetrics) {
    this.last = { at: Date.now(), ...metrics.messageTotals() }
    this.timer = setInterval(() => this.sample(), 1000)
    this.timer.unref()
  }

  current (): { in: number, out: number } {
    return this.perS
  }

  close (): void {
    clearInterval(this.timer)
  }

  private sample (): void {
    const now = { at: Date.now(), ...this.metrics.messageTotals() }
    const seconds = Math.max(0.001, (now.at - this.last.at) / 1000)
    this.perS = { in: Math.round((now.in - this.last.in) / seconds), out: Math.round((now.out - this.last.out) / seconds) }
    this.last = now
  }
}

export class NodeAdmin {
  private readonly started = Date.now()
  private readonly rates: MessageRates

  constructor (private readonly parts: NodeAdminParts) {
    this.rates = new MessageRates(parts.metrics)
  }

  /** Registers this node's answers. */
  serve (rpc: AdminRpc): void {
    rpc.handle('clients.list', (params) => this.listClients(params as unknown as ClientQuery))
    rpc.handle('clients.get', (params) => this.client(String(params.id)))
    rpc.handle('clients.disconnect', (params) => this.disconnect(String(params.id)))
    rpc.handle('subscriptions.count', (params) => this.countSubscriptions(typeof params.prefix === 'string' ? params.prefix : ''))
    rpc.handle('node.stats', () => this.stats())
    rpc.handle('node.drain', (params) => this.setDrain(params.drain === true))
    // a ban or a lift was stored: enforce the new list now, not at the next refresh
    rpc.handle('bans.reload', async () => { await this.parts.bans.refresh() })
  }

  /** This node's clients matching `query`: how many match, and the first `take` after the cursor, by id. */
  listClients (query: ClientQuery): { matched: number, clients: ClientSummary[] } {
    const matching: Array<{ client: Client, state: ClientState }> = []
    for (const entry of this.parts.clients.clients(this.parts.aedes)) {
      if (query.prefix !== undefined && !entry.client.id.startsWith(query.prefix)) continue
      if (query.user !== undefined && entry.state.identity.user !== query.user) continue
      if (query.transport !== undefined && entry.state.connection.transport !== query.transport) continue
      matching.push(entry)
    }
    const after = query.after
    const page = (after === undefined ? matching : matching.filter(({ client }) => client.id > after))
      .sort((a, b) => a.client.id < b.client.id ? -1 : a.client.id > b.client.id ? 1 : 0)
      .slice(0, query.take)
    return { matched: matching.length, clients: page.map(({ client, state }) => this.describe(client, state)) }
  }

  async client (id: string): Promise<ClientDetail | null> {
    const client = clientById(this.parts.aedes, id)
    const state = client === undefined ? undefined : this.parts.clients.stateOf(client)
    if (client === undefined || state === undefined) return null
    const persistent = outlivesConnection(client)
    const [queued = 0] = persistent ? await this.parts.queueLengths([id]) : [0]
    return {
      ...this.describe(client, state),
      subscriptions: subscriptionsOf(client),
      session: {
        persistent,
        expiryIntervalS: client.version === 5 ? client.sessionExpiryInterval : null,
        queued
      }
    }
  }

  /** Disconnects `id` if it is connected here (MQTT 5: DISCONNECT 0x98, administrative action). */
  disconnect (id: string): boolean {
    const client = clientById(this.parts.aedes, id)
    const state = client === undefined ? undefined : this.parts.clients.stateOf(client)
    if (client === undefined || state === undefined) return false
    this.parts.clients.disconnect(client, 'admin', ReasonCode.administrativeAction)
    return true
  }

  /** Subscribers per filter among this node's clients, filters starting with `prefix`. */
  countSubscriptions (prefix: string): Record<string, number> {
    const counts: Record<string, number> = {}
    for (const { client } of this.parts.clients.clients(this.parts.aedes)) {
      for (const { topic } of subscriptionsOf(client)) if (topic.startsWith(prefix)) counts[topic] = (counts[topic] ?? 0) + 1
    }
    return counts
  }

  stats (): NodeStats {
    const memory = process.memoryUsage()
    const rates = this.rates.current()
    return {
      id: this.parts.nodeId,
      uptimeS: Math.round((Date.now() - this.started) / 1000),
      connections: this.parts.aedes.connectedClients,
      messagesInPerS: rates.in,
      messagesOutPerS: rates.out,
      memory: { rss: memory.rss, heapUsed: memory.heapUsed },
      redis: this.parts.redisState(),
      draining: this.parts.drain.draining
    }
  }

  setDrain (drain: boolean): NodeStats {
    if (drain) this.parts.drain.start()
    else this.parts.drain.stop()
    return this.stats()
  }

  close (): void {
    this.rates.close()
  }

  private describe (client: Client, state: ClientState): ClientSummary {
    return {
      id: client.id,
      user: state.identity.user,
      node: this.parts.nodeId,
      transport: state.connection.transport,
      address: state.connection.remote ?? null,
      connectedSince: new Date(state.connectedSince).toISOString(),
      protocolVersion: client.version,
      persistentSession: outlivesConnection(client),
      subscriptions: subscriptionsOf(client).length
    }
  }
}
