// Turns the policies (authentication, authorization, limits) into Aedes' hooks, and answers
// each refusal the way MQTT 3.1.1 says: a CONNACK code, a SUBACK 0x80, a dropped message
// or a closed connection. Per-client state lives in a WeakMap keyed by the Aedes client.
import type { Aedes, AedesOptions, AuthenticateError, Client, PublishPacket } from 'aedes'
import type { Authenticator } from '../acl/authenticate.js'
import { compileGrants, publishLimitViolation, type AclConfig, type ClientGrants, type RoleLimits } from '../acl/authorize.js'
import type { AuthFailureKind, Identity } from '../acl/identity.js'
import { KeyedRateLimiter, type PublishRateKeys, type PublishRateLimiter } from '../acl/rate-limit.js'
import type { ClientIdOwnership } from './sessions/client-id-owner.js'
import { clientIdViolation, topicViolation, type Limits } from './protocol/limits.js'
import { connectViolation } from './protocol/connect-rules.js'
import type { Logger } from './observability/logger.js'
import type { RetainedCaps } from './storage/retained-quota.js'
import type { BrokerMetrics, DisconnectReason, DropReason, QosLabel, TransportLabel } from './observability/metrics.js'

export type BrokerHooks = Required<Pick<AedesOptions, 'preConnect' | 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>>

export interface HookParts {
  authenticator: Authenticator
  acl: AclConfig
  onPublishDenied: 'disconnect' | 'drop'
  onLimitExceeded: 'disconnect' | 'drop'
  /** Seconds a client may stay connected after its token expired. */
  expiryGraceS: number
  limits: Limits
  /** Publish rate buckets per user, shared with HTTP publish. */
  publishRates: PublishRateLimiter
  /** Who owns each client id; a CONNECT with another user's id is refused. */
  ownership: ClientIdOwnership
  logger: Logger
  /** Structured audit lines: authentication failures, ACL denials, admin actions. */
  audit: Logger
  metrics: BrokerMetrics
  /** A user's connections on all live nodes (this node's only without Redis). */
  userConnections: (user: string) => Promise<number>
  retainedCaps: RetainedCaps
}

/** Where a connection comes from, recorded when it is accepted. */
export interface ConnectionInfo {
  transport: TransportLabel
  remote: string | undefined
  /** The token a WebSocket upgrade carried (`Authorization: Bearer`, `?token=`), read by the bridge. */
  upgradeToken?: string
}

export interface ClientState {
  connection: ConnectionInfo
  connectedSince: number
  /**
   * Whether the connect completed (CONNACK sent, Aedes' clientReady) and was counted: a
   * connection dropped during CONNECT is forgotten without counting a disconnect.
   */
  ready: boolean
  /** Set when the broker itself ends the connection, for the disconnect metric. */
  closeReason: DisconnectReason | null
  identity: Identity
  grants: ClientGrants
  /** The filters subscribed, kept only when a role limits how many (limits.maxSubscriptions). */
  subscriptions: Set<string> | null
  /** The publish rate buckets it takes from: its user's, or its own when anonymous. */
  publishRate: PublishRateKeys
  expiryTimer: NodeJS.Timeout | null
}

type Will = NonNullable<Parameters<BrokerHooks['preConnect']>[1]['will']>

// setTimeout's longest delay; a token expiring later is re-checked when the timer fires.
const maxTimerDelay = 2 ** 31 - 1
// Publish times kept for the delivery-latency histogram: a ring of the most recent messages,
// indexed by brokerCounter (a Map that evicts its oldest key costs microseconds per publish).
const latencyRingSize = 1 << 14
const latencyRingMask = latencyRingSize - 1

function refusal (message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError
}


