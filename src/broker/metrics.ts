// Prometheus metrics of one node (prom-client). Labels have bounded cardinality: never a
// client id or a topic. Hot-path counters are bound to their label values once.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { AuthFailureKind } from '../acl/identity.js'

export type TransportLabel = 'tcp' | 'tls' | 'ws' | 'wss'
export type QosLabel = 0 | 1 | 2

/** Why a client's connection ended. */
export type DisconnectReason = 'client' | 'keepalive_timeout' | 'slow_consumer' | 'error' | 'protocol_violation' | 'token_expired' | 'takeover' | 'admin' | 'shutdown'


/** Why a message was not delivered. */
// queue_limit: Aedes' per-client packet queue before CONNECT; queue_full: a persistent
// session's stored messages at sessions.maxQueuedMessages.
export type DropReason = 'acl' | 'rate_limit' | 'size' | 'qos_limit' | 'slow_consumer' | 'queue_limit' | 'queue_full' | 'cluster_backpressure'

export type AclAction = 'publish' | 'subscribe' | 'forward'

/** A counter child with its labels bound. */
type BoundCounter = ReturnType<Counter['labels']>
type BoundGauge = ReturnType<Gauge['labels']>

const transports: TransportLabel[] = ['tcp', 'tls', 'ws', 'wss']
const qosLevels: QosLabel[] = [0, 1, 2]

function byTransport<T> (make: (transport: TransportLabel) => T): Record<TransportLabel, T> {
  return Object.fromEntries(transports.map((transport) => [transport, make(transport)])) as Record<TransportLabel, T>
}

export interface MetricsSources {
  /** Retained messages currently stored. */
  retainedCount: () => Promise<number>
  /** Redis connections and whether each is up; empty without Redis. */
  redisState: () => Record<string, boolean>
}

export class BrokerMetrics {
  readonly registry = new Registry()
  private readonly connected: Gauge
  private readonly connects: Counter
  private readonly connectedBy: Record<TransportLabel, BoundGauge>
  private readonly connectsBy: Record<TransportLabel, BoundCounter>
  private readonly disconnects: Counter
  private readonly authFailures: Counter
  private readonly aclDenials: Counter
  private readonly dropped: Counter
  private readonly sessionsExpired: Counter
  private readonly messagesIn: BoundCounter[]
  private readonly bytesIn: BoundCounter[]
  private readonly messagesOut: BoundCounter[]
  private readonly bytesOut: BoundCounter[]
  readonly deliveryLatency: Histogram

  constructor (nodeId: string, sources: MetricsSources) {
    const registers = [this.registry]
    this.registry.setDefaultLabels({ node: nodeId })
    collectDefaultMetrics({ register: this.registry, prefix: 'realtime_broker_' })
    this.connected = new Gauge({ name: 'realtime_broker_clients_connected', help: 'Clients connected to this node, by transport', labelNames: ['transport'], registers })
    this.connects = new Counter({ name: 'realtime_broker_connects_total', help: 'Accepted MQTT connections (CONNACK 0), by transport', labelNames: ['transport'], registers })
    this.disconnects = new Counter({ name: 'realtime_broker_disconnects_total', help: 'Ended MQTT sessions on this node, by reason', labelNames: ['reason'], registers })
    this.authFailures = new Counter({ name: 'realtime_broker_auth_failures_total', help: 'Refused CONNECTs, by reason', labelNames: ['reason'], registers })
    this.aclDenials = new Counter({ name: 'realtime_broker_acl_denials_total', help: 'ACL denials, by action', labelNames: ['action'], registers })
    this.dropped = new Counter({ name: 'realtime_broker_dropped_messages_total', help: 'Messages accepted or routed but not delivered, by reason', labelNames: ['reason'], registers })
    this.sessionsExpired = new Counter({ name: 'realtime_broker_sessions_expired_total', help: 'Persistent sessions deleted by this node after sessions.expirySeconds offline', registers })
    const messages = new Counter({ name: 'realtime_broker_messages_in_total', help: 'PUBLISH packets accepted from clients, by QoS', labelNames: ['qos'], registers })
    const bytes = new Counter({ name: 'realtime_broker_bytes_in_total', help: 'Payload bytes accepted from clients, by QoS', labelNames: ['qos'], registers })
    const messagesOut = new Counter({ name: 'realtime_broker_messages_out_total', help: 'Messages forwarded to clients, by QoS of the message', labelNames: ['qos'], registers })
    const bytesOut = new Counter({ name: 'realtime_broker_bytes_out_total', help: 'Payload bytes forwarded to clients, by QoS of the message', labelNames: ['qos'], registers })
    this.messagesIn = qosLevels.map((q) => messages.labels(String(q)))
    this.bytesIn = qosLevels.map((q) => bytes.labels(String(q)))
    this.messagesOut = qosLevels.map((q) => messagesOut.labels(String(q)))
    this.bytesOut = qosLevels.map((q) => bytesOut.labels(String(q)))
    // Children bound once: labels() hashes its arguments into a new string on every call.
    this.connectedBy = byTransport((transport) => this.connected.labels(transport))
    this.connectsBy = byTransport((transport) => this.connects.labels(transport))
    for (const transport of transports) {
      this.connectedBy[transport].set(0)
      this.connectsBy[transport].inc(0)
    }
    this.deliveryLatency = new Histogram({
      name: 'realtime_broker_delivery_latency_seconds',
      help: 'From a PUBLISH accepted on this node to its forward to a subscriber on this node',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers
    })
    new Gauge({
      name: 'realtime_broker_retained_messages',
      help: 'Retained messages stored (cluster-wide with Redis)',
      registers,
      async collect () { this.set(await sources.retainedCount()) }
    })
    new Gauge({
      name: 'realtime_broker_redis_up',
      help: 'Whether each Redis connection of this node is up (1) or not (0)',
      labelNames: ['connection'],
      registers,
      collect () {
        for (const [connection, up] of Object.entries(sources.redisState())) this.labels(connection).set(up ? 1 : 0)
      }
    })
  }

  clientConnected (transport: TransportLabel): void {
    this.connectedBy[transport].inc()
    this.connectsBy[transport].inc()
  }

  clientDisconnected (transport: TransportLabel, reason: DisconnectReason): void {
    this.connectedBy[transport].dec()
    this.disconnects.labels(reason).inc()
  }

  authFailed (reason: AuthFailureKind): void {
    this.authFailures.labels(reason).inc()
  }

  aclDenied (action: AclAction): void {
    this.aclDenials.labels(action).inc()
  }

  messageDropped (reason: DropReason): void {
    this.dropped.labels(reason).inc()
  }

  sessionExpired (): void {
    this.sessionsExpired.inc()
  }

  messageIn (qos: QosLabel, bytes: number): void {
    this.messagesIn[qos]?.inc()
    this.bytesIn[qos]?.inc(bytes)
  }

  messageOut (qos: QosLabel, bytes: number): void {
    this.messagesOut[qos]?.inc()
    this.bytesOut[qos]?.inc(bytes)
  }
}
