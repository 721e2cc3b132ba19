// Turns the policies (authentication, authorization, limits) into Aedes' hooks, and answers
// each refusal the way MQTT 3.1.1 says: a CONNACK code, a SUBACK 0x80, a dropped message
// or a closed connection; MQTT 5 clients get the reason code (reason-codes.ts), and a refused
// PUBLISH of theirs is answered with it while the connection stays up. Per-client state lives in the client registry (client-registry.ts).
import { isUtf8 } from 'node:buffer'
import type { AedesOptions, AuthenticateError, Client, PublishPacket, Subscription } from 'aedes'
import type { Authenticator } from '../acl/authenticate.js'
import { compileGrants, publishLimitViolation, type AclConfig, type ClientGrants, type RoleLimits } from '../acl/authorize.js'
import { intersectGrants, narrowedIdentity, revocationTopic, type HookAction, type HookAnswer, type HookDecider } from '../acl/authorization-hook.js'
import { adminRole, type AuthFailureKind, type Identity } from '../acl/identity.js'
import { KeyedRateLimiter, type PublishRateLimiter } from '../acl/rate-limit.js'
import { holderOfClientId, isDelayedWill, willOf } from './aedes-adapter.js'
import type { ClientRegistry, ClientState } from './client-registry.js'
import type { ClientIdOwnership } from './sessions/client-id-owner.js'
import { clientIdViolation, topicViolation, type Limits } from './protocol/limits.js'
import { parseSharedFilter } from './shared/share-name.js'
import { connectViolation } from './protocol/connect-rules.js'
import { connectRefusalCode, publishRefusal, ReasonCode } from './protocol/reason-codes.js'
import { AuthReason, authSuccessBytes, jwtAuthenticationMethod, parseAuthPacket } from './protocol/auth-packet.js'
import type { DeliveryLatency } from './observability/delivery-latency.js'
import type { Logger } from './observability/logger.js'
import type { RetainedCaps } from './storage/retained-quota.js'
import { historyRequestPrefix } from './history/history-requests.js'
import type { BrokerMetrics, DropReason, QosLabel } from './observability/metrics.js'

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
  deliveryLatency: DeliveryLatency
  /** When topics keep history: answers a PUBLISH to `$history/<topic>` (history/history-requests.ts). */
  historyRequest?: (client: Client, grants: ClientGrants, packet: PublishPacket) => void
  /** The app backend's say on connect, subscribe and publish (authorizationHook); null when off. */
  authorizationHook: HookDecider | null
}

export interface ClientPolicies {
  hooks: BrokerHooks
  /** For every message a client publishes, before Aedes takes it: false skips it (dropped). */
  acceptPublish: (packet: PublishPacket) => boolean
  /** An MQTT 5 AUTH packet of `client` (whole, as the guard withheld it from Aedes). */
  reauthenticate: (client: Client, packet: Buffer) => void
}

type Refuse = (code: number, kind: AuthFailureKind, reason: string) => void

// A publish the policy dropped: MQTT 3.1.1 lets a server acknowledge a PUBLISH it will not
// deliver [MQTT-3.3.5-2]; Aedes has no hook for that, so authorizePublish marks the packet and
// the publish step skips it (acceptPublish).
const kDropped = Symbol('dropped')
type MarkedPacket = PublishPacket & { [kDropped]?: true }

function refusal (message: string, returnCode: number, reasonCode: number | undefined): AuthenticateError {
  return Object.assign(new Error(message), { returnCode, reasonCode }) as AuthenticateError
}

/** A PUBLISH of an MQTT 5 client refused with `reasonCode`: answered, the connection stays up. */
export class PublishRefused extends Error {
  constructor (message: string, readonly reasonCode: number) {
    super(message)
    this.name = 'PublishRefused'
  }
}