export class BrokerPolicies {
  private readonly states = new WeakMap<Client, ClientState>()
  private readonly wills = new WeakMap<Client, Will>()
  // Publishes acknowledged but not delivered (policy "drop"); see installDropFilter.
  private readonly dropped = new WeakSet<PublishPacket>()
  private readonly connections = new WeakMap<object, ConnectionInfo>()
  // slot brokerCounter & mask: when the message was accepted (ms), and which counter owns the slot
  private readonly publishedAt = new Float64Array(latencyRingSize)
  private readonly publishedCounter = new Float64Array(latencyRingSize)
  private brokerId = ''
  private readonly connectRates = new KeyedRateLimiter()
  // A client's retained publishes being checked against the caps (a Redis round trip): its
  // later publishes wait for them, so its messages keep their order [MQTT-4.6.0-6].
  private readonly retainedChecks = new WeakMap<Client, Promise<void>>()
  // numbers connections: an anonymous one has publish rate buckets of its own
  private connectionSequence = 0

  constructor (private readonly parts: HookParts) {}

  /** Records where a connection comes from; `stream` is what Aedes gets as client.conn. */
  registerConnection (stream: object, info: ConnectionInfo): void {
    this.connections.set(stream, info)
  }

  /** Clients this node holds, with their state. */
  * clients (aedes: Aedes): Generator<{ client: Client, state: ClientState }> {
    // Aedes keeps its connected clients in `clients`, which its typings leave out.
    for (const client of Object.values((aedes as unknown as { clients: Record<string, Client> }).clients)) {
      const state = this.states.get(client)
      if (state !== undefined) yield { client, state }
    }
  }

  /** Ends a client's connection on the broker's initiative, recording why. */
  disconnect (client: Client, reason: DisconnectReason): void {
    const state = this.states.get(client)
    if (state !== undefined) state.closeReason = reason
    client.close()
  }

  /** Marks a client whose connect completed (clientReady) and counts it; its state, once. */
  ready (client: Client): ClientState | undefined {
    const state = this.states.get(client)
    if (state === undefined || state.ready) return undefined
    state.ready = true
    this.parts.metrics.clientConnected(state.connection.transport)
    return state
  }

  /**
   * Forgets a client that disconnected; returns its state only if its connect was counted
   * (ready), so that a connection dropped during CONNECT counts no disconnect and takes no
   * presence offline.
   */
  forget (client: Client, currentHolder: Client | undefined, fallback: DisconnectReason): ClientState | undefined {
    const state = this.states.get(client)
    if (state === undefined) return undefined
    if (state.expiryTimer !== null) clearTimeout(state.expiryTimer)
    this.states.delete(client)
    if (!state.ready) return undefined
    // Another connection now holds the client id: it took the session over.
    const reason = state.closeReason ?? (currentHolder !== undefined && currentHolder !== client ? 'takeover' : fallback)
    this.parts.metrics.clientDisconnected(state.connection.transport, reason)
    return state
  }

  /** Marks why Aedes is about to close a client (keepalive, drain timeout, errors). */
  noteCloseReason (client: Client, reason: DisconnectReason): void {
    const state = this.states.get(client)
    if (state !== undefined && state.closeReason === null) state.closeReason = reason
  }

  forgetSubscriptions (client: Client, topics: string[]): void {
    const state = this.states.get(client)
    if (state?.subscriptions != null) for (const topic of topics) state.subscriptions.delete(topic)
  }

  /**
   * Makes the broker skip publishes the policy chose to drop: MQTT 3.1.1 lets a server
   * acknowledge a PUBLISH it will not deliver [MQTT-3.3.5-2]; Aedes has no hook for that, so
   * its publish step is wrapped to skip packets marked in authorizePublish.
   */
  installDropFilter (aedes: Aedes): void {
    // Aedes' handlers call publish(packet, client, done); its typings only declare (packet, done).
    type Done = (err?: Error) => void
    type InternalPublish = (packet: PublishPacket, client: Client | null | Done, done?: Done) => void
    const target = aedes as unknown as { publish: InternalPublish }
    const publish = target.publish.bind(aedes)
    const { dropped, publishedAt, publishedCounter } = this
    this.brokerId = aedes.id
    target.publish = function (packet, clientOrDone, maybeDone) {
      const client = typeof clientOrDone === 'function' ? null : clientOrDone
      const done: Done = (typeof clientOrDone === 'function' ? clientOrDone : maybeDone) ?? (() => {})
      if (dropped.has(packet)) {
        setImmediate(done)
        return
      }
      if (client !== null) {
        // publish() numbers the packet first thing, synchronously (brokerCounter = ++counter),
        // and may deliver it before returning: stamp the number it is about to get.
        const counter = (aedes as unknown as { counter: number }).counter + 1
        publishedAt[counter & latencyRingMask] = performance.now()
        publishedCounter[counter & latencyRingMask] = counter
      }
      publish(packet, client, done)
    }
  }

