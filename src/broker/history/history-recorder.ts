// The step every accepted publish on a history topic passes before Aedes delivers it: stored,
// numbered, and its position put on the message as MQTT 5 user properties, which travel with
// it to every node, to v5 subscribers and to SSE readers (docs/history.md). A publish whose
// idempotency key was seen within the window is acknowledged and not delivered again.
import type { PublishPacket } from 'aedes'
import type { Logger } from '../observability/logger.js'
import type { MessageProperties, UserProperties } from '../protocol/message-properties.js'
import type { HistoryMetrics } from './history-metrics.js'
import { HeldPublish } from '../aedes-adapter.js'
import type { Append, HistoryMessage, HistoryPosition, HistoryStore } from './history-store.js'
import type { HistoryTopics } from './history-topics.js'

/** The user properties that carry a delivered message's position (docs/history.md). */
export const offsetProperty = 'offset'
export const epochProperty = 'epoch'
/** The user property a v5 publisher (and HTTP publish, from its header) names an idempotency key with. */
export const idempotencyKeyProperty = 'idempotency-key'

/** The position a delivered message carries, if it is of a history topic. */
export function positionOf (properties: MessageProperties | undefined): HistoryPosition | undefined {
  const user = properties?.userProperties
  if (user === undefined) return undefined
  const offset = user[offsetProperty]
  const epoch = user[epochProperty]
  if (typeof offset !== 'string' || typeof epoch !== 'string') return undefined
  return { epoch, offset: Number(offset) }
}

/** When a stored message expires (ms since the epoch): its Message Expiry Interval counts from when it was published. */
export function storedExpiry (message: HistoryMessage): { messageExpiry?: number } {
  const interval = message.properties?.messageExpiryInterval
  return interval === undefined || interval === 0 ? {} : { messageExpiry: message.time + interval * 1000 }
}

/** A stored message of `epoch` as a delivered one looks: its position among its user properties. */
export function historyPacket (message: HistoryMessage, epoch: string): Pick<PublishPacket, 'topic' | 'payload' | 'qos' | 'properties'> & { messageExpiry?: number } {
  return {
    topic: message.topic,
    payload: message.payload,
    qos: message.qos as 0 | 1 | 2,
    properties: { ...message.properties, userProperties: { ...message.properties?.userProperties, [offsetProperty]: String(message.offset), [epochProperty]: epoch } },
    ...storedExpiry(message)
  }
}

/** The user properties a publisher set, without any position of its own (only the broker sets those). */
function publisherProperties (user: UserProperties | undefined): UserProperties {
  const kept: UserProperties = {}
  if (user === undefined) return kept
  for (const [key, value] of Object.entries(user)) {
    if (key !== offsetProperty && key !== epochProperty) Object.defineProperty(kept, key, { value, enumerable: true, writable: true, configurable: true })
  }
  return kept
}

export interface HistoryRecorderParts {
  topics: HistoryTopics
  store: HistoryStore
  idempotencyWindowMs: number
  metrics: HistoryMetrics
  logger: Logger
}

// a RecordedMessage's payload until it takes its message in
const emptyPayload = Buffer.alloc(0)

/**
 * A message of a history topic from the store's call to its answer: the message Aedes waits
 * for (HeldPublish, which the interceptor creates as this class), the append and what is done
 * with its position, in one object and no closures: many wait for the store at once, and what
 * they hold survives the young generation's collections (docs/history.md, Cost).
 */
export class RecordedMessage extends HeldPublish implements Append {
  payload: Buffer = emptyPayload
  time = 0
  /** As stored: the publisher's, without any position and without an empty user property list. */
  properties: MessageProperties | undefined = undefined
  idempotencyKey: string | undefined = undefined
  /** The publisher's user properties without any position, when the message has properties. */
  private user: UserProperties | undefined = undefined
  private parts: HistoryRecorderParts | undefined = undefined

  get topic (): string {
    return this.packet.topic
  }

  get qos (): number {
    return this.packet.qos
  }

  /** Takes the message in for `parts`, at `time`: what it stores, its idempotency key. */
  take (parts: HistoryRecorderParts, time: number): void {
    this.parts = parts
    this.time = time
    const packet = this.packet
    this.payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    // most messages carry no properties (every MQTT 3.1.1 one): nothing to sort out then
    const properties = packet.properties as MessageProperties | undefined
    if (properties === undefined) return
    const user = publisherProperties(properties.userProperties)
    this.user = user
    const key = user[idempotencyKeyProperty]
    if (typeof key === 'string') this.idempotencyKey = key
    const { userProperties: _position, ...rest } = properties
    const stored = Object.keys(user).length === 0 ? rest : { ...rest, userProperties: user }
    if (Object.keys(stored).length > 0) this.properties = stored
  }

  appended (err: Error | null, epoch: string, offset: number, duplicate: boolean): void {
    const parts = this.parts as HistoryRecorderParts
    if (err !== null) {
      // availability first: delivered live without a position, and not in history
      parts.metrics.appendFailed()
      parts.logger.warn({ event: 'history.append-failed', topic: this.topic, reason: err.message }, 'a message of a history topic was delivered without being stored')
      return this.publish()
    }
    if (duplicate) {
      parts.metrics.duplicate()
      return this.acknowledge()
    }
    parts.metrics.appended()
    const packet = this.packet
    // most messages carry no properties: two small objects then, nothing to copy
    packet.properties = this.user === undefined
      ? { userProperties: { [offsetProperty]: String(offset), [epochProperty]: epoch } }
      : { ...packet.properties, userProperties: { ...this.user, [offsetProperty]: String(offset), [epochProperty]: epoch } }
    this.publish()
  }
}

export class HistoryRecorder {
  constructor (private readonly parts: HistoryRecorderParts) {}

  /** Whether `packet` is of a history topic (the only ones `record` takes). */
  wants (packet: PublishPacket): boolean {
    return this.parts.topics.of(packet.topic) !== null
  }

  /**
   * Stores the held message and puts its position on it, then publishes it; acknowledges it
   * without publishing when it repeats an idempotency key. Appends are answered in the order of
   * the calls (per topic; of all topics in memory and on one Redis), so messages go on to Aedes
   * in the order of their offsets.
   */
  record (held: RecordedMessage): void {
    const config = this.parts.topics.of(held.packet.topic)
    if (config === null) return held.publish()
    held.take(this.parts, Date.now())
    this.parts.store.append(held, config, this.parts.idempotencyWindowMs)
  }
}