/** The policies as Aedes' hooks, over the clients recorded in `clients`. */
export function createPolicies (parts: HookParts, clients: ClientRegistry): ClientPolicies {
  const { audit, metrics, deliveryLatency } = parts
  const connectRates = new KeyedRateLimiter()
  // numbers connections: an anonymous one has publish rate buckets of its own
  let connectionSequence = 0
  clients.onTokenExpired((client) => {
    const state = clients.stateOf(client)
    if (state === undefined) return
    audit.info({ event: 'auth.expired', clientId: client.id, user: state.identity.user }, 'token expired: disconnecting client')
    clients.disconnect(client, 'token_expired')
  })

  const hooks: BrokerHooks = {
    preConnect: (_client, packet, done) => {
      // MQTT 3.1.1 rules that need the parsed CONNECT or the limits (the byte-level ones are
      // the guard's): a will topic that is no topic name, a keep alive over the limit.
      // Refused without CONNACK [MQTT-3.1.4-1] [MQTT-3.2.2-6].
      const violation = connectViolation(packet, parts.limits)
      if (violation !== null) {
        parts.logger.warn({ event: 'connect.refused', clientId: packet.clientId, reason: violation }, 'connection closed: CONNECT does not conform')
        return done(new Error(violation), false)
      }
      done(null, true)
    },

    authenticate: (client, username, password, done) => {
      const connection = clients.connectionOf(client)
      const refuse: Refuse = (code, kind, reason) => {
        audit.warn({ event: 'auth.failed', clientId: client.id, remote: connection.remote, kind, reason, code }, 'connection refused')
        metrics.authFailed(kind)
        done(refusal(reason, code, connectRefusalCode(kind)), null)
      }
      const idViolation = clientIdViolation(client.id, parts.limits)
      // [MQTT-3.1.3-9] an identifier the server rejects gets CONNACK 0x02
      if (idViolation !== null) return refuse(2, 'identifier_rejected', idViolation)
      // MQTT 5's JWT Authentication Method carries the token as its Authentication Data
      const token = client.authentication?.method === jwtAuthenticationMethod ? client.authentication.data : password
      const result = parts.authenticator({ clientId: client.id, username, password: token, upgradeToken: connection.upgradeToken })
      if (!result.ok) return refuse(result.code, result.kind, result.reason)
      const { identity } = result
      const compiled = compileGrants(identity, client.id, parts.acl)
      if (!compiled.ok) return refuse(compiled.culprit === 'clientId' ? 2 : 5, 'unsafe_identity', compiled.reason)
      const admitWith = (identity: Identity, grants: ClientGrants): void => {
        // A will is a publish by its owner, authorized at connect time.
        const will = willOf(client)
        if (will !== undefined && (will.topic.startsWith('$') || !grants.canPublish(will.topic))) {
          return refuse(5, 'will_denied', `will topic ${will.topic} is not authorized`)
        }
        const { limits } = grants
        // [MQTT-3.2.2-9] a v5 client is told the highest QoS its roles let it publish at (and
        // gets DISCONNECT 0x9B above it [MQTT-3.2.2-11])
        if (client.version === 5 && limits.maxQos !== undefined && limits.maxQos < 2) client.connackProperties = { maximumQoS: limits.maxQos }
        clients.admit(client, {
          connection,
          connectedSince: Date.now(),
          ready: false,
          closeReason: null,
          identity,
          grants,
          subscriptions: limits.maxSubscriptions === undefined ? null : new Set(),
          publishRate: parts.publishRates.keys(identity.user, `connection:${++connectionSequence}`, limits),
          tokenExpiresAt: null,
          retainedCheck: null
        })
        if (identity.expiresAt !== null) clients.setTokenExpiry(client, identity.expiresAt + parts.expiryGraceS * 1000)
        const refuseAdmitted: Refuse = (code, kind, reason) => {
          clients.forget(client, undefined, 'client')
          refuse(code, kind, reason)
        }
        // the connection limits first: a refused connection claims no client id
        admitConnection(parts, clients, connectRates, client, identity.user, limits, refuseAdmitted, () => {
          claimClientId(parts, client, identity, refuseAdmitted, () => done(null, true))
        })
      }
      const hook = parts.authorizationHook
      if (hook?.asks('connect') === true) {
        return whenDecided(hook.decide({ action: 'connect', user: identity.user, clientId: client.id, roles: identity.roles }), (answer) => {
          // [MQTT-3.2.2-5] refused by the backend: CONNACK 5, not authorized
          if (!answer.allow) return refuse(5, 'hook_denied', 'refused by the authorization hook')
          const narrowed = narrowedByHook(parts, client.id, identity, compiled.grants, answer)
          if (!narrowed.ok) return refuse(5, 'unsafe_identity', narrowed.reason)
          admitWith(narrowed.identity, narrowed.grants)
        })
      }
      admitWith(identity, compiled.grants)
    },

    authorizePublish: (client, packet, done) => {
      // null: Aedes publishes the will of a client that is gone (its node died, or its Will
      // Delay Interval passed); it was authorized at connect, and meets only the broker-wide
      // retained cap (its owner is gone).
      if (client === null || isDelayedWill(packet)) {
        if (!packet.retain) return done(null)
        return void parts.retainedCaps.apply(packet, { user: null, clientId: null, via: 'will' }, {}).then(() => done(null))
      }
      const state = clients.stateOf(client)
      const deny = (policy: 'disconnect' | 'drop', cause: DropReason, reason: string): void => {
        audit.warn({ event: cause === 'acl' ? 'acl.denied' : 'limit.exceeded', action: 'publish', clientId: client.id, user: state?.identity.user ?? null, topic: packet.topic, reason }, 'publish refused')
        if (cause === 'acl') metrics.aclDenied('publish')
        if (client.version === 5) {
          // [MQTT-3.3.4-1] the PUBACK/PUBREC carries the reason; a QoS 0 message is dropped
          metrics.messageDropped(cause)
          const refusal = publishRefusal(cause)
          if ('ack' in refusal) return done(new PublishRefused(reason, refusal.ack))
          clients.disconnect(client, 'limit_exceeded', refusal.disconnect)
          ;(packet as MarkedPacket)[kDropped] = true
          done(null)
        } else if (policy === 'drop') {
          metrics.messageDropped(cause)
          ;(packet as MarkedPacket)[kDropped] = true
          done(null)
        } else {
          done(new Error(reason))
        }
      }
      const violation = topicViolation(packet.topic, parts.limits)
      if (violation !== null) return done(new Error(violation))
      if (state === undefined) return done(new Error('client is not authenticated'))
      // a history request is answered on its response topic, and acknowledged, not published
      if (parts.historyRequest !== undefined && packet.topic.startsWith(historyRequestPrefix)) {
        parts.historyRequest(client, state.grants, packet)
        ;(packet as MarkedPacket)[kDropped] = true
        return done(null)
      }
      // $SYS and $presence are written only by the broker itself. A client publishing there is
      // acknowledged and its message dropped, as Mosquitto and EMQX do, whatever
      // onPublishDenied says: an app's mistaken publish must not cost it its connection
      // (docs/auth.md).
      if (packet.topic.startsWith('$')) {
        // but for a revocation of the authorization hook's answers, from an admin: to every node (revocation.ts)
        if (packet.topic === revocationTopic && parts.authorizationHook !== null && state.identity.roles.includes(adminRole)) return done(null)
        return deny('drop', 'acl', 'topics starting with $ are reserved to the broker')
      }
      if (!state.grants.canPublish(packet.topic)) return deny(parts.onPublishDenied, 'acl', 'not granted')
      const hook = parts.authorizationHook
      if (hook === null || !hook.asks('publish')) return publishWithinLimits(parts, client, state, packet, deny, done)
      whenDecided(hook.decide(hookQuestion('publish', client, state, packet.topic)), (answer) => {
        if (!answer.allow) return deny(parts.onPublishDenied, 'acl', 'denied by the authorization hook')
        publishWithinLimits(parts, client, state, packet, deny, done)
      })
    },

    authorizeSubscribe: (client, subscription, done) => {
      const state = clients.stateOf(client)
      const refuse = (event: string, reason: string): void => {
        audit.warn({ event, action: 'subscribe', clientId: client.id, user: state?.identity.user ?? null, topic: subscription.topic, reason }, 'subscription refused')
        if (event === 'acl.denied') metrics.aclDenied('subscribe')
        // A null subscription makes Aedes answer 0x80 for this filter only.
        done(null, null)
      }
      const violation = topicViolation(subscription.topic, parts.limits)
      if (violation !== null) return refuse('limit.exceeded', violation)
      if (state === undefined) return refuse('acl.denied', 'client is not authenticated')
      // a shared subscription needs the right to subscribe to its filter (Aedes checked its form),
      // and its ShareName allowed to the roles
      const shared = parseSharedFilter(subscription.topic)
      const filter = shared?.filter ?? subscription.topic
      if (!state.grants.canSubscribe(filter)) return refuse('acl.denied', 'not granted')
      if (shared !== null && !state.grants.canShare(shared.shareName)) return refuse('acl.denied', 'share name not granted')
      const hook = parts.authorizationHook
      if (hook === null || !hook.asks('subscribe')) return subscribeWithinLimits(state, subscription, refuse, done)
      whenDecided(hook.decide(hookQuestion('subscribe', client, state, filter)), (answer) => {
        if (!answer.allow) return refuse('acl.denied', 'denied by the authorization hook')
        subscribeWithinLimits(state, subscription, refuse, done)
      })
    },

    // The second line of defence: a message reaches a client only on a topic it may read,
    // whether live, retained or queued while it was offline.
    authorizeForward: (client, packet) => {
      const state = clients.stateOf(client)
      if (state === undefined || !state.grants.canRead(packet.topic)) {
        metrics.aclDenied('forward')
        return null
      }
      metrics.messageOut(packet.qos as QosLabel, packet.payload.length)
      deliveryLatency.forwarded(packet)
      return packet
    }
  }

  const acceptPublish = (packet: PublishPacket): boolean => {
    if ((packet as MarkedPacket)[kDropped] === true) return false
    deliveryLatency.accepted(packet)
    return true
  }

  // MQTT 5 re-authentication (section 4.12.1): a fresh token on a live connection replaces its
  // grants and moves its expiry, no reconnect; a refused one ends the connection with 0x87.
  const reauthenticate = (client: Client, bytes: Buffer): void => {
    const state = clients.stateOf(client)
    if (state === undefined) return
    const user = state.identity.user
    const fail = (code: number, reason: string): void => {
      audit.warn({ event: 'auth.reauth-failed', clientId: client.id, user, reason, code }, 're-authentication refused: disconnecting client')
      clients.disconnect(client, 'reauth_failed', code)
    }
    let packet
    try {
      packet = parseAuthPacket(bytes)
    } catch (err) {
      return fail(ReasonCode.malformedPacket, (err as Error).message)
    }
    const method = client.authentication?.method
    // [MQTT-4.12.1-1] the method of the CONNECT; 0x18 would continue a multi-step exchange,
    // which JWT has none of [MQTT-3.15.2-1]
    if (method === undefined || packet.method !== method) return fail(ReasonCode.protocolError, 'AUTH without the Authentication Method of the CONNECT [MQTT-4.12.1-1]')
    if (packet.reasonCode !== AuthReason.reauthenticate) return fail(ReasonCode.protocolError, `AUTH reason code 0x${packet.reasonCode.toString(16)}: only re-authentication (0x19) is taken`)
    const result = parts.authenticator({ clientId: client.id, username: undefined, password: packet.data, upgradeToken: undefined })
    if (!result.ok) return fail(ReasonCode.notAuthorized, result.reason)
    if (result.identity.user !== user) return fail(ReasonCode.notAuthorized, 'the new token is of another user')
    const compiled = compileGrants(result.identity, client.id, parts.acl)
    if (!compiled.ok) return fail(ReasonCode.notAuthorized, compiled.reason)
    state.identity = result.identity
    state.grants = compiled.grants
    clients.setTokenExpiry(client, result.identity.expiresAt === null ? null : result.identity.expiresAt + parts.expiryGraceS * 1000)
    audit.info({ event: 'auth.reauthenticated', clientId: client.id, user, expiresAt: result.identity.expiresAt }, 'client re-authenticated')
    client.conn.write(authSuccessBytes(method))
  }

  return { hooks, acceptPublish, reauthenticate }
}

