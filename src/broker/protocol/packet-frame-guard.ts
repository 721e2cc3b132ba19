// Checks an inbound MQTT byte stream before Aedes parses it, so that a packet that is too
// large or breaks the rules of MQTT 3.1.1 or 5.0 closes its connection before Aedes acts on it.
// Fixed headers are checked as they arrive. The bodies of control packets (CONNECT,
// SUBSCRIBE, acks...) are small and checked whole; of a PUBLISH only the topic, packet
// identifier and (MQTT 5) properties are read, its payload is skipped by count, so the cost
// per message is tiny. The checks are the byte-level rules mqtt-packet does not enforce:
// well-formed UTF-8 without U+0000, packet identifiers, exact lengths, wildcard placement,
// CONNECT's flags and fields, MQTT 5 properties (which each packet may carry, once or more,
// with what values) and reason codes, and the answer to an unsupported protocol level.
//
// The protocol level of the CONNECT sets how later packets are read and answered: MQTT 3.1
// and 3.1.1 close the connection on a broken rule; MQTT 5 answers a broken rule of the
// CONNECT with a CONNACK carrying its reason code, and of a later packet with a DISCONNECT
// carrying it, then closes [MQTT-4.13.1-1]. An AUTH packet (MQTT 5 only) is not for Aedes:
// the guard hands it to the connection (verdict 'auth').
import { isUtf8 } from 'node:buffer'
import { multiLevelWildcardByte, nulByte, singleLevelWildcardByte, topicFilterViolation, topicNameViolation } from '../../acl/topic-grammar.js'
import { ReasonCode } from './reason-codes.js'

const enum State { PacketType, RemainingLength, Body }

// Control packet types (table 2.1 of MQTT 3.1.1 and 5.0)
const CONNECT = 1
const PUBLISH = 3
const PUBACK = 4
const PUBREC = 5
const PUBREL = 6
const PUBCOMP = 7
const SUBSCRIBE = 8
const UNSUBSCRIBE = 10
const PINGREQ = 12
const DISCONNECT = 14
const AUTH = 15 // MQTT 5 only

// Packets only a server sends: a client that sends one is in breach of the protocol.
const serverOnlyPackets = new Set([2 /* CONNACK */, 9 /* SUBACK */, 11 /* UNSUBACK */, 13 /* PINGRESP */])

/** The MQTT 5 reason codes of the guard's answers (MQTT 5.0 section 2.4, table 2.6). */
/** The codes the guard answers a broken rule with (reason-codes.ts). */
export type GuardReasonCode = typeof ReasonCode.malformedPacket | typeof ReasonCode.protocolError | typeof ReasonCode.badAuthenticationMethod | typeof ReasonCode.packetTooLarge

/** What the connection must do about a packet that breaks the rules, or that Aedes must not see. */
export type GuardVerdict =
  /** Close the network connection without answering. */
  | { action: 'close', reason: string }
  /**
   * Answer with a CONNACK carrying `returnCode`, then close: MQTT 3.1/3.1.1 [MQTT-3.2.2-5];
   * with `mqtt5`, a v5 CONNACK whose reason code it is [MQTT-3.2.2-6] [MQTT-3.2.2-7].
   */
  | { action: 'refuse', returnCode: number, mqtt5: boolean, reason: string }
  /** MQTT 5: answer with a DISCONNECT carrying `reasonCode`, then close [MQTT-4.13.1-1]. */
  | { action: 'disconnect', reasonCode: GuardReasonCode, reason: string }
  /** Pass the first `at` bytes of the chunk (ending with a DISCONNECT), then end the stream. */
  | { action: 'end', at: number, reason: string }
  /**
   * MQTT 5 AUTH: pass the first `passed` bytes of the chunk, hand `packet` (the whole AUTH
   * packet, once complete; null while it continues in the next chunk) to the connection, and
   * scan the chunk on from `resume`. Nothing of the AUTH packet reaches Aedes.
   */
  | { action: 'auth', passed: number, packet: Buffer | null, resume: number }

const close = (reason: string): GuardVerdict => ({ action: 'close', reason })

/** A broken rule: why, and the MQTT 5 reason code that answers it. */
interface Violation { code: GuardReasonCode, reason: string }

const malformed = (reason: string): Violation => ({ code: ReasonCode.malformedPacket, reason })
const protocolError = (reason: string): Violation => ({ code: ReasonCode.protocolError, reason })

/** What the guard keeps of an MQTT 5 CONNECT for the checks of later packets. */
interface Mqtt5Connect {
  /** The Authentication Method: AUTH needs one [MQTT-4.12.0-7] and repeats it [MQTT-4.12.0-5]. */
  authenticationMethod: Buffer | null
  /** The Session Expiry Interval, 0 when absent (MQTT 5.0 3.1.2.11.2). */
  sessionExpiryInterval: number
}

// The grammar's bytes that publishHeaderIsPlain looks for, as this module's own constants: in
// that per-PUBLISH loop an imported binding costs about twice what a module-local const does.
const topicNul = nulByte
const topicHash = multiLevelWildcardByte
const topicPlus = singleLevelWildcardByte