  hooks (): BrokerHooks {
    const { parts } = this
    const { audit, metrics } = parts
    return {
      preConnect: (client, packet, done) => {
        // MQTT 3.1.1 rules that need the parsed CONNECT or the limits (the byte-level ones are
        // the guard's): a will topic that is no topic name, a keep alive over the limit.
        // Refused without CONNACK [MQTT-3.1.4-1] [MQTT-3.2.2-6].
        const violation = connectViolation(packet, parts.limits)
        if (violation !== null) {
          parts.logger.warn({ event: 'connect.refused', clientId: packet.clientId, reason: violation }, 'connection closed: CONNECT does not conform')
          return done(new Error(violation), false)
        }
        if (packet.will != null) this.wills.set(client, packet.will)
        done(null, true)
      },

      authenticate: (client, username, password, done) => {
        const connection = this.connections.get(client.conn) ?? { transport: 'tcp', remote: undefined }
        const refuse = (code: number, kind: AuthFailureKind, reason: string): void => {
          audit.warn({ event: 'auth.failed', clientId: client.id, remote: connection.remote, kind, reason, code }, 'connection refused')
          metrics.authFailed(kind)
          done(refusal(reason, code), null)
        }
        const idViolation = clientIdViolation(client.id, parts.limits)
        // [MQTT-3.1.3-9] an identifier the server rejects gets CONNACK 0x02
        if (idViolation !== null) return refuse(2, 'identifier_rejected', idViolation)
        const result = parts.authenticator({ clientId: client.id, username, password, upgradeToken: connection.upgradeToken })
        if (!result.ok) return refuse(result.code, result.kind, result.reason)
        const { identity } = result
        const compiled = compileGrants(identity, client.id, parts.acl)
        if (!compiled.ok) return refuse(compiled.culprit === 'clientId' ? 2 : 5, 'unsafe_identity', compiled.reason)
        const { grants } = compiled
        // A will is a publish by its owner, authorized at connect time.
        const will = this.wills.get(client)
        if (will !== undefined && (will.topic.startsWith('$') || !grants.canPublish(will.topic))) {
          return refuse(5, 'will_denied', `will topic ${will.topic} is not authorized`)
        }
        const { limits } = grants
        this.states.set(client, {
          connection,
          connectedSince: Date.now(),
          ready: false,
          closeReason: null,
          identity,
          grants,
          subscriptions: limits.maxSubscriptions === undefined ? null : new Set(),
          publishRate: parts.publishRates.keys(identity.user, `connection:${++this.connectionSequence}`, limits),
          expiryTimer: identity.expiresAt === null ? null : this.scheduleExpiry(client, identity.expiresAt + parts.expiryGraceS * 1000)
        })
        // the connection limits first: a refused connection claims no client id
        this.admitConnection(client, identity.user, limits, refuse, () => {
          this.claimClientId(client, identity, (code, kind, reason) => {
            this.forget(client, undefined, 'client')
            refuse(code, kind, reason)
          }, () => done(null, true))
        })
      },

      authorizePublish: (client, packet, done) => {
        // null: Aedes publishes the will of a client that is gone; it was authorized at connect,
        // and meets only the broker-wide retained cap (its owner is gone).
        if (client === null) {
          if (!packet.retain) return done(null)
          return void parts.retainedCaps.apply(packet, { user: null, clientId: null, via: 'will' }, {}).then(() => done(null))
        }
        const state = this.states.get(client)
        const deny = (policy: 'disconnect' | 'drop', cause: DropReason, reason: string): void => {
          audit.warn({ event: cause === 'acl' ? 'acl.denied' : 'limit.exceeded', action: 'publish', clientId: client.id, user: state?.identity.user ?? null, topic: packet.topic, reason }, 'publish refused')
          if (cause === 'acl') metrics.aclDenied('publish')
          if (policy === 'drop') {
            metrics.messageDropped(cause)
            this.dropped.add(packet)
            done(null)
          } else {
            done(new Error(reason))
          }
        }
        const violation = topicViolation(packet.topic, parts.limits)
        if (violation !== null) return done(new Error(violation))
        if (state === undefined) return done(new Error('client is not authenticated'))
        // $SYS and $presence are written only by the broker itself.
        if (packet.topic.startsWith('$')) return deny(parts.onPublishDenied, 'acl', 'topics starting with $ are reserved to the broker')
        if (!state.grants.canPublish(packet.topic)) return deny(parts.onPublishDenied, 'acl', 'not granted')
        const size = packet.payload.length
        const overLimit = publishLimitViolation(state.grants.limits, packet.qos, size)
        if (overLimit !== null) return deny(parts.onLimitExceeded, overLimit.cause, overLimit.reason)
        const overRate = parts.publishRates.take(state.publishRate, 1, size)
        if (overRate !== null) return deny(parts.onLimitExceeded, 'rate_limit', overRate)
        metrics.messageIn(packet.qos as QosLabel, size)
        this.afterRetainedCaps(client, state, packet, done)
      },

      authorizeSubscribe: (client, subscription, done) => {
        const state = this.states.get(client)
        const refuse = (event: string, reason: string): void => {
          audit.warn({ event, action: 'subscribe', clientId: client.id, user: state?.identity.user ?? null, topic: subscription.topic, reason }, 'subscription refused')
          if (event === 'acl.denied') metrics.aclDenied('subscribe')
          // A null subscription makes Aedes answer 0x80 for this filter only.
          done(null, null)
        }
        const violation = topicViolation(subscription.topic, parts.limits)
        if (violation !== null) return refuse('limit.exceeded', violation)
        if (state === undefined) return refuse('acl.denied', 'client is not authenticated')
        if (!state.grants.canSubscribe(subscription.topic)) return refuse('acl.denied', 'not granted')
        const { limits } = state.grants
        const { subscriptions } = state
        if (subscriptions !== null) {
          if (limits.maxSubscriptions !== undefined && !subscriptions.has(subscription.topic) && subscriptions.size >= limits.maxSubscriptions) {
            return refuse('limit.exceeded', `over ${limits.maxSubscriptions} subscriptions`)
          }
          subscriptions.add(subscription.topic)
        }
        if (limits.maxQos !== undefined && subscription.qos > limits.maxQos) subscription.qos = limits.maxQos
        done(null, subscription)
      },

      // The second line of defence: a message reaches a client only on a topic it may read,
      // whether live, retained or queued while it was offline.
      authorizeForward: (client, packet) => {
        const state = this.states.get(client)
        if (state === undefined || !state.grants.canRead(packet.topic)) {
          metrics.aclDenied('forward')
          return null
        }
        metrics.messageOut(packet.qos as QosLabel, packet.payload.length)
        if (packet.brokerId === this.brokerId) {
          const slot = packet.brokerCounter & latencyRingMask
          if (this.publishedCounter[slot] === packet.brokerCounter) metrics.deliveryLatency.observe((performance.now() - (this.publishedAt[slot] as number)) / 1000)
        }
        return packet
      }
    }
  }

