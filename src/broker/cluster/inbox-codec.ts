// How the routed emitter packs messages into a node's inbox (one stream entry holds all the
// messages of one event-loop turn for that node). Binary, because decoding is on the hot path
// of every cross-node message: a JSON header per message cost a JSON.parse and an object spread
// each. The fields Aedes sets are fixed-width or length-prefixed, clientId included (Aedes puts
// it on every message a client publishes); whatever else a message carries (properties, ...)
// follows as JSON, present only when there is any. The MQTT 5 properties of a message are
// binary too (Correlation Data is bytes, which JSON would not give back as a Buffer), present
// only on a message that has some: a message without properties costs what it did before them.
//
// One message:
//   u8 flags (bits 0-1 qos, 2 retain, 3 dup, 4 extra JSON follows, 5 clientId follows,
//             6 properties follow, 7 share target follows)
//   f64 brokerCounter · u8 + bytes brokerId · u8 + bytes cmd · u16 + bytes topic
//   [u16 + bytes clientId] · [u16 + bytes share target] · [properties] · [u32 + bytes extra JSON] · u32 + bytes payload
// Properties:
//   u8 which follow (bits 0 payloadFormatIndicator, 1 expiry deadline, 2 contentType,
//                    3 responseTopic, 4 correlationData, 5 userProperties)
//   [u8 payloadFormatIndicator] · [f64 deadline, ms since the epoch] · [u16 + bytes contentType]
//   [u16 + bytes responseTopic] · [u16 + bytes correlationData]
//   [u32 keys, each: u16 + bytes key · u8 1 if its values are an array · [u32 values] · values as u16 + bytes]
// The Message Expiry Interval travels as its absolute deadline, so that the time a message
// waits (in the outbox, the inbox, on the way) is deducted when it is read [MQTT-3.3.2-6]; a
// message read after its deadline is not delivered [MQTT-3.3.2-5]. The nodes' clocks are
// assumed in sync (NTP), as the cluster's other timers assume.
// The share target names the shared subscription group (and member) the publisher's node chose
// for the message (src/broker/shared/): present only on such a copy.
import type mqemitter from 'mqemitter'
import { expiryDeadline, remainingExpirySeconds, type MessageExpiryFields, type MessageProperties, type UserProperties } from '../protocol/message-properties.js'

type Message = mqemitter.Message

/** The stream entry field that holds a batch in this format. */
export const batchField = 'm'

const known = new Set(['cmd', 'brokerId', 'brokerCounter', 'topic', 'payload', 'qos', 'retain', 'dup', 'clientId', 'properties', 'messageExpiry', 'shareTarget'])
const flagRetain = 4
const flagDup = 8
const flagExtra = 16
const flagClientId = 32
const flagProperties = 64
const flagShareTarget = 128

// which properties follow, in the properties' first byte
const hasPayloadFormat = 1
const hasDeadline = 2
const hasContentType = 4
const hasResponseTopic = 8
const hasCorrelationData = 16
const hasUserProperties = 32

// brokerId and cmd repeat on every message (one broker id per node): their bytes are kept
const encodedStrings = new Map<string, Buffer>()
const maxEncodedStrings = 256

function stringBytes (value: string): Buffer {
  let bytes = encodedStrings.get(value)
  if (bytes === undefined) {
    bytes = Buffer.from(value)
    if (encodedStrings.size >= maxEncodedStrings) encodedStrings.clear()
    encodedStrings.set(value, bytes)
  }
  return bytes
}

function extraFields (message: Message): Record<string, unknown> | null {
  let extra: Record<string, unknown> | null = null
  for (const key in message) {
    const value = message[key]
    if (known.has(key) || value === undefined) continue
    extra ??= {}
    extra[key] = value
  }
  return extra
}

// small enough to come from Buffer's shared pool; a burst grows it by doubling
const minBatchBytes = 2 * 1024

/**
 * The messages of one stream entry, encoded one after the other into one buffer that grows as
 * needed: no buffer per message and no concatenation on the hot path of every cross-node
 * message. One batch per target node and event-loop turn.
 */
export class InboxBatch {
  private bytes = Buffer.allocUnsafe(minBatchBytes)
  private length = 0
  private lastStart = 0