export class PacketFrameGuard {
  private state = State.PacketType
  private type = 0
  private flags = 0
  private remaining = 0
  private multiplier = 1
  private lengthBytes = 0
  // body bytes gathered for inspection: the whole body, or a PUBLISH's topic and identifier
  // (MQTT 5: and properties)
  private target = 0
  private collected = 0
  // made by the first part gathered: an idle connection keeps none
  private parts: Buffer[] | null = null
  private publishTopicRead = false
  // MQTT 5: where a PUBLISH's properties end in its body, once known; 0 before
  private publishPropertiesEnd = 0
  private connectSeen = false
  private disconnectSeen = false
  // the MQTT 5 CONNECT of this connection; null for MQTT 3.1/3.1.1 (and before CONNECT)
  private mqtt5: Mqtt5Connect | null = null
  // MQTT 5 PUBLISH: the one byte of an empty property length after the packet identifier
  private publishPropertyLengthByte = 0
  // an AUTH packet being withheld from Aedes, and where in the current chunk it began
  private intercepting = false
  private authStart = 0

  constructor (private readonly maxPacketSize: number) {}

  /** Advances over `chunk`; returns what must happen to the connection, or null when all is well. */
  scan (chunk: Buffer): GuardVerdict | null {
    let i = 0
    this.authStart = 0
    while (i < chunk.length) {
      switch (this.state) {
        case State.PacketType: {
          // Nothing after a DISCONNECT is processed: the client must close the connection
          // after it [MQTT-3.14.4-1] [MQTT-3.14.4-2], and the server closes it [MQTT-4.8.0-1]
          if (this.disconnectSeen) return { action: 'end', at: i, reason: 'bytes after DISCONNECT' }
          const byte = chunk[i] as number
          const violation = this.checkFixedHeader(byte)
          if (violation !== null) return this.fail(violation)
          this.type = byte >> 4
          this.flags = byte & 0x0f
          if (this.type === AUTH) {
            this.intercepting = true
            this.authStart = i
          }
          this.state = State.RemainingLength
          this.remaining = 0
          this.multiplier = 1
          this.lengthBytes = 0
          i++
          break
        }
        case State.RemainingLength: {
          const byte = chunk[i] as number
          i++
          this.remaining += (byte & 0x7f) * this.multiplier
          this.multiplier *= 128
          this.lengthBytes++
          if (byte & 0x80) {
            // The remaining length is at most four bytes long [MQTT-2.2.3]
            if (this.lengthBytes === 4) return this.fail(malformed('malformed remaining length (more than 4 bytes)'))
            break
          }
          if (this.remaining + 1 + this.lengthBytes > this.maxPacketSize) {
            // MQTT 5: DISCONNECT 0x95 (Packet too large)
            return this.fail({ code: ReasonCode.packetTooLarge, reason: `packet of ${this.remaining + 1 + this.lengthBytes} bytes exceeds the limit of ${this.maxPacketSize} bytes` })
          }
          const verdict = this.startBody()
          if (verdict !== null) return verdict
          break
        }
        case State.Body: {
          if (this.type === PUBLISH && this.collected === 0 && !this.publishTopicRead && chunk.length - i >= 2) {
            // The common case: topic and packet identifier within this chunk, checked in place
            // (MQTT 5: followed by a property length of 0, no properties).
            const qos = (this.flags >> 1) & 0x03
            const headerLength = 2 + chunk.readUInt16BE(i) + (qos > 0 ? 2 : 0)
            const needed = headerLength + this.publishPropertyLengthByte
            if (needed <= this.remaining && needed <= chunk.length - i && (this.publishPropertyLengthByte === 0 || chunk[i + headerLength] === 0)) {
              if (!publishHeaderIsPlain(chunk, i, headerLength, qos)) {
                const violation = checkPublish(chunk.subarray(i, i + needed), qos, this.mqtt5 !== null)
                if (violation !== null) return this.fail(violation)
              }
              this.publishTopicRead = true
              this.target = 0
            }
          }
          if (this.collected < this.target) {
            const wanted = Math.min(this.target - this.collected, this.remaining, chunk.length - i)
            const parts = this.parts ??= []
            const last = parts[parts.length - 1]
            if (last !== undefined && i >= last.length && last.buffer === chunk.buffer && last.byteOffset + last.length === chunk.byteOffset + i) {
              // contiguous with what was gathered from this chunk: one view, no copy later
              parts[parts.length - 1] = chunk.subarray(i - last.length, i + wanted)
            } else {
              parts.push(chunk.subarray(i, i + wanted))
            }
            this.collected += wanted
            i += wanted
            this.remaining -= wanted
            if (this.collected === this.target) {
              const verdict = this.inspect()
              if (verdict !== null) return verdict
            }
          } else {
            const skipped = Math.min(this.remaining, chunk.length - i)
            i += skipped
            this.remaining -= skipped
          }
          if (this.remaining === 0 && this.collected >= this.target) {
            this.state = State.PacketType
            if (this.parts !== null) {
              // an AUTH's body is always gathered into parts; a PUBLISH read in place has none,
              // so the check costs it nothing
              if (this.intercepting) return this.intercepted(i)
              this.parts = null
            }
          }
          break
        }
      }
    }
    // an AUTH packet that goes on in the next chunk: none of it for Aedes
    return this.intercepting ? { action: 'auth', passed: this.authStart, packet: null, resume: chunk.length } : null
  }

  /** The verdict on a broken rule: MQTT 5 answers it with a DISCONNECT [MQTT-4.13.1-1], MQTT 3.1.1 closes. */
  private fail (violation: Violation): GuardVerdict {
    return this.mqtt5 === null
      ? close(violation.reason)
      : { action: 'disconnect', reasonCode: violation.code, reason: violation.reason }
  }

  /** The AUTH packet whose body ends at `resume`, whole, for the connection. */
  private intercepted (resume: number): GuardVerdict {
    const body = joined(this.parts)
    this.parts = null
    this.intercepting = false
    return { action: 'auth', passed: this.authStart, packet: Buffer.concat([fixedHeader(AUTH << 4, body.length), body]), resume }
  }

