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

// Event ids: a random prefix drawn once per process (unique across nodes and restarts, as a
// UUID is) and a counter. A random UUID per event cost more than the rest of its id's use.
const idPrefix = `${randomUUID()}-`
let idCounter = 0

/** A new event id, unique cluster-wide and across restarts: `<uuid of this process>-<counter, base 36>`. */
export function newEventId (): string {
  return idPrefix + (idCounter++).toString(36)
}

/**
 * One event as the receiver gets it, in a batch's `events` array: `{id, type, at, node, data}`,
 * stamped now with a new id (the same on every retry, for the receiver's dedupe), around
 * `dataJson` (`nodeJson`: the node id as JSON). Written out rather than JSON.stringify'd: at thousands of
 * message events a second, the event object was most of an event's cost.
 */
export function eventJson (type: WebhookEventType, nodeJson: string, dataJson: string): string {
  return `{"id":"${newEventId()}","type":"${type}","at":"${isoNow()}","node":${nodeJson},"data":${dataJson}}`
}

const quoted = (value: string | null): string => value === null ? 'null' : JSON.stringify(value)

/** The `data` of a message.published event, as JSON. */
export function messageDataJson (message: { topic: string, qos: number, retain: boolean, clientId: string | null, user: string | null, payload: Buffer | string }): string {
  const { payload } = message
  // UTF-8 text as is, anything else in base64 (no fields object per message)
  const text = typeof payload === 'string' || isUtf8(payload)
  const payloadJson = typeof payload === 'string' ? JSON.stringify(payload) : text ? JSON.stringify(payload.toString('utf8')) : `"${payload.toString('base64')}"`
  return `{"topic":${JSON.stringify(message.topic)},"qos":${message.qos},"retain":${message.retain},"clientId":${quoted(message.clientId)},"user":${quoted(message.user)},"payload":${payloadJson},"encoding":"${text ? 'utf8' : 'base64'}"}`
}