/** Whether a PUBLISH's Payload Format Indicator says its payload is UTF-8 (mqtt-packet reads the byte as a boolean). */
function isUtf8Announced (packet: PublishPacket): boolean {
  const indicator: unknown = packet.properties?.payloadFormatIndicator
  return indicator === true || indicator === 1
}

/** Calls `done` once a retained packet met the retained caps, in the client's publish order. */
function afterRetainedCaps (parts: HookParts, client: Client, state: ClientState, packet: PublishPacket, done: (err: null) => void): void {
  const pending = state.retainedCheck
  if (!packet.retain && pending === null) return done(null)
  const publisher = { user: state.identity.user, clientId: client.id, via: 'mqtt' as const }
  const check = (pending ?? Promise.resolve()).then(async () => {
    if (packet.retain) await parts.retainedCaps.apply(packet, publisher, state.grants.limits)
    done(null)
  })
  state.retainedCheck = check
  void check.then(() => { if (state.retainedCheck === check) state.retainedCheck = null })
}

/** Accepts a client within its user's connection limits; refuses it (CONNACK 5) beyond them. */
function admitConnection (parts: HookParts, clients: ClientRegistry, connectRates: KeyedRateLimiter, client: Client, user: string | null, limits: RoleLimits, refuse: Refuse, accept: () => void): void {
  if (user === null) return accept()
  connectionLimitViolation(parts, clients, connectRates, client, user, limits).then((violation) => {
    if (violation === null) accept()
    else refuse(5, violation.kind, violation.reason)
  }, (err: Error) => {
    // counts unreadable (Redis away): availability first, the rate limit still holds
    parts.logger.warn({ event: 'connect.limit-unchecked', clientId: client.id, reason: err.message }, 'connection count unavailable: connection accepted')
    accept()
  })
}