  /** Calls `done` once a retained packet met the retained caps, in the client's publish order. */
  private afterRetainedCaps (client: Client, state: ClientState, packet: PublishPacket, done: (err: null) => void): void {
    const pending = this.retainedChecks.get(client)
    if (!packet.retain && pending === undefined) return done(null)
    const publisher = { user: state.identity.user, clientId: client.id, via: 'mqtt' as const }
    const check = (pending ?? Promise.resolve()).then(async () => {
      if (packet.retain) await this.parts.retainedCaps.apply(packet, publisher, state.grants.limits)
      done(null)
    })
    this.retainedChecks.set(client, check)
    void check.then(() => { if (this.retainedChecks.get(client) === check) this.retainedChecks.delete(client) })
  }

  /** Accepts a client within its user's connection limits; refuses it (CONNACK 5) beyond them. */
  private admitConnection (client: Client, user: string | null, limits: RoleLimits, refuse: (code: number, kind: AuthFailureKind, reason: string) => void, accept: () => void): void {
    if (user === null) return accept()
    const deny = (kind: AuthFailureKind, reason: string): void => {
      this.forget(client, undefined, 'client')
      refuse(5, kind, reason)
    }
    this.connectionLimitViolation(client, user, limits).then((violation) => {
      if (violation === null) accept()
      else deny(violation.kind, violation.reason)
    }, (err: Error) => {
      // counts unreadable (Redis away): availability first, the rate limit still holds
      this.parts.logger.warn({ event: 'connect.limit-unchecked', clientId: client.id, reason: err.message }, 'connection count unavailable: connection accepted')
      accept()
    })
  }