  private checkFixedHeader (byte: number): Violation | null {
    const type = byte >> 4
    const flags = byte & 0x0f
    // Type 0 is reserved; 15 is AUTH in MQTT 5, reserved before [MQTT-2.2.1]
    if (type === 0 || (type === AUTH && this.mqtt5 === null)) return malformed(`reserved control packet type ${type}`)
    if (serverOnlyPackets.has(type)) return protocolError(`control packet type ${type} may only be sent by a server`)
    // The first packet is CONNECT [MQTT-3.1.0-1], and only the first [MQTT-3.1.0-2]
    if (!this.connectSeen && type !== CONNECT) return protocolError('the first packet is not a CONNECT [MQTT-3.1.0-1]')
    if (this.connectSeen && type === CONNECT) return protocolError('a second CONNECT [MQTT-3.1.0-2]')
    if (type === PUBLISH) {
      // A PUBLISH packet MUST NOT have both QoS bits set to 1 [MQTT-3.3.1-4]
      if ((flags & 0x06) === 0x06) return malformed('PUBLISH with QoS 3 [MQTT-3.3.1-4]')
      // The DUP flag MUST be set to 0 for all QoS 0 messages [MQTT-3.3.1-2]
      if ((flags & 0x06) === 0 && (flags & 0x08) !== 0) return malformed('PUBLISH with QoS 0 and DUP 1 [MQTT-3.3.1-2]')
      return null
    }
    // Reserved flags must be exactly as table 2.2 says, else close [MQTT-2.2.2-1] [MQTT-2.2.2-2]
    // (MQTT 5: [MQTT-2.1.3-1], a Malformed Packet)
    const expected = type === PUBREL || type === SUBSCRIBE || type === UNSUBSCRIBE ? 0x02 : 0x00
    if (flags !== expected) return malformed(`invalid fixed-header flags 0x${flags.toString(16)} for control packet type ${type} [MQTT-2.2.2-2]`)
    return null
  }

  /** The remaining length is known: decides how much of the body to inspect. */
  private startBody (): GuardVerdict | null {
    this.parts = null
    this.collected = 0
    this.publishTopicRead = false
    this.publishPropertiesEnd = 0
    if (this.type === CONNECT) this.connectSeen = true
    // a PUBLISH is inspected up to its topic length first, then up to its packet identifier
    this.target = this.type === PUBLISH ? Math.min(2, this.remaining) : this.remaining
    if (this.remaining === 0) {
      this.state = State.PacketType
      return this.inspect()
    }
    this.state = State.Body
    return null
  }

  private inspect (): GuardVerdict | null {
    const body = joined(this.parts)
    const v5 = this.mqtt5 !== null
    switch (this.type) {
      case CONNECT: {
        const { verdict, mqtt5 } = checkConnect(body)
        this.mqtt5 = mqtt5
        this.publishPropertyLengthByte = mqtt5 === null ? 0 : 1
        return verdict
      }
      case PUBLISH: {
        const qos = (this.flags >> 1) & 0x03
        const length = this.remaining + this.collected
        if (!this.publishTopicRead) {
          this.publishTopicRead = true
          if (body.length < 2) return this.fail(malformed('PUBLISH without a topic name [MQTT-3.3.2-1]'))
          const needed = 2 + body.readUInt16BE(0) + (qos > 0 ? 2 : 0)
          if (needed + this.publishPropertyLengthByte > length) return this.fail(malformed('PUBLISH shorter than its topic name and packet identifier'))
          // MQTT 5: and the property length, a variable byte integer of up to 4 bytes
          this.target = v5 ? Math.min(needed + 4, length) : needed
          if (this.collected < this.target) return null
        }
        if (v5 && this.publishPropertiesEnd === 0) {
          const fields = new Fields(body)
          fields.pos = 2 + body.readUInt16BE(0) + (qos > 0 ? 2 : 0)
          const propertyLength = fields.varInt()
          if (propertyLength === null || fields.pos + propertyLength > length) return this.fail(malformed('PUBLISH: malformed property length'))
          this.publishPropertiesEnd = fields.pos + propertyLength
          this.target = Math.max(this.publishPropertiesEnd, this.collected)
          if (this.collected < this.target) return null
        }
        const violation = checkPublish(body, qos, v5)
        return violation === null ? null : this.fail(violation)
      }
      case PUBACK:
      case PUBREC:
      case PUBREL:
      case PUBCOMP: {
        const violation = v5 ? checkAcknowledgement5(body, this.type) : checkAcknowledgement(body, this.type)
        return violation === null ? null : this.fail(violation)
      }
      case SUBSCRIBE:
      case UNSUBSCRIBE: {
        const violation = checkSubscribe(body, this.type === SUBSCRIBE, v5)
        return violation === null ? null : this.fail(violation)
      }
      case PINGREQ:
        return body.length === 0 ? null : this.fail(malformed(`PINGREQ with a remaining length of ${body.length}, not 0`))
      case DISCONNECT: {
        const violation = this.mqtt5 === null
          ? (body.length === 0 ? null : malformed(`DISCONNECT with a remaining length of ${body.length}, not 0`))
          : checkDisconnect5(body, this.mqtt5)
        if (violation !== null) return this.fail(violation)
        this.disconnectSeen = true
        return null
      }
      case AUTH: {
        const violation = checkAuth(body, (this.mqtt5 as Mqtt5Connect).authenticationMethod)
        if (violation === null) return null
        this.intercepting = false
        return this.fail(violation)
      }
      default:
        return null
    }
  }
}

