// Revoking a user's cached hook answers on every node: a revocation is a message on
// `$authz/revoke` (the admin API publishes it; an admin client may too), which each node
// subscribes to through Aedes, so it travels the cluster like any message. Each node drops
// the user's answers and, if asked, disconnects or unsubscribes the user's clients it holds.
import type { Aedes, Client } from 'aedes'
import { parseRevocation, revocationTopic, type Revocation } from '../../acl/authorization-hook.js'
import { subscriptionsOf, unsubscribeClient } from '../aedes-adapter.js'
import type { ClientRegistry } from '../client-registry.js'
import type { Logger } from '../observability/logger.js'

/** Applies revocations published on any node to this one; resolves once subscribed. */
export async function listenForRevocations (aedes: Aedes, revokeAnswers: (user: string) => number, clients: ClientRegistry, audit: Logger): Promise<void> {
  await new Promise<void>((resolve) => {
    aedes.subscribe(revocationTopic, (packet, done) => {
      let revocation: ReturnType<typeof parseRevocation>
      try {
        revocation = parseRevocation(JSON.parse(packet.payload.toString()))
      } catch (err) {
        revocation = { error: (err as Error).message }
      }
      if ('error' in revocation) {
        audit.warn({ event: 'authz.revoke-invalid', reason: revocation.error }, 'a revocation message was ignored')
        return done()
      }
      applyRevocation(aedes, revocation, revokeAnswers, clients, audit)
      done()
    }, resolve)
  })
}

function applyRevocation (aedes: Aedes, revocation: Revocation, revokeAnswers: (user: string) => number, clients: ClientRegistry, audit: Logger): void {
  const { user } = revocation
  const answers = revokeAnswers(user)
  const held: Client[] = []
  for (const { client, state } of clients.clients(aedes)) if (state.identity.user === user) held.push(client)
  for (const client of held) {
    if (revocation.disconnect) {
      clients.disconnect(client, 'admin')
    } else if (revocation.unsubscribe !== false) {
      const wanted = revocation.unsubscribe === true ? null : new Set(revocation.unsubscribe)
      const filters = subscriptionsOf(client).map(({ topic }) => topic).filter((topic) => wanted === null || wanted.has(topic))
      if (filters.length > 0) unsubscribeClient(client, filters)
    }
  }
  audit.info({ event: 'authz.revoked', user, answers, clients: held.length, disconnect: revocation.disconnect, unsubscribe: revocation.unsubscribe }, 'authorization answers revoked')
}

/** Sends a revocation to every node (this one included). */
export async function publishRevocation (aedes: Aedes, revocation: Revocation): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    aedes.publish({ cmd: 'publish', topic: revocationTopic, payload: Buffer.from(JSON.stringify(revocation)), qos: 1, retain: false, dup: false }, (err) => {
      if (err === undefined || err === null) resolve()
      else reject(err)
    })
  })
}
