// The broker events webhooks listen to that the wiring does not hand them itself: messages
// published (Aedes' `published` hook), subscriptions, drops. Listened to only when an endpoint
// wants them, so a broker whose endpoints want no message events pays nothing per message.
import type { Aedes, AedesOptions, Client } from 'aedes'
import type { ClientRegistry } from '../client-registry.js'
import type { BrokerMetrics } from '../observability/metrics.js'
import { MessageEventJson, type ClientPiece } from './events.js'
import type { Webhooks } from './webhooks.js'

/**
 * Aedes' `published` hook for message.published: on the node that accepted the message, once
 * (a message routed from another node is not published again here). Aedes acknowledges a
 * QoS 1/2 PUBLISH only after it: with Redis, once the event is in the outbox, so a broker
 * killed right after a PUBACK still has the event of that message.
 */
export function publishedHook (webhooks: Webhooks, clients: ClientRegistry): NonNullable<AedesOptions['published']> {
  // each client's piece of its messages' events, made once (again if its user changed)
  const pieces = new WeakMap<Client, ClientPiece & { user: string | null }>()
  const serverPiece = MessageEventJson.client(null, null)
  const clientPiece = (client: Client | null): ClientPiece => {
    if (client === null) return serverPiece
    const user = clients.stateOf(client)?.identity.user ?? null
    let piece = pieces.get(client)
    if (piece === undefined || piece.user !== user) pieces.set(client, piece = { ...MessageEventJson.client(client.id, user), user })
    return piece
  }
  return (packet, client, done) => {
    // QoS 0 has no PUBACK whose promise the event must keep: the message goes on at once and its
    // event is appended within webhooks.batchDelayMs / 5 (a SIGKILL can lose those QoS 0 events)
    const stored = webhooks.emitMessage(packet, client, clientPiece)
    if (stored === null) return done(null)
    // the outbox away for good would hold PUBACKs: its own bound (maxPending) and ioredis' queue apply
    stored.then(() => done(null), () => done(null))
  }
}

export function wireWebhookEvents (webhooks: Webhooks, aedes: Aedes, clients: ClientRegistry, metrics: BrokerMetrics): void {
  const userOf = (client: Parameters<ClientRegistry['stateOf']>[0] | null): string | null =>
    client === null ? null : clients.stateOf(client)?.identity.user ?? null
  if (webhooks.wants('client.subscribed')) {
    aedes.on('subscribe', (subscriptions, client) => {
      webhooks.emit('client.subscribed', { clientId: client.id, user: userOf(client), subscriptions: subscriptions.map(({ topic, qos }) => ({ topic, qos })) })
    })
  }
  if (webhooks.wants('client.unsubscribed')) {
    aedes.on('unsubscribe', (topics, client) => {
      webhooks.emit('client.unsubscribed', { clientId: client.id, user: userOf(client), topics })
    })
  }
  if (webhooks.wants('message.dropped')) {
    metrics.dropListener = (reason, count) => webhooks.emit('message.dropped', { reason, count })
  }
}
