// The events the broker tells webhook endpoints about, and their JSON shape: plain data, no I/O
// (the config schema imports the list of types).
import { randomUUID } from 'node:crypto'

export const webhookEventTypes = [
  'client.connected',
  'client.disconnected',
  'client.subscribed',
  'client.unsubscribed',
  'presence.online',
  'presence.offline',
  'session.expired',
  'message.published',
  'message.dropped'
] as const

export type WebhookEventType = typeof webhookEventTypes[number]

/** One event as the receiver gets it, in a batch's `events` array. */
export interface WebhookEvent {
  /** Unique per event: the same id on every retry, for the receiver's dedupe. */
  id: string
  type: WebhookEventType
  /** When it happened (ISO 8601). */
  at: string
  /** The node it happened on. */
  node: string
  data: Record<string, unknown>
}

/** An event for `type`, stamped now with a new id. */
export function webhookEvent (type: WebhookEventType, node: string, data: Record<string, unknown>): WebhookEvent {
  return { id: randomUUID(), type, at: new Date().toISOString(), node, data }
}

/** A message payload as JSON carries it: UTF-8 text as is, anything else in base64. */
export function payloadFields (payload: Buffer | string, isText: boolean): { payload: string, encoding: 'utf8' | 'base64' } {
  if (typeof payload === 'string') return { payload, encoding: 'utf8' }
  return isText ? { payload: payload.toString('utf8'), encoding: 'utf8' } : { payload: payload.toString('base64'), encoding: 'base64' }
}