  /** Encodes one message at the end of the batch. */
  add (message: Message): void {
    const brokerId = stringBytes(String(message.brokerId ?? ''))
    const cmd = stringBytes(String(message.cmd ?? 'publish'))
    const topic: string = message.topic
    const payload = Buffer.isBuffer(message.payload) ? message.payload : Buffer.from(String(message.payload ?? ''))
    const clientId: unknown = message.clientId
    const hasClientId = typeof clientId === 'string'
    const shareTarget: unknown = message.shareTarget
    const hasShareTarget = typeof shareTarget === 'string'
    const extra = extraFields(message)
    const extraJson = extra === null ? null : Buffer.from(JSON.stringify(extra))
    const properties = message.properties as MessageProperties | undefined
    const deadline = properties === undefined && message.messageExpiry === undefined ? undefined : expiryDeadline(message as MessageExpiryFields, Date.now())
    const which = properties === undefined ? (deadline === undefined ? 0 : hasDeadline) : carriedProperties(properties, deadline)
    const qos = typeof message.qos === 'number' ? message.qos & 3 : 0
    const flags = qos | (message.retain === true ? flagRetain : 0) | (message.dup === true ? flagDup : 0) |
      (extraJson === null ? 0 : flagExtra) | (hasClientId ? flagClientId : 0) | (which === 0 ? 0 : flagProperties) |
      (hasShareTarget ? flagShareTarget : 0)
    // a UTF-8 string takes at most 3 bytes per UTF-16 unit
    this.reserve(1 + 8 + 1 + brokerId.length + 1 + cmd.length + 2 + 3 * topic.length + (hasClientId ? 2 + 3 * clientId.length : 0) + (hasShareTarget ? 2 + 3 * shareTarget.length : 0) +
      (which === 0 ? 0 : propertiesBound(which, properties)) + (extraJson === null ? 0 : 4 + extraJson.length) + 4 + payload.length)
    const out = this.bytes
    let at = this.length
    this.lastStart = at
    out[at++] = flags
    at = out.writeDoubleBE(Number(message.brokerCounter ?? 0), at)
    out[at++] = brokerId.length
    at += brokerId.copy(out, at)
    out[at++] = cmd.length
    at += cmd.copy(out, at)
    at = writeString(out, at, topic)
    if (hasClientId) at = writeString(out, at, clientId)
    if (hasShareTarget) at = writeString(out, at, shareTarget)
    if (which !== 0) at = writeProperties(out, at, which, properties, deadline)
    if (extraJson !== null) {
      at = out.writeUInt32BE(extraJson.length, at)
      at += extraJson.copy(out, at)
    }
    at = out.writeUInt32BE(payload.length, at)
    at += payload.copy(out, at)
    this.length = at
  }

  /** Appends a copy of the message another batch encoded last (one message for several nodes). */
  addLastOf (other: InboxBatch): void {
    const size = other.length - other.lastStart
    this.reserve(size)
    this.lastStart = this.length
    this.length += other.bytes.copy(this.bytes, this.length, other.lastStart, other.length)
  }

  /** The encoded messages. */
  encoded (): Buffer {
    return this.bytes.subarray(0, this.length)
  }

  private reserve (bytes: number): void {
    if (this.length + bytes <= this.bytes.length) return
    const grown = Buffer.allocUnsafe(Math.max(2 * this.bytes.length, this.length + bytes))
    this.bytes.copy(grown, 0, 0, this.length)
    this.bytes = grown
  }
}

/** Writes `value` as u16 length + UTF-8 bytes at `at`; returns the offset after it. */
function writeString (out: Buffer, at: number, value: string): number {
  const length = out.write(value, at + 2, 'utf8')
  out.writeUInt16BE(length, at)
  return at + 2 + length
}

/** Which of `properties` travel, as the bits of the properties' first byte. */
function carriedProperties (properties: MessageProperties, deadline: number | undefined): number {
  return (properties.payloadFormatIndicator === undefined ? 0 : hasPayloadFormat) |
    (deadline === undefined ? 0 : hasDeadline) |
    (properties.contentType === undefined ? 0 : hasContentType) |
    (properties.responseTopic === undefined ? 0 : hasResponseTopic) |
    (properties.correlationData === undefined ? 0 : hasCorrelationData) |
    (properties.userProperties === undefined ? 0 : hasUserProperties)
}

