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

// payloads scanned byte by byte for the plain-ASCII case at most this long (longer: isUtf8's SIMD)
const maxScannedPayload = 512

/** Whether `payload` is printable ASCII without `"` or `\\`: its JSON string is itself, quoted. */
function plainAscii (payload: Buffer): boolean {
  if (payload.length > maxScannedPayload) return false
  for (let at = 0; at < payload.length; at++) {
    const byte = payload[at] as number
    if (byte < 0x20 || byte > 0x7e || byte === 0x22 || byte === 0x5c) return false
  }
  return true
}

/** An event's end from its payload on: UTF-8 text as a JSON string, anything else in base64. */
function payloadTail (payload: Buffer | string): string {
  if (typeof payload !== 'string') {
    if (plainAscii(payload)) return `"${payload.toString('latin1')}","encoding":"utf8"}}`
    if (!isUtf8(payload)) return `"${payload.toString('base64')}","encoding":"base64"}}`
  }
  return `${JSON.stringify(payload.toString())},"encoding":"utf8"}}`
}

/** What a message.published event tells of its message (an MQTT packet is one). */
export interface PublishedMessage {
  topic: string
  qos: number
  retain: boolean
  payload: Buffer | string
}

// topics whose JSON piece is kept: a chat's rooms are published to again and again
const maxRememberedTopics = 10_000
const flagsJson = [0, 1, 2].map((qos) => [false, true].map((retain) => `,"qos":${qos},"retain":${retain}`))
const flagsBytes = flagsJson.map((byRetain) => byRetain.map((json) => Buffer.from(json)))
const idHeadBytes = Buffer.from(`{"id":"${idPrefix}`)
const payloadHeadBytes = Buffer.from(',"payload":"')
const utf8TailBytes = Buffer.from('","encoding":"utf8"}}')
const base36Digits = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz')

/** A message's client as it appears in its event, `,"clientId":…,"user":…`: text and bytes. */
export interface ClientPiece {
  json: string
  bytes: Buffer
}

/** An event ready to be copied into an outbox's buffer, as bytes. */
export interface EventBytes {
  /** Its length in bytes. */
  readonly length: number
  /** Writes it into `into` at `at` (where `length` bytes are free); the same bytes each time until the next event. */
  writeTo: (into: Buffer, at: number) => void
}

/**
 * message.published events as JSON (eventJson's shape, `data`: topic, qos, retain, clientId,
 * user, payload, encoding), from pieces that repeat, made once: the time and node (per
 * millisecond), the topic (per topic), QoS and retain, the client (the caller's, from
 * MessageEventJson.client). An event whose payload is plain ASCII is copied into the outbox's
 * buffer piece by piece (prepare, then writeTo): no string is made for it at all; any other is
 * built as text. Building each event as a string and encoding it into the outbox was its
 * largest cost (~1.2 µs an event, a third of it making the string flat to encode it).
 */
export class MessageEventJson implements EventBytes {
  private readonly topics = new Map<string, Buffer>()
  private atMs = 0
  private atBytes: Buffer = Buffer.alloc(0)
  /** Where the milliseconds' digits are in atBytes. */
  private msAt = 0
  // the prepared event's pieces
  length = 0
  private id = 0
  private idDigits = 0
  private topic: Buffer = Buffer.alloc(0)
  private flags = flagsBytes[0]?.[0] as Buffer
  private client: Buffer = Buffer.alloc(0)
  private payload: Buffer = Buffer.alloc(0)

  constructor (private readonly nodeJson: string) {}

  /** The client's piece of its messages' events. */
  static client (clientId: string | null, user: string | null): ClientPiece {
    const json = `,"clientId":${quoted(clientId)},"user":${quoted(user)}`
    return { json, bytes: Buffer.from(json) }
  }

  /**
   * The time and node's piece: made again each second, its milliseconds' three digits written
   * over in place when only they changed (a piece is copied out as soon as it is asked for).
   * `toISOString` each millisecond cost ~0.1 µs a message at 10,000 a second (perf: V8's
   * ToDateString asks the OS for the local offset and formats with snprintf).
   */
  private at (): Buffer {
    const now = Date.now()
    if (now !== this.atMs) {
      const ms = now % 1000
      if (now - ms === this.atMs - this.atMs % 1000) {
        this.atBytes[this.msAt] = 0x30 + Math.floor(ms / 100)
        this.atBytes[this.msAt + 1] = 0x30 + Math.floor(ms / 10) % 10
        this.atBytes[this.msAt + 2] = 0x30 + ms % 10
      } else {
        const head = '","type":"message.published","at":"'
        this.atBytes = Buffer.from(`${head}${new Date(now).toISOString()}","node":${this.nodeJson},"data":{"topic":`)
        // after `YYYY-MM-DDTHH:MM:SS.`
        this.msAt = head.length + 20
      }
      this.atMs = now
    }
    return this.atBytes
  }

  private topicBytes (topic: string): Buffer {
    let bytes = this.topics.get(topic)
    if (bytes === undefined) {
      if (this.topics.size >= maxRememberedTopics) this.topics.clear()
      this.topics.set(topic, bytes = Buffer.from(JSON.stringify(topic)))
    }
    return bytes
  }

  /** The event of a message with a plain-ASCII payload, ready for writeTo (a new id); null for any other payload (build it). */
  prepare (topic: string, qos: number, retain: boolean, client: ClientPiece, payload: PublishedMessage['payload']): EventBytes | null {
    if (typeof payload === 'string' || !plainAscii(payload)) return null
    const at = this.at()
    this.topic = this.topicBytes(topic)
    this.flags = flagsBytes[qos]?.[retain ? 1 : 0] ?? this.flags
    this.client = client.bytes
    this.payload = payload
    this.id = idCounter++
    let digits = 1
    for (let rest = this.id; rest >= 36; rest = Math.floor(rest / 36)) digits++
    this.idDigits = digits
    this.length = idHeadBytes.length + digits + at.length + this.topic.length + this.flags.length + this.client.length + payloadHeadBytes.length + payload.length + utf8TailBytes.length
    return this
  }

  writeTo (into: Buffer, at: number): void {
    into.set(idHeadBytes, at)
    at += idHeadBytes.length
    for (let digit = this.idDigits - 1, rest = this.id; digit >= 0; digit--, rest = Math.floor(rest / 36)) into[at + digit] = base36Digits[rest % 36] as number
    at += this.idDigits
    into.set(this.atBytes, at)
    at += this.atBytes.length
    into.set(this.topic, at)
    at += this.topic.length
    into.set(this.flags, at)
    at += this.flags.length
    into.set(this.client, at)
    at += this.client.length
    into.set(payloadHeadBytes, at)
    at += payloadHeadBytes.length
    into.set(this.payload, at)
    into.set(utf8TailBytes, at + this.payload.length)
  }

  /** The event of any message, as text (a new id). */
  build (topic: string, qos: number, retain: boolean, client: ClientPiece, payload: PublishedMessage['payload']): string {
    return `{"id":"${newEventId()}${this.at().toString()}${this.topicBytes(topic).toString()}${flagsJson[qos]?.[retain ? 1 : 0] ?? ''}${client.json},"payload":${payloadTail(payload)}`
  }
}
