// The app's subscriptions, independent of any one connection: which handlers want which
// filter, which filters the broker has granted on the current connection, and who is waiting
// for that answer. The client re-subscribes every filter here after each (re)connect.
import { decodeJson } from './codec.js'
import { reportLater } from './emitter.js'
import type { RealtimeError } from './errors.js'
import { topicMatches } from '../../../src/acl/topic-grammar.js'

export type QoS = 0 | 1 | 2

/**
 * The MQTT 5 properties of a message that an app sets and reads (MQTT 5.0 section 3.3.2.3).
 * A message published or received on an MQTT 3.1.1 connection has none.
 */
export interface MessageProperties {
  /** Name-value pairs in their order; a name sent several times has its values in an array. */
  userProperties?: Record<string, string | string[]>
  /** Where the receiver of a request should publish its response (a topic name, no wildcards). */
  responseTopic?: string
  /** Ties a response to its request: sent back as is by the responder. */
  correlationData?: Uint8Array
  /** The payload's MIME type, e.g. application/json. */
  contentType?: string
  /** Seconds after which the broker no longer delivers the message; on receipt, the seconds left. */
  messageExpiryInterval?: number
  /** True: the payload is UTF-8 text. */
  payloadFormatIndicator?: boolean
}

export interface MessageMeta {
  topic: string
  /** True for a retained message sent because this client (re)subscribed. */
  retained: boolean
  qos: QoS
  payload: Uint8Array
  /** The message's MQTT 5 properties as the broker sent them; absent when it has none. */
  properties?: MessageProperties
}

export type MessageHandler<T> = (data: T, message: MessageMeta) => void

export type HandlerEntry =
  | { raw: true, handler: MessageHandler<Uint8Array> }
  | { raw: false, handler: MessageHandler<unknown> }

interface Waiter { resolve: () => void, reject: (err: RealtimeError) => void }

interface Subscription {
  qos: QoS
  handlers: Set<HandlerEntry>
  /** Granted on the current connection. */
  granted: boolean
  waiters: Waiter[]
}

export class SubscriptionRegistry {
  private readonly subscriptions = new Map<string, Subscription>()

  /** Registers a handler; resolves when the broker has granted the filter. */
  add (filter: string, entry: HandlerEntry, qos: QoS): { ready: Promise<void>, needsSubscribe: boolean } {
    let subscription = this.subscriptions.get(filter)
    const upgrade = subscription !== undefined && qos > subscription.qos
    if (subscription === undefined) {
      subscription = { qos, handlers: new Set(), granted: false, waiters: [] }
      this.subscriptions.set(filter, subscription)
    }
    subscription.handlers.add(entry)
    if (upgrade) {
      subscription.qos = qos
      subscription.granted = false
    }
    if (subscription.granted) return { ready: Promise.resolve(), needsSubscribe: false }
    const current = subscription
    const ready = new Promise<void>((resolve, reject) => current.waiters.push({ resolve, reject }))
    // One SUBSCRIBE per filter at a time: later handlers wait for the same SUBACK.
    return { ready, needsSubscribe: current.waiters.length === 1 }
  }

  /** Removes a handler; true when it was the filter's last one (time to UNSUBSCRIBE). */
  remove (filter: string, entry: HandlerEntry): boolean {
    const subscription = this.subscriptions.get(filter)
    if (subscription === undefined || !subscription.handlers.delete(entry)) return false
    if (subscription.handlers.size > 0) return false
    this.subscriptions.delete(filter)
    return true
  }

  /** Every filter with its QoS, e.g. to subscribe again on a new connection. */
  all (): Array<{ filter: string, qos: QoS }> {
    return [...this.subscriptions].map(([filter, { qos }]) => ({ filter, qos }))
  }

  /** Whether a filter subscribed to matches topic name `topic`. */
  wants (topic: string): boolean {
    for (const filter of this.subscriptions.keys()) if (topicMatches(filter, topic)) return true
    return false
  }

  /** The connection is gone: nothing is granted on the next one until its SUBACK. */
  resetGrants (): void {
    for (const subscription of this.subscriptions.values()) subscription.granted = false
  }

  granted (filter: string): void {
    const subscription = this.subscriptions.get(filter)
    if (subscription === undefined) return
    subscription.granted = true
    for (const waiter of subscription.waiters.splice(0)) waiter.resolve()
  }

  /** The broker refused the filter: it is dropped with all its handlers. False if nobody was told. */
  refused (filter: string, error: RealtimeError): boolean {
    const subscription = this.subscriptions.get(filter)
    if (subscription === undefined) return true
    this.subscriptions.delete(filter)
    const waiters = subscription.waiters.splice(0)
    for (const waiter of waiters) waiter.reject(error)
    return waiters.length > 0
  }

  /** Fails every waiter (the client was closed). */
  rejectAll (error: RealtimeError): void {
    for (const subscription of this.subscriptions.values()) {
      for (const waiter of subscription.waiters.splice(0)) waiter.reject(error)
    }
    this.subscriptions.clear()
  }

  /**
   * Calls each handler whose filter matches; JSON is parsed once per message. A payload that
   * is not JSON skips the JSON handlers and is reported once; a handler that throws does not
   * keep the message from the others.
   */
  dispatch (message: MessageMeta, onPayloadError: (err: unknown) => void): void {
    let decoded: { ok: true, value: unknown } | { ok: false } | null = null
    for (const [filter, subscription] of this.subscriptions) {
      if (!topicMatches(filter, message.topic)) continue
      for (const entry of subscription.handlers) {
        if (entry.raw) {
          deliver(() => entry.handler(message.payload, message))
          continue
        }
        decoded ??= decode(message, onPayloadError)
        if (decoded.ok) {
          const { value } = decoded
          deliver(() => entry.handler(value, message))
        }
      }
    }
  }
}

function decode (message: MessageMeta, onPayloadError: (err: unknown) => void): { ok: true, value: unknown } | { ok: false } {
  try {
    return { ok: true, value: decodeJson(message.topic, message.payload) }
  } catch (err) {
    onPayloadError(err)
    return { ok: false }
  }
}

function deliver (call: () => void): void {
  try {
    call()
  } catch (err) {
    reportLater(err)
  }
}