/** Reads MQTT's length-prefixed fields off a packet body; null when a field overruns it. */
// the body of a packet with none (PINGREQ, DISCONNECT): never written to
const emptyBody = Buffer.alloc(0)

/** The gathered parts of a body as one buffer. */
function joined (parts: Buffer[] | null): Buffer {
  if (parts === null) return emptyBody
  return parts.length === 1 ? parts[0] as Buffer : Buffer.concat(parts)
}

class Fields {
  pos = 0
  constructor (readonly body: Buffer) {}

  get done (): boolean { return this.pos >= this.body.length }

  byte (): number | null {
    if (this.pos >= this.body.length) return null
    return this.body[this.pos++] as number
  }

  uint16 (): number | null {
    if (this.pos + 2 > this.body.length) return null
    const value = this.body.readUInt16BE(this.pos)
    this.pos += 2
    return value
  }

  uint32 (): number | null {
    if (this.pos + 4 > this.body.length) return null
    const value = this.body.readUInt32BE(this.pos)
    this.pos += 4
    return value
  }

  /** A Variable Byte Integer (MQTT 5.0 1.5.5): null too when it runs longer than 4 bytes. */
  varInt (): number | null {
    let value = 0
    for (let shift = 0; shift < 28; shift += 7) {
      const byte = this.byte()
      if (byte === null) return null
      value += (byte & 0x7f) * 2 ** shift
      if ((byte & 0x80) === 0) return value
    }
    return null
  }

  bytes (): Buffer | null {
    const length = this.uint16()
    if (length === null || this.pos + length > this.body.length) return null
    const value = this.body.subarray(this.pos, this.pos + length)
    this.pos += length
    return value
  }
}

/** A fixed header: the first byte, then the remaining length as a Variable Byte Integer. */
function fixedHeader (firstByte: number, remainingLength: number): Buffer {
  const bytes = [firstByte]
  let rest = remainingLength
  do {
    const digit = rest % 128
    rest = Math.floor(rest / 128)
    bytes.push(rest > 0 ? digit | 0x80 : digit)
  } while (rest > 0)
  return Buffer.from(bytes)
}

/**
 * Why `bytes` is not an MQTT UTF-8 string: ill-formed UTF-8, including encoded surrogates
 * U+D800-U+DFFF [MQTT-1.5.3-1], or U+0000 [MQTT-1.5.3-2]. A BOM is kept as is [MQTT-1.5.3-3].
 * (MQTT 5: [MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-1.5.4-3], a Malformed Packet.)
 */
export function utf8Violation (bytes: Buffer): string | null {
  if (!isUtf8(bytes)) return 'ill-formed UTF-8 [MQTT-1.5.3-1]'
  if (bytes.includes(0)) return 'U+0000 in a string [MQTT-1.5.3-2]'
  return null
}

/**
 * Whether a PUBLISH's topic and identifier (the `length` bytes at `at`) are valid without a
 * closer look: a non-empty ASCII topic without U+0000 or wildcards, and a non-zero identifier
 * when QoS > 0. False sends the packet through checkPublish, which says what is wrong, if anything.
 */
function publishHeaderIsPlain (chunk: Buffer, at: number, length: number, qos: number): boolean {
  const topicEnd = at + length - (qos > 0 ? 2 : 0)
  if (topicEnd === at + 2) return false
  for (let j = at + 2; j < topicEnd; j++) {
    const byte = chunk[j] as number
    if (byte === topicNul || byte === topicHash || byte === topicPlus || byte >= 0x80) return false
  }
  return qos === 0 || chunk.readUInt16BE(topicEnd) !== 0
}

// MQTT 5 properties (MQTT 5.0 2.2.2.2, table 2.4): the identifiers the guard names
const payloadFormatIndicator = 0x01
const responseTopic = 0x08
const subscriptionIdentifier = 0x0b
const sessionExpiryInterval = 0x11
const authenticationMethod = 0x15
const authenticationData = 0x16
const topicAlias = 0x23
const userProperty = 0x26

const enum PropertyType { Byte, TwoByteInteger, FourByteInteger, VariableByteInteger, String, Binary, StringPair }

/** Every property of MQTT 5.0: its name and type, by identifier. */
const propertyDefinitions = new Map<number, readonly [string, PropertyType]>([
  [payloadFormatIndicator, ['Payload Format Indicator', PropertyType.Byte]],
  [0x02, ['Message Expiry Interval', PropertyType.FourByteInteger]],
  [0x03, ['Content Type', PropertyType.String]],
  [responseTopic, ['Response Topic', PropertyType.String]],
  [0x09, ['Correlation Data', PropertyType.Binary]],
  [subscriptionIdentifier, ['Subscription Identifier', PropertyType.VariableByteInteger]],
  [sessionExpiryInterval, ['Session Expiry Interval', PropertyType.FourByteInteger]],
  [0x12, ['Assigned Client Identifier', PropertyType.String]],
  [0x13, ['Server Keep Alive', PropertyType.TwoByteInteger]],
  [authenticationMethod, ['Authentication Method', PropertyType.String]],
  [authenticationData, ['Authentication Data', PropertyType.Binary]],
  [0x17, ['Request Problem Information', PropertyType.Byte]],
  [0x18, ['Will Delay Interval', PropertyType.FourByteInteger]],
  [0x19, ['Request Response Information', PropertyType.Byte]],
  [0x1a, ['Response Information', PropertyType.String]],
  [0x1c, ['Server Reference', PropertyType.String]],
  [0x1f, ['Reason String', PropertyType.String]],
  [0x21, ['Receive Maximum', PropertyType.TwoByteInteger]],
  [0x22, ['Topic Alias Maximum', PropertyType.TwoByteInteger]],
  [topicAlias, ['Topic Alias', PropertyType.TwoByteInteger]],
  [0x24, ['Maximum QoS', PropertyType.Byte]],
  [0x25, ['Retain Available', PropertyType.Byte]],
  [userProperty, ['User Property', PropertyType.StringPair]],
  [0x27, ['Maximum Packet Size', PropertyType.FourByteInteger]],
  [0x28, ['Wildcard Subscription Available', PropertyType.Byte]],
  [0x29, ['Subscription Identifier Available', PropertyType.Byte]],
  [0x2a, ['Shared Subscription Available', PropertyType.Byte]]
])

