// The events the broker tells webhook endpoints about, and their JSON shape: plain data, no I/O
// (the config schema imports the list of types).
import { isUtf8 } from 'node:buffer'
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

// the ISO time of the current millisecond, formatted once per millisecond
let isoMs = 0
let isoText = ''
function isoNow (): string {
  const now = Date.now()
  if (now !== isoMs) {
    isoMs = now
    isoText = new Date(now).toISOString()
  }
  return isoText
}

/**
 * One event as the receiver gets it, in a batch's `events` array: `{id, type, at, node, data}`,
 * stamped now with a new id (the same on every retry, for the receiver's dedupe), around
 * `dataJson` (`nodeJson`: the node id as JSON). Written out rather than JSON.stringify'd: at thousands of
 * message events a second, the event object was most of an event's cost.
 */
export function eventJson (type: WebhookEventType, nodeJson: string, dataJson: string): string {
  return `{"id":"${randomUUID()}","type":"${type}","at":"${isoNow()}","node":${nodeJson},"data":${dataJson}}`
}

/** The `data` of a message.published event, as JSON. */
export function messageDataJson (message: { topic: string, qos: number, retain: boolean, clientId: string | null, user: string | null, payload: Buffer | string }): string {
  const text = typeof message.payload === 'string' || isUtf8(message.payload)
  const { payload, encoding } = payloadFields(message.payload, text)
  const quoted = (value: string | null): string => value === null ? 'null' : JSON.stringify(value)
  return `{"topic":${JSON.stringify(message.topic)},"qos":${message.qos},"retain":${message.retain},"clientId":${quoted(message.clientId)},"user":${quoted(message.user)},"payload":${JSON.stringify(payload)},"encoding":"${encoding}"}`
}

/** A message payload as JSON carries it: UTF-8 text as is, anything else in base64. */
export function payloadFields (payload: Buffer | string, isText: boolean): { payload: string, encoding: 'utf8' | 'base64' } {
  if (typeof payload === 'string') return { payload, encoding: 'utf8' }
  return isText ? { payload: payload.toString('utf8'), encoding: 'utf8' } : { payload: payload.toString('base64'), encoding: 'base64' }
}