  /**
   * Per user: new connections per second on this node, and concurrent connections (all nodes
   * with Redis). The role limits apply, else the broker-wide defaults; 0 = unlimited.
   */
  private async connectionLimitViolation (client: Client, user: string, limits: RoleLimits): Promise<{ kind: AuthFailureKind, reason: string } | null> {
    const rate = limits.maxConnectRate ?? this.parts.limits.maxConnectRatePerUser
    if (rate > 0 && !this.connectRates.take(user, rate)) return { kind: 'connect_rate_limit', reason: `user over ${rate} new connections per second` }
    const max = limits.maxConnections ?? this.parts.limits.maxConnectionsPerUser
    if (max === 0) return null
    // a connection of this user about to be taken over (same client id) makes room for this one
    // (Aedes' client knows its broker, and the broker its clients: both left out of the typings)
    const holder = (client as unknown as { broker: { clients: Record<string, Client> } }).broker.clients[client.id]
    const replaced = holder !== undefined && holder !== client && this.states.get(holder)?.identity.user === user ? 1 : 0
    if (await this.parts.userConnections(user) - replaced >= max) return { kind: 'connection_limit', reason: `user already has ${max} connections` }
    return null
  }

  /**
   * A client id belongs to the user whose connection created its session: another user's
   * CONNECT with it is refused here, before Aedes closes the holder's connection or reads the
   * session (client-id-owner.ts). Not authorized [MQTT-3.2.2-5]; 3 when the store is away.
   */
  private claimClientId (client: Client, identity: Identity, refuse: (code: number, kind: AuthFailureKind, reason: string) => void, claimed: () => void): void {
    this.parts.ownership.claim(client, identity).then((result) => {
      if (result.ok) return claimed()
      refuse(5, 'client_id_owned', `the client id belongs to the session of ${result.owner}`)
    }, (err: Error) => {
      this.parts.logger.warn({ event: 'client-id.claim-failed', clientId: client.id, reason: err.message }, 'could not read who owns a client id')
      refuse(3, 'session_store_unavailable', 'who owns the client id could not be read')
    })
  }

  private scheduleExpiry (client: Client, at: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const state = this.states.get(client)
      if (state === undefined) return
      if (Date.now() < at) {
        state.expiryTimer = this.scheduleExpiry(client, at)
        return
      }
      this.parts.audit.info({ event: 'auth.expired', clientId: client.id, user: state.identity.user }, 'token expired: disconnecting client')
      this.disconnect(client, 'token_expired')
    }, Math.max(0, Math.min(at - Date.now(), maxTimerDelay)))
    timer.unref()
    return timer
  }
}