// The properties each packet a client sends may carry (MQTT 5.0 3.x.2.2 of each packet)
const connectProperties = new Set([sessionExpiryInterval, 0x21, 0x27, 0x22, 0x19, 0x17, userProperty, authenticationMethod, authenticationData])
const willProperties = new Set([0x18, payloadFormatIndicator, 0x02, 0x03, responseTopic, 0x09, userProperty])
const publishProperties = new Set([payloadFormatIndicator, 0x02, topicAlias, responseTopic, 0x09, userProperty, subscriptionIdentifier, 0x03])
const acknowledgementProperties = new Set([0x1f, userProperty])
const subscribeProperties = new Set([subscriptionIdentifier, userProperty])
const unsubscribeProperties = new Set([userProperty])
const disconnectProperties = new Set([sessionExpiryInterval, 0x1f, userProperty, 0x1c])
const authProperties = new Set([authenticationMethod, authenticationData, 0x1f, userProperty])

// Properties whose value is 0 or 1: Payload Format Indicator (3.3.2.3.2), Request Problem
// Information (3.1.2.11.7), Request Response Information (3.1.2.11.6)
const booleanProperties = new Set([payloadFormatIndicator, 0x17, 0x19])
// Properties for which 0 is a Protocol Error: Subscription Identifier (3.8.2.1.2), Receive
// Maximum (3.1.2.11.3), Topic Alias [MQTT-3.3.2-8], Maximum Packet Size (3.1.2.11.4)
const nonZeroProperties = new Set([subscriptionIdentifier, 0x21, topicAlias, 0x27])

/** The properties of a packet by identifier, with their values (User Properties are checked, not kept). */
type Properties = Map<number, number | Buffer>

/**
 * Reads the property length and the properties at `fields` [MQTT-2.2.2-1]: each one allowed in
 * the packet (`allowed`), of its type, and only User Property more than once (MQTT 5.0 2.2.2.2).
 */
function readProperties (fields: Fields, allowed: ReadonlySet<number>, what: string): Properties | Violation {
  const length = fields.varInt()
  if (length === null || fields.pos + length > fields.body.length) return malformed(`${what}: malformed property length`)
  const end = fields.pos + length
  const properties: Properties = new Map()
  while (fields.pos < end) {
    // identifiers are Variable Byte Integers, all of one byte in MQTT 5.0
    const id = fields.byte() as number
    const definition = propertyDefinitions.get(id)
    if (definition === undefined) return malformed(`${what}: unknown property identifier 0x${id.toString(16)}`)
    const [name, type] = definition
    if (!allowed.has(id)) return protocolError(`${what}: ${name} is not a property of this packet`)
    if (id !== userProperty && properties.has(id)) return protocolError(`${what}: ${name} more than once`)
    let value: number | Buffer | null
    switch (type) {
      case PropertyType.Byte: value = fields.byte(); break
      case PropertyType.TwoByteInteger: value = fields.uint16(); break
      case PropertyType.FourByteInteger: value = fields.uint32(); break
      case PropertyType.VariableByteInteger: value = fields.varInt(); break
      case PropertyType.Binary: value = fields.bytes(); break
      case PropertyType.String:
      case PropertyType.StringPair: {
        value = fields.bytes()
        const bad = value === null ? null : utf8Violation(value)
        if (bad !== null) return malformed(`${what}: ${name}: ${bad}`)
        if (type === PropertyType.StringPair && value !== null) {
          // both strings of the pair are UTF-8 strings [MQTT-1.5.7-1]
          const pairValue = fields.bytes()
          const badValue = pairValue === null ? null : utf8Violation(pairValue)
          if (badValue !== null) return malformed(`${what}: ${name} value: ${badValue} [MQTT-1.5.7-1]`)
          if (pairValue === null) value = null
        }
        break
      }
    }
    if (value === null || fields.pos > end) return malformed(`${what}: ${name} overruns the properties`)
    if (booleanProperties.has(id) && (value as number) > 1) return protocolError(`${what}: ${name} ${value as number}, not 0 or 1`)
    if (nonZeroProperties.has(id) && value === 0) return protocolError(`${what}: ${name} 0${id === topicAlias ? ' [MQTT-3.3.2-8]' : ''}`)
    if (id === responseTopic) {
      // a topic name: no wildcards [MQTT-3.3.2-14]
      const violation = topicNameViolation((value as Buffer).toString('utf8'))
      if (violation !== null) return protocolError(`${what}: Response Topic: ${violation} [MQTT-3.3.2-14]`)
    }
    if (id !== userProperty) properties.set(id, value)
  }
  return properties
}

const isViolation = (value: Properties | Violation): value is Violation => !(value instanceof Map)