/**
 * Per user: new connections per second on this node, and concurrent connections (all nodes
 * with Redis). The role limits apply, else the broker-wide defaults; 0 = unlimited.
 */
async function connectionLimitViolation (parts: HookParts, clients: ClientRegistry, connectRates: KeyedRateLimiter, client: Client, user: string, limits: RoleLimits): Promise<{ kind: AuthFailureKind, reason: string } | null> {
  const rate = limits.maxConnectRate ?? parts.limits.maxConnectRatePerUser
  if (rate > 0 && !connectRates.take(user, rate)) return { kind: 'connect_rate_limit', reason: `user over ${rate} new connections per second` }
  const max = limits.maxConnections ?? parts.limits.maxConnectionsPerUser
  if (max === 0) return null
  // a connection of this user about to be taken over (same client id) makes room for this one
  const holder = holderOfClientId(client)
  const replaced = holder !== undefined && holder !== client && clients.stateOf(holder)?.identity.user === user ? 1 : 0
  if (await parts.userConnections(user) - replaced >= max) return { kind: 'connection_limit', reason: `user already has ${max} connections` }
  return null
}

/**
 * A client id belongs to the user whose connection created its session: another user's
 * CONNECT with it is refused here, before Aedes closes the holder's connection or reads the
 * session (client-id-owner.ts). Not authorized [MQTT-3.2.2-5]; 3 when the store is away.
 */