/** At most how many bytes writeProperties writes. */
function propertiesBound (which: number, properties: MessageProperties | undefined): number {
  let bytes = 1 + 1 + 8
  if (properties === undefined) return bytes
  if ((which & hasContentType) !== 0) bytes += 2 + 3 * (properties.contentType as string).length
  if ((which & hasResponseTopic) !== 0) bytes += 2 + 3 * (properties.responseTopic as string).length
  if ((which & hasCorrelationData) !== 0) bytes += 2 + (properties.correlationData as Buffer).length
  if ((which & hasUserProperties) !== 0) {
    bytes += 4
    const userProperties = properties.userProperties as UserProperties
    for (const key in userProperties) {
      const values = userProperties[key] as string | string[]
      bytes += 2 + 3 * key.length + 1 + 4
      if (Array.isArray(values)) for (const value of values) bytes += 2 + 3 * String(value).length
      else bytes += 2 + 3 * String(values).length
    }
  }
  return bytes
}

function writeProperties (out: Buffer, at: number, which: number, properties: MessageProperties | undefined, deadline: number | undefined): number {
  out[at++] = which
  if ((which & hasPayloadFormat) !== 0) out[at++] = properties?.payloadFormatIndicator === true ? 1 : 0
  if ((which & hasDeadline) !== 0) at = out.writeDoubleBE(deadline as number, at)
  if (properties === undefined) return at
  if ((which & hasContentType) !== 0) at = writeString(out, at, properties.contentType as string)
  if ((which & hasResponseTopic) !== 0) at = writeString(out, at, properties.responseTopic as string)
  if ((which & hasCorrelationData) !== 0) {
    const data = properties.correlationData as Buffer
    at = out.writeUInt16BE(data.length, at)
    at += data.copy(out, at)
  }
  if ((which & hasUserProperties) !== 0) {
    const userProperties = properties.userProperties as UserProperties
    const keysAt = at
    let keys = 0
    at += 4
    for (const key in userProperties) {
      const values = userProperties[key] as string | string[]
      keys++
      at = writeString(out, at, key)
      if (Array.isArray(values)) {
        out[at++] = 1
        at = out.writeUInt32BE(values.length, at)
        for (const value of values) at = writeString(out, at, String(value))
      } else {
        out[at++] = 0
        at = writeString(out, at, String(values))
      }
    }
    out.writeUInt32BE(keys, keysAt)
  }
  return at
}

/**
 * Reads the messages of a batch one at a time, so that a reader decodes no more of them than it
 * is about to deliver; payloads are views into the batch.
 */
export class BatchReader {
  private at = 0

  constructor (private readonly batch: Buffer) {}

