// Prometheus metrics of one node (prom-client). Labels have bounded cardinality: never a
// client id or a topic. Per-connection metrics are bound to their label values once; per-message
// ones are plain numbers that the scrape reads.
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import type { AuthFailureKind } from '../../acl/identity.js'
import type { RetainedLimit } from '../storage/retained-quota.js'
import type { GroupSummary } from '../shared/shared-emitter.js'
import type { ConnectGateCounts, ConnectRefusal } from '../process/connect-gate.js'

export type TransportLabel = 'tcp' | 'tls' | 'ws' | 'wss'
export type QosLabel = 0 | 1 | 2

/** Why a client's connection ended. */
export type DisconnectReason = 'client' | 'keepalive_timeout' | 'slow_consumer' | 'error' | 'protocol_violation' | 'limit_exceeded' | 'token_expired' | 'reauth_failed' | 'takeover' | 'admin' | 'shutdown'


/** Why a message was not delivered. */
// queue_limit: Aedes' per-client packet queue before CONNECT; queue_full: a persistent
// session's stored messages at sessions.maxQueuedMessages; slow_consumer: a QoS 0 message to a
// client over limits.maxClientOutputBytes, a client cut off as a slow consumer, an SSE reader
// behind.
export type DropReason = 'acl' | 'rate_limit' | 'size' | 'qos_limit' | 'payload_format' | 'too_large_for_client' | 'slow_consumer' | 'queue_limit' | 'queue_full' | 'cluster_backpressure'

export type AclAction = 'publish' | 'subscribe' | 'forward'

/** Why a Server-Sent Events stream was refused: its user's cap, or this node's. */
export type SseRefusal = 'user_limit' | 'node_limit'

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
  /** The shared subscription groups this node knows, with its own counts; none by default. */
  sharedGroups?: () => GroupSummary[]
  /** CONNECTs being worked on and waiting (limits.maxConcurrentConnects); absent when uncapped. */
  connectGate?: () => ConnectGateCounts
}

export class BrokerMetrics {
  readonly registry = new Registry()
  private readonly connectedBy: Record<TransportLabel, BoundGauge>
  private readonly connectsBy: Record<TransportLabel, BoundCounter>
  private readonly disconnects: Counter
  private readonly authFailures: Counter
  private readonly aclDenials: Counter
  private readonly dropped: Counter
  private readonly sessionsExpired: Counter
  private readonly retainedNotStored: Counter
  private readonly sseStreams: Gauge
  private readonly sseRefusals: Counter
  private readonly connectsThrottled: Counter
  private readonly routeCatchUps: Counter
  // Per-message counts, by QoS: plain numbers the scrape reads (prom-client's inc() hashes its
  // labels into a string on every call: with the histogram, 8% of a node's CPU at 90k msg/s).
  private readonly messagesIn = new Float64Array(qosLevels.length)
  private readonly bytesIn = new Float64Array(qosLevels.length)
  private readonly messagesOut = new Float64Array(qosLevels.length)
  private readonly bytesOut = new Float64Array(qosLevels.length)
  readonly deliveryLatency: HotHistogram