function claimClientId (parts: HookParts, client: Client, identity: Identity, refuse: Refuse, claimed: () => void): void {
  parts.ownership.claim(client, identity).then((result) => {
    if (result.ok) return claimed()
    refuse(5, 'client_id_owned', `the client id belongs to the session of ${result.owner}`)
  }, (err: Error) => {
    parts.logger.warn({ event: 'client-id.claim-failed', clientId: client.id, reason: err.message }, 'could not read who owns a client id')
    refuse(3, 'session_store_unavailable', 'who owns the client id could not be read')
  })
}

type PublishDenial = (policy: 'disconnect' | 'drop', cause: DropReason, reason: string) => void

/** The rest of authorizePublish once the ACL (and the hook) allowed it: the role limits, the rate, the retained caps. */
function publishWithinLimits (parts: HookParts, client: Client, state: ClientState, packet: PublishPacket, deny: PublishDenial, done: (err: null) => void): void {
  const size = packet.payload.length
  const overLimit = publishLimitViolation(state.grants.limits, packet.qos, size)
  if (overLimit !== null) return deny(parts.onLimitExceeded, overLimit.cause, overLimit.reason)
  // a payload announced as UTF-8 that is not: PUBACK 0x99 Payload format invalid (MQTT 5
  // section 3.3.2.3.2); the indicator itself goes to the subscribers unaltered
  if (client.version === 5 && isUtf8Announced(packet) && typeof packet.payload !== 'string' && !isUtf8(packet.payload)) return deny(parts.onPublishDenied, 'payload_format', 'the Payload Format Indicator says UTF-8 and the payload is not')
  const overRate = parts.publishRates.take(state.publishRate, 1, size)
  if (overRate !== null) return deny(parts.onLimitExceeded, 'rate_limit', overRate)
  parts.metrics.messageIn(packet.qos as QosLabel, size)
  afterRetainedCaps(parts, client, state, packet, done)
}

/** The rest of authorizeSubscribe once the ACL (and the hook) allowed it: the role's subscription count and QoS. */
function subscribeWithinLimits (state: ClientState, subscription: Subscription, refuse: (event: string, reason: string) => void, done: (err: null, subscription: Subscription) => void): void {
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
}

/** Runs `then` with the hook's answer: at once when it came from the cache, else once it arrives. */
function whenDecided (answer: HookAnswer | Promise<HookAnswer>, then: (answer: HookAnswer) => void): void {
  if (answer instanceof Promise) void answer.then(then)
  else then(answer)
}

function hookQuestion (action: HookAction, client: Client, state: ClientState, topic: string): Parameters<HookDecider['decide']>[0] {
  return { action, user: state.identity.user, clientId: client.id, topic, roles: state.identity.roles }
}

/** A client's identity and grants narrowed by the hook's connect answer (never widened: acl/authorization-hook.ts). */
function narrowedByHook (parts: HookParts, clientId: string, identity: Identity, grants: ClientGrants, answer: HookAnswer): { ok: true, identity: Identity, grants: ClientGrants } | { ok: false, reason: string } {
  if (answer.roles === undefined && answer.acl === undefined) return { ok: true, identity, grants }
  const narrowed = narrowedIdentity(identity, answer)
  const compiled = compileGrants(narrowed, clientId, parts.acl)
  if (!compiled.ok) return { ok: false, reason: compiled.reason }
  // the token's own acl claim still narrows when the answer replaced it
  const both = identity.tokenAcl !== null && answer.acl !== undefined ? intersectGrants(compiled.grants, grants) : compiled.grants
  return { ok: true, identity: narrowed, grants: both }
}