function checkPublish (body: Buffer, qos: number, v5: boolean): Violation | null {
  const fields = new Fields(body)
  const topic = fields.bytes() as Buffer
  const bad = utf8Violation(topic)
  if (bad !== null) return malformed(`PUBLISH topic name: ${bad}`)
  // MQTT 5: an empty topic name stands for the one its Topic Alias maps to (3.3.2.1), which Aedes resolves
  const nameViolation = v5 && topic.length === 0 ? null : topicNameViolation(topic.toString('utf8'))
  if (nameViolation !== null) return protocolError(`PUBLISH: ${nameViolation}`)
  if (qos > 0 && fields.uint16() === 0) return protocolError(`PUBLISH with QoS > 0 and packet identifier 0 [${v5 ? 'MQTT-2.2.1-3' : 'MQTT-2.3.1-1'}]`)
  if (!v5) return null
  const properties = readProperties(fields, publishProperties, 'PUBLISH')
  if (isViolation(properties)) return properties
  // a client's PUBLISH carries no Subscription Identifier [MQTT-3.3.4-6]
  if (properties.has(subscriptionIdentifier)) return protocolError('PUBLISH from a client with a Subscription Identifier [MQTT-3.3.4-6]')
  if (topic.length === 0 && !properties.has(topicAlias)) return protocolError('PUBLISH with an empty topic name and no Topic Alias (MQTT 5.0 3.3.2.1)')
  return null
}

/** MQTT 3.1.1 PUBACK, PUBREC, PUBREL and PUBCOMP: a packet identifier, nothing else. */
function checkAcknowledgement (body: Buffer, type: number): Violation | null {
  if (body.length !== 2) return malformed(`acknowledgement (type ${type}) with a remaining length of ${body.length}, not 2`)
  // it carries the non-zero identifier of its PUBLISH [MQTT-2.3.1-1] [MQTT-2.3.1-6]
  return body.readUInt16BE(0) === 0 ? protocolError(`acknowledgement (type ${type}) with packet identifier 0 [MQTT-2.3.1-1]`) : null
}

// The reason codes a client may send: PUBACK and PUBREC (3.4.2.1, 3.5.2.1), PUBREL and
// PUBCOMP (3.6.2.1, 3.7.2.1), DISCONNECT (3.14.2.1), AUTH (3.15.2.1)
const publishReceivedReasonCodes = new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99])
const publishReleasedReasonCodes = new Set([0x00, 0x92])
const disconnectReasonCodes = new Set([0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99])
const authReasonCodes = new Set([0x18, 0x19])

/** The normative statement that a client's acknowledgement of `type` uses one of its reason codes. */
const acknowledgementReasonCodeRule = ['MQTT-3.4.2-1', 'MQTT-3.5.2-1', 'MQTT-3.6.2-1', 'MQTT-3.7.2-1']

/**
 * MQTT 5 PUBACK, PUBREC, PUBREL and PUBCOMP: a packet identifier, then a reason code and
 * properties, each omitted when the rest is (3.4.2.1).
 */
function checkAcknowledgement5 (body: Buffer, type: number): Violation | null {
  const fields = new Fields(body)
  const id = fields.uint16()
  if (id === null) return malformed(`acknowledgement (type ${type}) without a packet identifier`)
  // it carries the non-zero identifier of its PUBLISH [MQTT-2.2.1-5]
  if (id === 0) return protocolError(`acknowledgement (type ${type}) with packet identifier 0 [MQTT-2.2.1-5]`)
  const reasonCode = fields.byte()
  if (reasonCode === null) return null
  const allowed = type === PUBACK || type === PUBREC ? publishReceivedReasonCodes : publishReleasedReasonCodes
  if (!allowed.has(reasonCode)) return protocolError(`acknowledgement (type ${type}) with reason code 0x${reasonCode.toString(16)} [${acknowledgementReasonCodeRule[type - PUBACK] as string}]`)
  if (fields.done) return null
  const properties = readProperties(fields, acknowledgementProperties, `acknowledgement (type ${type})`)
  if (isViolation(properties)) return properties
  return fields.done ? null : malformed(`acknowledgement (type ${type}) with bytes after its properties`)
}

function checkSubscribe (body: Buffer, subscribe: boolean, v5: boolean): Violation | null {
  const what = subscribe ? 'SUBSCRIBE' : 'UNSUBSCRIBE'
  const fields = new Fields(body)
  const id = fields.uint16()
  if (id === null) return malformed(`${what} without a packet identifier`)
  if (id === 0) return protocolError(`${what} with packet identifier 0 [${v5 ? 'MQTT-2.2.1-3' : 'MQTT-2.3.1-1'}]`)
  if (v5) {
    const properties = readProperties(fields, subscribe ? subscribeProperties : unsubscribeProperties, what)
    if (isViolation(properties)) return properties
  }
  // at least one topic filter [MQTT-3.8.3-3] [MQTT-3.10.3-2] (MQTT 5: [MQTT-3.8.3-2] [MQTT-3.10.3-2])
  if (fields.done) return protocolError(`${what} without topic filters [${subscribe ? 'MQTT-3.8.3-3' : 'MQTT-3.10.3-2'}]`)
  while (!fields.done) {
    const filter = fields.bytes()
    if (filter === null) return malformed(`${what}: malformed topic filter`)
    const bad = utf8Violation(filter)
    if (bad !== null) return malformed(`${what} topic filter: ${bad}`)
    const violation = topicFilterViolation(filter.toString('utf8'))
    if (violation !== null) return protocolError(`${what}: ${violation}`)
    if (subscribe) {
      const options = fields.byte()
      if (options === null) return malformed('SUBSCRIBE: topic filter without its requested QoS')
      if (v5) {
        const violation = subscriptionOptionsViolation(options)
        if (violation !== null) return violation
      } else if ((options & 0xfc) !== 0 || (options & 0x03) === 3) {
        // reserved bits 7-2 zero, QoS 0, 1 or 2 [MQTT-3-8.3-4]
        return malformed(`SUBSCRIBE: requested QoS byte 0x${options.toString(16)} [MQTT-3.8.3-4]`)
      }
    }
  }
  return null
}

