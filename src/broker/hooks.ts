// Turns the policies (authentication, limits) into Aedes' hooks, and answers each refusal
// the way MQTT 3.1.1 says: a CONNACK code, a SUBACK 0x80, or a closed connection.
import type { AedesOptions, AuthenticateError, Client } from 'aedes'
import type { Authenticator } from '../acl/authenticate.js'
import type { Identity } from '../acl/identity.js'
import { clientIdViolation, topicViolation, type Limits } from './limits.js'
import type { Logger } from './logger.js'

export type BrokerHooks = Required<Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe'>>

export interface HookParts {
  authenticator: Authenticator
  limits: Limits
  logger: Logger
}

const identities = new WeakMap<Client, Identity>()

/** The identity a connected client authenticated as. */
export function identityOf (client: Client): Identity | undefined {
  return identities.get(client)
}

function refusal (message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError
}

export function createHooks ({ authenticator, limits, logger }: HookParts): BrokerHooks {
  return {
    authenticate (client, username, password, done) {
      const idViolation = clientIdViolation(client.id, limits)
      if (idViolation !== null) {
        logger.warn({ event: 'connect.refused', reason: idViolation }, 'connection refused')
        // [MQTT-3.1.3-9] an identifier the server rejects gets CONNACK 0x02
        done(refusal(idViolation, 2), null)
        return
      }
      const result = authenticator({ clientId: client.id, username, password, upgradeToken: undefined })
      if (!result.ok) {
        logger.warn({ event: 'auth.failed', clientId: client.id, reason: result.reason, code: result.code }, 'authentication failed')
        done(refusal(result.reason, result.code), null)
        return
      }
      identities.set(client, result.identity)
      done(null, true)
    },

    authorizePublish (client, packet, done) {
      const violation = topicViolation(packet.topic, limits)
      if (violation !== null) {
        done(new Error(violation))
        return
      }
      done(null)
    },

    authorizeSubscribe (_client, subscription, done) {
      // A null subscription makes Aedes answer 0x80 for this filter only.
      done(null, topicViolation(subscription.topic, limits) === null ? subscription : null)
    }
  }
}
