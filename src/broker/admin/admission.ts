// What the admin API decides about new connections, before and after the authentication
// policy: a drained node refuses every CONNECT (3.1.1: 3, server unavailable; MQTT 5: 0x88), and
// a banned client id, address or user is refused (3.1.1: 5, not authorized; MQTT 5: 0x8A,
// banned). Runs once per CONNECT, in memory: nothing per message.
import type { Aedes, AuthenticateError } from 'aedes'
import type { BrokerHooks } from '../hooks.js'
import type { ClientRegistry } from '../client-registry.js'
import type { Logger } from '../observability/logger.js'
import type { BrokerMetrics } from '../observability/metrics.js'
import { ReasonCode } from '../protocol/reason-codes.js'
import type { BanMatcher, Bans } from './bans.js'

export interface AdmissionParts {
  bans: Bans
  draining: () => boolean
  clients: ClientRegistry
  audit: Logger
  metrics: BrokerMetrics
}

type Authenticate = BrokerHooks['authenticate']

function refusal (message: string, returnCode: number, reasonCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode, reasonCode }) as AuthenticateError
}

/** `authenticate` with the drain and the bans around it. */
export function admitting (authenticate: Authenticate, parts: AdmissionParts): Authenticate {
  return (client, username, password, done) => {
    const address = parts.clients.connectionOf(client).remote
    const refuse = (kind: 'banned' | 'draining', reason: string, banId?: string): void => {
      parts.audit.warn({ event: 'auth.failed', clientId: client.id, remote: address, kind, reason, ...(banId === undefined ? {} : { ban: banId }) }, 'connection refused')
      parts.metrics.authFailed(kind)
      done(kind === 'draining'
        ? refusal(reason, 3, ReasonCode.serverUnavailable) // [MQTT-3.2.2-5] a CONNACK with a non-zero code, then the close
        : refusal(reason, 5, ReasonCode.banned), null)
    }
    if (parts.draining()) return refuse('draining', 'this node is drained')
    const before = parts.bans.match({ clientId: client.id, user: null, address })
    if (before !== undefined) return refuse('banned', `banned: ${before.reason}`, before.id)
    authenticate(client, username, password, (err, ok) => {
      if (err !== null || ok !== true) return done(err, ok)
      const user = parts.clients.stateOf(client)?.identity.user ?? null
      const ban = user === null ? undefined : parts.bans.match({ clientId: client.id, user, address })
      if (ban === undefined) return done(null, true)
      parts.clients.forget(client, undefined, 'client')
      refuse('banned', `banned: ${ban.reason}`, ban.id)
    })
  }
}

/** Disconnects this node's clients that a new ban matches (v5: DISCONNECT 0x98, administrative action); how many. */
export function disconnectBanned (aedes: Aedes, registry: ClientRegistry, bans: BanMatcher, audit: Logger): number {
  let count = 0
  for (const { client, state } of [...registry.clients(aedes)]) {
    const ban = bans.match({ clientId: client.id, user: state.identity.user, address: state.connection.remote })
    if (ban === undefined) continue
    audit.info({ event: 'admin.ban-disconnect', clientId: client.id, user: state.identity.user, ban: ban.id }, 'banned client disconnected')
    registry.disconnect(client, 'admin', ReasonCode.administrativeAction)
    count++
  }
  return count
}
