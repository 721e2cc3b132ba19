// How the routed emitter packs messages into a node's inbox (one stream entry holds all the
// messages of one event-loop turn for that node). Binary, because decoding is on the hot path
// of every cross-node message: a JSON header per message cost a JSON.parse and an object spread
// each. The fields Aedes sets are fixed-width or length-prefixed, clientId included (Aedes puts
// it on every message a client publishes); whatever else a message carries (properties, ...)
// follows as JSON, present only when there is any.
//
// One message:
//   u8 flags (bits 0-1 qos, 2 retain, 3 dup, 4 extra JSON follows, 5 clientId follows)
//   f64 brokerCounter · u8 + bytes brokerId · u8 + bytes cmd · u16 + bytes topic
//   [u16 + bytes clientId] · [u32 + bytes extra JSON] · u32 + bytes payload
import type mqemitter from 'mqemitter'

type Message = mqemitter.Message

/** The stream entry field that holds a batch in this format. */
export const batchField = 'm'

const known = new Set(['cmd', 'brokerId', 'brokerCounter', 'topic', 'payload', 'qos', 'retain', 'dup', 'clientId'])
const flagRetain = 4
const flagDup = 8
const flagExtra = 16
const flagClientId = 32

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
    const extra = extraFields(message)
    const extraJson = extra === null ? null : Buffer.from(JSON.stringify(extra))
    const qos = typeof message.qos === 'number' ? message.qos & 3 : 0
    const flags = qos | (message.retain === true ? flagRetain : 0) | (message.dup === true ? flagDup : 0) |
      (extraJson === null ? 0 : flagExtra) | (hasClientId ? flagClientId : 0)
    // a UTF-8 string takes at most 3 bytes per UTF-16 unit
    this.reserve(1 + 8 + 1 + brokerId.length + 1 + cmd.length + 2 + 3 * topic.length + (hasClientId ? 2 + 3 * clientId.length : 0) +
      (extraJson === null ? 0 : 4 + extraJson.length) + 4 + payload.length)
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

/**
 * The one binary property a PUBLISH carries, Correlation Data, went through JSON as
 * {type: 'Buffer', data}: a Buffer again, or the node delivering it could not encode the
 * PUBLISH (the subscriber lost its connection) and the data must reach it unaltered [MQTT-3.3.2-16].
 */
function reviveBinaryProperties (extra: Record<string, unknown>): void {
  const properties = extra.properties as { correlationData?: unknown } | undefined
  const data = properties?.correlationData as { type?: unknown, data?: unknown } | undefined
  if (properties !== undefined && data !== undefined && data !== null && data.type === 'Buffer' && Array.isArray(data.data)) {
    properties.correlationData = Buffer.from(data.data as number[])
  }
}

/** Writes `value` as u16 length + UTF-8 bytes at `at`; returns the offset after it. */
function writeString (out: Buffer, at: number, value: string): number {
  const length = out.write(value, at + 2, 'utf8')
  out.writeUInt16BE(length, at)
  return at + 2 + length
}

/**
 * Reads the messages of a batch one at a time, so that a reader decodes no more of them than it
 * is about to deliver; payloads are views into the batch.
 */
export class BatchReader {
  private at = 0

  constructor (private readonly batch: Buffer) {}

  /** The next message, or null after the last. */
  next (): Message | null {
    const { batch } = this
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
    let extra: Record<string, unknown> | null = null
    if ((flags & flagExtra) !== 0) {
      const extraEnd = at + 4 + batch.readUInt32BE(at)
      extra = JSON.parse(batch.toString('utf8', at + 4, extraEnd)) as Record<string, unknown>
      reviveBinaryProperties(extra)
      at = extraEnd
    }
    const payloadEnd = at + 4 + batch.readUInt32BE(at)
    const message: Message = { cmd, brokerId, brokerCounter, topic, payload: batch.subarray(at + 4, payloadEnd), qos: flags & 3, retain: (flags & flagRetain) !== 0, dup: (flags & flagDup) !== 0 }
    this.at = payloadEnd
    if (clientId !== undefined) message.clientId = clientId
    return extra === null ? message : Object.assign(extra, message)
  }
}