  /** The next message, or null after the last; a message past its expiry deadline is skipped [MQTT-3.3.2-5]. */
  next (): Message | null {
    const { batch } = this
    for (;;) {
      let at = this.at
      if (at >= batch.length) return null
      const flags = batch.readUInt8(at)
      const brokerCounter = batch.readDoubleBE(at + 1)
      at += 9
      const brokerIdEnd = at + 1 + batch.readUInt8(at)
      const brokerId = batch.toString('utf8', at + 1, brokerIdEnd)
      const cmdEnd = brokerIdEnd + 1 + batch.readUInt8(brokerIdEnd)
      const cmd = batch.toString('utf8', brokerIdEnd + 1, cmdEnd)
      const topicEnd = cmdEnd + 2 + batch.readUInt16BE(cmdEnd)
      const topic = batch.toString('utf8', cmdEnd + 2, topicEnd)
      at = topicEnd
      let clientId: string | undefined
      if ((flags & flagClientId) !== 0) {
        const clientIdEnd = at + 2 + batch.readUInt16BE(at)
        clientId = batch.toString('utf8', at + 2, clientIdEnd)
        at = clientIdEnd
      }
      let shareTarget: string | undefined
      if ((flags & flagShareTarget) !== 0) {
        const shareTargetEnd = stringEnd(batch, at)
        shareTarget = batch.toString('utf8', at + 2, shareTargetEnd)
        at = shareTargetEnd
      }
      let properties: DecodedProperties | null = null
      if ((flags & flagProperties) !== 0) {
        properties = readProperties(batch, at)
        at = properties.end
      }
      let extra: Record<string, unknown> | null = null
      if ((flags & flagExtra) !== 0) {
        const extraEnd = at + 4 + batch.readUInt32BE(at)
        extra = JSON.parse(batch.toString('utf8', at + 4, extraEnd)) as Record<string, unknown>
        at = extraEnd
      }
      const payloadEnd = at + 4 + batch.readUInt32BE(at)
      this.at = payloadEnd
      const message: Message = { cmd, brokerId, brokerCounter, topic, payload: batch.subarray(at + 4, payloadEnd), qos: flags & 3, retain: (flags & flagRetain) !== 0, dup: (flags & flagDup) !== 0 }
      if (clientId !== undefined) message.clientId = clientId
      if (shareTarget !== undefined) message.shareTarget = shareTarget
      if (properties !== null) {
        const { deadline } = properties
        if (deadline !== undefined) {
          const now = Date.now()
          if (deadline <= now) continue
          properties.properties.messageExpiryInterval = remainingExpirySeconds(deadline, now)
          message.messageExpiry = deadline
        }
        message.properties = properties.properties
      }
      return extra === null ? message : Object.assign(extra, message)
    }
  }
}

/**
 * Sets a user property as an own property whatever its key, `__proto__` included (which an
 * assignment would take for the prototype). A plain object rather than mqtt-packet's
 * Object.create(null): that one decodes several times slower.
 */
function setUserProperty (userProperties: UserProperties, key: string, value: string | string[]): void {
  if (key === '__proto__') Object.defineProperty(userProperties, key, { value, enumerable: true, writable: true, configurable: true })
  else userProperties[key] = value
}

/** The offset after the u16-length-prefixed bytes at `at`. */
function stringEnd (batch: Buffer, at: number): number {
  return at + 2 + batch.readUInt16BE(at)
}

interface DecodedProperties {
  properties: MessageProperties
  deadline: number | undefined
  /** the offset after them */
  end: number
}

function readProperties (batch: Buffer, at: number): DecodedProperties {
  const which = batch.readUInt8(at++)
  const properties: MessageProperties = {}
  let deadline: number | undefined
  if ((which & hasPayloadFormat) !== 0) properties.payloadFormatIndicator = batch.readUInt8(at++) === 1
  if ((which & hasDeadline) !== 0) {
    deadline = batch.readDoubleBE(at)
    at += 8
  }
  let end: number
  if ((which & hasContentType) !== 0) {
    end = stringEnd(batch, at)
    properties.contentType = batch.toString('utf8', at + 2, end)
    at = end
  }
  if ((which & hasResponseTopic) !== 0) {
    end = stringEnd(batch, at)
    properties.responseTopic = batch.toString('utf8', at + 2, end)
    at = end
  }
  if ((which & hasCorrelationData) !== 0) {
    end = stringEnd(batch, at)
    // a view into the batch, as the payload is
    properties.correlationData = batch.subarray(at + 2, end)
    at = end
  }
  if ((which & hasUserProperties) !== 0) {
    const userProperties: UserProperties = {}
    const keys = batch.readUInt32BE(at)
    at += 4
    for (let i = 0; i < keys; i++) {
      end = stringEnd(batch, at)
      const key = batch.toString('utf8', at + 2, end)
      at = end
      if (batch.readUInt8(at++) === 1) {
        const count = batch.readUInt32BE(at)
        at += 4
        const values: string[] = []
        for (let j = 0; j < count; j++) {
          end = stringEnd(batch, at)
          values.push(batch.toString('utf8', at + 2, end))
          at = end
        }
        setUserProperty(userProperties, key, values)
      } else {
        end = stringEnd(batch, at)
        setUserProperty(userProperties, key, batch.toString('utf8', at + 2, end))
        at = end
      }
    }
    properties.userProperties = userProperties
  }
  return { properties, deadline, end: at }
}
