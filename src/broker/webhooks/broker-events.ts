// The broker events webhooks listen to that the wiring does not hand them itself: messages
// published (Aedes' `published` hook), subscriptions, drops. Listened to only when an endpoint
// wants them, so a broker whose endpoints want no message events pays nothing per message.
import type { Aedes, AedesOptions } from 'aedes'
import type { ClientRegistry } from '../client-registry.js'
import type { BrokerMetrics } from '../observability/metrics.js'
import { messageDataJson } from './events.js'
import type { Webhooks } from './webhooks.js'

/**
 * Aedes' `published` hook for message.published: on the node that accepted the message, once
 * (a message routed from another node is not published again here). Aedes acknowledges a
 * QoS 1/2 PUBLISH only after it: with Redis, once the event is in the outbox, so a broker
 * killed right after a PUBACK still has the event of that message.
 */
export function publishedHook (webhooks: Webhooks, clients: ClientRegistry): NonNullable<AedesOptions['published']> {
  return (packet, client, done) => {
    const stored = webhooks.emitMessage('message.published', packet.topic, () => messageDataJson({ topic: packet.topic, qos: packet.qos, retain: packet.retain, clientId: client?.id ?? null, user: client === null ? null : clients.stateOf(client)?.identity.user ?? null, payload: packet.payload }))
    // QoS 0 has no PUBACK whose promise the event must keep: the message goes on at once and
    // its event is appended in the same turn's write (a SIGKILL can lose that turn's QoS 0 events)
    if (stored === null || packet.qos === 0) return done(null)
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