  /** `eventLoopMonitoringPrecisionMs`: how often the event-loop-delay histogram wakes the process (metrics.eventLoopMonitoringPrecisionMs). */
  constructor (nodeId: string, sources: MetricsSources, eventLoopMonitoringPrecisionMs: number) {
    const registers = [this.registry]
    this.registry.setDefaultLabels({ node: nodeId })
    collectDefaultMetrics({ register: this.registry, prefix: 'realtime_broker_', eventLoopMonitoringPrecision: eventLoopMonitoringPrecisionMs })
    const connected = new Gauge({ name: 'realtime_broker_clients_connected', help: 'Clients connected to this node, by transport', labelNames: ['transport'], registers })
    const connects = new Counter({ name: 'realtime_broker_connects_total', help: 'Accepted MQTT connections (CONNACK 0), by transport', labelNames: ['transport'], registers })
    this.disconnects = new Counter({ name: 'realtime_broker_disconnects_total', help: 'Ended MQTT sessions on this node, by reason', labelNames: ['reason'], registers })
    this.authFailures = new Counter({ name: 'realtime_broker_auth_failures_total', help: 'Refused CONNECTs, by reason', labelNames: ['reason'], registers })
    this.aclDenials = new Counter({ name: 'realtime_broker_acl_denials_total', help: 'ACL denials, by action', labelNames: ['action'], registers })
    this.dropped = new Counter({ name: 'realtime_broker_dropped_messages_total', help: 'Messages accepted or routed but not delivered, by reason', labelNames: ['reason'], registers })
    this.retainedNotStored = new Counter({ name: 'realtime_broker_retained_not_stored_total', help: 'Retained PUBLISHes delivered live but not stored, by the cap they would break', labelNames: ['limit'], registers })
    this.sessionsExpired = new Counter({ name: 'realtime_broker_sessions_expired_total', help: 'Persistent sessions deleted by this node after sessions.expirySeconds offline', registers })
    this.sseStreams = new Gauge({ name: 'realtime_broker_sse_streams', help: 'Server-Sent Events streams open on this node', registers })
    this.sseRefusals = new Counter({ name: 'realtime_broker_sse_refused_total', help: 'Server-Sent Events streams refused, by the cap that refused them', labelNames: ['reason'], registers })
    this.routeCatchUps = new Counter({ name: 'realtime_broker_route_catch_ups_total', help: 'Route catch-ups of persistent sessions (docs/cluster.md): every node acknowledged the new route within the hold (in_time), or the hold bound passed first (bound)', labelNames: ['outcome'], registers })
    this.connectsThrottled = new Counter({ name: 'realtime_broker_connects_throttled_total', help: 'CONNECTs over limits.maxConcurrentConnects: queued for a turn, or refused (CONNACK 3 / 0x89) with the queue full or after waiting too long', labelNames: ['outcome'], registers })
    const connectGate = sources.connectGate
    if (connectGate !== undefined) {
      new Gauge({
        name: 'realtime_broker_connects_in_progress',
        help: 'CONNECTs being authenticated and resumed (active), or waiting for a turn (waiting)',
        labelNames: ['state'],
        registers,
        collect () {
          const { active, waiting } = connectGate()
          this.labels('active').set(active)
          this.labels('waiting').set(waiting)
        }
      })
      new Gauge({
        name: 'realtime_broker_connect_turns',
        help: 'CONNECTs allowed at once now: limits.maxConcurrentConnects, or fewer while the event loop runs later than limits.connectLoopDelayMs',
        registers,
        collect () {
          this.set(connectGate().turns)
        }
      })
    }
    const perQos = (name: string, help: string, counts: Float64Array): void => {
      new Counter({
        name,
        help,
        labelNames: ['qos'],
        registers,
        collect () {
          this.reset()
          for (const qos of qosLevels) this.inc({ qos }, counts[qos])
        }
      })
    }
    perQos('realtime_broker_messages_in_total', 'PUBLISH packets accepted from clients, by QoS', this.messagesIn)
    perQos('realtime_broker_bytes_in_total', 'Payload bytes accepted from clients, by QoS', this.bytesIn)
    perQos('realtime_broker_messages_out_total', 'Messages forwarded to clients, by QoS of the message', this.messagesOut)
    perQos('realtime_broker_bytes_out_total', 'Payload bytes forwarded to clients, by QoS of the message', this.bytesOut)
    // Children bound once: labels() hashes its arguments into a new string on every call.
    this.connectedBy = byTransport((transport) => connected.labels(transport))
    this.connectsBy = byTransport((transport) => connects.labels(transport))
    for (const transport of transports) {
      this.connectedBy[transport].set(0)
      this.connectsBy[transport].inc(0)
    }
    this.deliveryLatency = new HotHistogram(
      'realtime_broker_delivery_latency_seconds',
      'From a PUBLISH accepted on this node to its forward to a subscriber on this node',
      [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]
    )
    // prom-client's Metric type lists its own classes; the registry needs only name and get().
    this.registry.registerMetric(this.deliveryLatency as unknown as Metric)
    new Gauge({
      name: 'realtime_broker_retained_messages',
      help: 'Retained messages stored (cluster-wide with Redis)',
      registers,
      async collect () { this.set(await sources.retainedCount()) }
    })
    // Per shared subscription group (the `group` label is its `$share/<name>/<filter>`: as many
    // as the groups clients make, bounded by their subscriptions), read at scrape time.
    const sharedGroups = sources.sharedGroups ?? (() => [])
    new Gauge({
      name: 'realtime_broker_shared_group_members',
      help: 'Members of each shared subscription group, on every node as this node knows them',
      labelNames: ['group'],
      registers,
      collect () {
        this.reset()
        for (const { group, members } of sharedGroups()) this.labels(group).set(members.length)
      }
    })
    new Gauge({
      name: 'realtime_broker_shared_group_waiting',
      help: 'QoS 1/2 messages waiting on this node for a member of each shared subscription group',
      labelNames: ['group'],
      registers,
      collect () {
        this.reset()
        for (const { group, waiting } of sharedGroups()) this.labels(group).set(waiting)
      }
    })
    new Counter({
      name: 'realtime_broker_shared_group_messages_total',
      help: 'Messages of each shared subscription group on this node: delivered to a member here, redispatched from a member gone, queued for want of a member, dropped (QoS 0 without a member, or the wait full)',
      labelNames: ['group', 'outcome'],
      registers,
      collect () {
        this.reset()
        for (const { group, delivered, redispatched, queued, dropped } of sharedGroups()) {
          this.inc({ group, outcome: 'delivered' }, delivered)
          this.inc({ group, outcome: 'redispatched' }, redispatched)
          this.inc({ group, outcome: 'queued' }, queued)
          this.inc({ group, outcome: 'dropped' }, dropped)
        }
      }
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

  connectThrottled (outcome: 'queued' | ConnectRefusal): void {
    this.connectsThrottled.labels(outcome).inc()
  }

  aclDenied (action: AclAction): void {
    this.aclDenials.labels(action).inc()
  }

  /** Told of every drop when set (webhooks' message.dropped); null costs a drop nothing more. */
  dropListener: ((reason: DropReason, count: number) => void) | null = null

  messageDropped (reason: DropReason, count = 1): void {
    this.dropped.labels(reason).inc(count)
    this.dropListener?.(reason, count)
  }

  /** A retained message delivered live but not stored: over `limit`. */
  retainedRefused (limit: RetainedLimit): void {
    this.retainedNotStored.labels(limit).inc()
  }

  /** A persistent session's route catch-up read its queue: every node answered in time, or at the hold bound. */
  routeCatchUp (outcome: 'in_time' | 'bound'): void {
    this.routeCatchUps.labels(outcome).inc()
  }

  sessionExpired (): void {
    this.sessionsExpired.inc()
  }

  sseStreamOpened (): void {
    this.sseStreams.inc()
  }

  sseStreamClosed (): void {
    this.sseStreams.dec()
  }

  sseStreamRefused (reason: SseRefusal): void {
    this.sseRefusals.labels(reason).inc()
  }

  messageIn (qos: QosLabel, bytes: number): void {
    add(this.messagesIn, qos, 1)
    add(this.bytesIn, qos, bytes)
  }

  messageOut (qos: QosLabel, bytes: number): void {
    add(this.messagesOut, qos, 1)
    add(this.bytesOut, qos, bytes)
  }

  /** Messages accepted from and forwarded to clients since start, all QoS (the admin API's rates). */
  messageTotals (): { in: number, out: number } {
    const sum = (counts: Float64Array): number => counts.reduce((total, count) => total + count, 0)
    return { in: sum(this.messagesIn), out: sum(this.messagesOut) }
  }
}

function add (counts: Float64Array, index: number, amount: number): void {
  counts[index] = (counts[index] as number) + amount
}

/** One line of a histogram's exposition, in the shape prom-client's registry reads. */
interface HistogramValue {
  labels: Record<string, string | number>
  value: number
  metricName: string
}

/**
 * A histogram without labels, observed on the per-delivery path: observe() is a bucket search
 * and three additions; the registry reads it at scrape time, as it reads prom-client's own.
 */
class HotHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  // per bucket (not cumulative); the last one is +Inf
  private readonly counts: Float64Array
  private sum = 0
  private count = 0

  constructor (readonly name: string, readonly help: string, private readonly upperBounds: readonly number[]) {
    this.counts = new Float64Array(upperBounds.length + 1)
  }

  observe (value: number): void {
    let bucket = 0
    while (bucket < this.upperBounds.length && value > (this.upperBounds[bucket] as number)) bucket++
    add(this.counts, bucket, 1)
    this.sum += value
    this.count++
  }

  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: HistogramValue[] }> {
    let cumulative = 0
    const bucket = `${this.name}_bucket`
    const values: HistogramValue[] = this.upperBounds.map((le, i) => ({ labels: { le }, value: (cumulative += this.counts[i] as number), metricName: bucket }))
    values.push({ labels: { le: '+Inf' }, value: this.count, metricName: bucket })
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: [...values, { labels: {}, value: this.sum, metricName: `${this.name}_sum` }, { labels: {}, value: this.count, metricName: `${this.name}_count` }]
    }
  }
}