/**
 * MQTT 5 Subscription Options (3.8.3.1): QoS in bits 0-1, No Local bit 2, Retain As Published
 * bit 3, Retain Handling bits 4-5, reserved bits 6-7.
 */
function subscriptionOptionsViolation (options: number): Violation | null {
  // reserved bits are zero, else a Malformed Packet [MQTT-3.8.3-5]
  if ((options & 0xc0) !== 0) return malformed(`SUBSCRIBE: subscription options 0x${options.toString(16)} with reserved bits set [MQTT-3.8.3-5]`)
  if ((options & 0x03) === 3) return protocolError('SUBSCRIBE: Maximum QoS 3 (MQTT 5.0 3.8.3.1)')
  if ((options & 0x30) === 0x30) return protocolError('SUBSCRIBE: Retain Handling 3 (MQTT 5.0 3.8.3.1)')
  return null
}

/** MQTT 5 DISCONNECT from a client: a reason code and properties, each omitted when the rest is (3.14.2). */
function checkDisconnect5 (body: Buffer, connect: Mqtt5Connect): Violation | null {
  const fields = new Fields(body)
  const reasonCode = fields.byte()
  if (reasonCode === null) return null
  if (!disconnectReasonCodes.has(reasonCode)) return protocolError(`DISCONNECT with reason code 0x${reasonCode.toString(16)} [MQTT-3.14.2-1]`)
  if (fields.done) return null
  const properties = readProperties(fields, disconnectProperties, 'DISCONNECT')
  if (isViolation(properties)) return properties
  if (!fields.done) return malformed('DISCONNECT with bytes after its properties')
  // a session that was to end with the connection cannot be kept by DISCONNECT (3.14.2.2.2)
  const expiry = properties.get(sessionExpiryInterval)
  if (connect.sessionExpiryInterval === 0 && expiry !== undefined && expiry !== 0) {
    return protocolError('DISCONNECT sets a Session Expiry Interval where CONNECT had 0 (MQTT 5.0 3.14.2.2.2)')
  }
  return null
}

/** MQTT 5 AUTH from a client: Continue authentication or Re-authenticate, with the CONNECT's method. */
function checkAuth (body: Buffer, connectMethod: Buffer | null): Violation | null {
  // no Authentication Method in CONNECT, no AUTH from the client [MQTT-4.12.0-7]
  if (connectMethod === null) return protocolError('AUTH without an Authentication Method in CONNECT [MQTT-4.12.0-7]')
  const fields = new Fields(body)
  // an empty AUTH means reason 0x00 (Success), which only a server sends [MQTT-3.15.2-1]
  const reasonCode = fields.byte() ?? 0
  if (!authReasonCodes.has(reasonCode)) return protocolError(`AUTH with reason code 0x${reasonCode.toString(16)} [MQTT-3.15.2-1]`)
  const properties = fields.done ? new Map() as Properties : readProperties(fields, authProperties, 'AUTH')
  if (isViolation(properties)) return properties
  if (!fields.done) return malformed('AUTH with bytes after its properties')
  // the method of the CONNECT, in every AUTH [MQTT-4.12.0-5] [MQTT-4.12.1-1]
  const method = properties.get(authenticationMethod)
  if (method === undefined) return protocolError('AUTH without an Authentication Method (MQTT 5.0 3.15.2.2.2)')
  if (!connectMethod.equals(method as Buffer)) return protocolError('AUTH with another Authentication Method than CONNECT [MQTT-4.12.0-5]')
  return null
}

interface ConnectOutcome {
  /** What to do about the CONNECT; null when it passes. */
  verdict: GuardVerdict | null
  /** An MQTT 5 CONNECT that passed; null otherwise. */
  mqtt5: Mqtt5Connect | null
}

function checkConnect (body: Buffer): ConnectOutcome {
  const fields = new Fields(body)
  const nameBytes = fields.bytes()
  if (nameBytes === null) return { verdict: close('CONNECT without a protocol name'), mqtt5: null }
  const name = nameBytes.toString('latin1')
  // An unknown protocol name: disconnect [MQTT-3.1.2-1]
  if (name !== 'MQTT' && name !== 'MQIsdp') return { verdict: close(`protocol name ${JSON.stringify(name)} [MQTT-3.1.2-1]`), mqtt5: null }
  const level = fields.byte()
  if (level === null) return { verdict: close('CONNECT without a protocol level'), mqtt5: null }
  const v5 = name === 'MQTT' && level === 5
  // MQTT 5.0 is "MQTT" level 5; MQTT 3.1.1 is "MQTT" level 4; MQTT 3.1 is "MQIsdp" level 3.
  // Anything else is a level this server does not support: CONNACK 0x01, then disconnect
  // [MQTT-3.1.2-2] (the answer a client of any version understands)
  if (!v5 && !(name === 'MQTT' && level === 4) && !(name === 'MQIsdp' && level === 3)) {
    return { verdict: { action: 'refuse', returnCode: 1, mqtt5: false, reason: `protocol ${name} level ${level} is not supported [MQTT-3.1.2-2]` }, mqtt5: null }
  }
  // MQTT 5 answers a broken rule with a CONNACK carrying its reason code, then closes
  // [MQTT-3.1.4-1] [MQTT-4.13.1-1]; MQTT 3.1.1 closes without CONNACK [MQTT-3.1.4-1]
  const fail = (violation: Violation): ConnectOutcome => ({
    verdict: v5 ? { action: 'refuse', returnCode: violation.code, mqtt5: true, reason: violation.reason } : close(violation.reason),
    mqtt5: null
  })
  const flags = fields.byte()
  if (flags === null) return fail(malformed('CONNECT without connect flags'))
  // The reserved flag is zero [MQTT-3.1.2-3]
  if ((flags & 0x01) !== 0) return fail(malformed('CONNECT reserved flag set [MQTT-3.1.2-3]'))
  const clean = (flags & 0x02) !== 0
  const will = (flags & 0x04) !== 0
  const willQos = (flags >> 3) & 0x03
  const willRetain = (flags & 0x20) !== 0
  const password = (flags & 0x40) !== 0
  const username = (flags & 0x80) !== 0
  if (!will && willQos !== 0) return fail(malformed('Will QoS set without the Will Flag [MQTT-3.1.2-13]'))
  if (!will && willRetain) return fail(malformed('Will Retain set without the Will Flag [MQTT-3.1.2-15]'))
  if (willQos === 3) return fail(malformed('Will QoS 3 [MQTT-3.1.2-14]'))
  // MQTT 5 allows a password without a user name (3.1.2.9)
  if (!v5 && password && !username) return fail(malformed('Password Flag set without the User Name Flag [MQTT-3.1.2-22]'))
  if (fields.uint16() === null) return fail(malformed('CONNECT without a keep alive'))
  let connect: Mqtt5Connect | null = null
  if (v5) {
    const properties = readProperties(fields, connectProperties, 'CONNECT')
    if (isViolation(properties)) return fail(properties)
    const method = properties.get(authenticationMethod)
    // Authentication Data without an Authentication Method is a Protocol Error (3.1.2.11.10)
    if (method === undefined && properties.has(authenticationData)) return fail(protocolError('CONNECT with Authentication Data and no Authentication Method (MQTT 5.0 3.1.2.11.10)'))
    connect = { authenticationMethod: (method as Buffer | undefined) ?? null, sessionExpiryInterval: (properties.get(sessionExpiryInterval) as number | undefined) ?? 0 }
  }

  // The payload's fields, in this order [MQTT-3.1.3-1]
  const clientId = fields.bytes()
  if (clientId === null) return fail(malformed('CONNECT without a client identifier [MQTT-3.1.3-3]'))
  const badId = utf8Violation(clientId)
  if (badId !== null) return fail(malformed(`client identifier: ${badId} [MQTT-3.1.3-4]`))
  if (will) {
    if (v5) {
      const properties = readProperties(fields, willProperties, 'Will Properties')
      if (isViolation(properties)) return fail(properties)
    }
    const topic = fields.bytes()
    if (topic === null) return fail(malformed('Will Flag set without a Will Topic [MQTT-3.1.2-9]'))
    const badTopic = utf8Violation(topic)
    if (badTopic !== null) return fail(malformed(`Will Topic: ${badTopic} [${v5 ? 'MQTT-3.1.3-11' : 'MQTT-3.1.3-10'}]`))
    if (fields.bytes() === null) return fail(malformed('Will Flag set without a Will Message [MQTT-3.1.2-9]'))
  }
  if (username) {
    const user = fields.bytes()
    if (user === null) return fail(malformed('User Name Flag set without a user name [MQTT-3.1.2-19]'))
    const badUser = utf8Violation(user)
    if (badUser !== null) return fail(malformed(`user name: ${badUser} [${v5 ? 'MQTT-3.1.3-12' : 'MQTT-3.1.3-11'}]`))
  }
  if (password && fields.bytes() === null) return fail(malformed('Password Flag set without a password [MQTT-3.1.2-21]'))
  // Bytes left over are fields whose flag is 0: a Will [MQTT-3.1.2-11], a user name
  // [MQTT-3.1.2-18] or a password [MQTT-3.1.2-20]
  if (!fields.done) return fail(malformed('CONNECT carries fields its flags do not announce [MQTT-3.1.2-11] [MQTT-3.1.2-18] [MQTT-3.1.2-20]'))

  // MQTT 3.1 (section 3.1, Client Identifier) requires 1 to 23 characters, else CONNACK 2; the
  // configured bound for all levels is the authenticate hook's (limits.ts, [MQTT-3.1.3-5])
  if (level === 3 && (clientId.length === 0 || [...clientId.toString('utf8')].length > 23)) {
    return { verdict: { action: 'refuse', returnCode: 2, mqtt5: false, reason: 'MQTT 3.1 client identifiers are 1 to 23 characters' }, mqtt5: null }
  }
  // A zero-byte client id needs CleanSession 1 [MQTT-3.1.3-8]; MQTT 5 assigns one whatever
  // Clean Start says [MQTT-3.1.3-6]
  if (!v5 && clientId.length === 0 && !clean) {
    return { verdict: { action: 'refuse', returnCode: 2, mqtt5: false, reason: 'zero-byte client identifier with CleanSession 0 [MQTT-3.1.3-8]' }, mqtt5: null }
  }
  return { verdict: null, mqtt5: connect }
}
