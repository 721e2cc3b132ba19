// Checks an inbound MQTT byte stream before Aedes parses it, so that a packet that is too
// large or breaks MQTT 3.1.1's rules closes its connection before Aedes acts on it.
// Fixed headers are checked as they arrive. The bodies of control packets (CONNECT,
// SUBSCRIBE, acks...) are small and checked whole; of a PUBLISH only the topic and packet
// identifier are read, its payload is skipped by count, so the cost per message is tiny.
// The checks are the byte-level rules mqtt-packet does not enforce: well-formed UTF-8
// without U+0000, packet identifiers, exact lengths, wildcard placement, CONNECT's flags
// and fields, and the answer to an unsupported protocol level.
import { isUtf8 } from 'node:buffer'
import { multiLevelWildcardByte, nulByte, singleLevelWildcardByte, topicFilterViolation, topicNameViolation } from '../../acl/topic-grammar.js'

const enum State { PacketType, RemainingLength, Body }

// Control packet types (MQTT 3.1.1 table 2.1)
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

// Packets only a server sends: a client that sends one is in breach of the protocol.
const serverOnlyPackets = new Set([2 /* CONNACK */, 9 /* SUBACK */, 11 /* UNSUBACK */, 13 /* PINGRESP */])

/** What the connection must do about a packet that breaks the rules. */
export type GuardVerdict =
  /** Close the network connection without answering. */
  | { action: 'close', reason: string }
  /** Answer with a CONNACK carrying `returnCode`, then close [MQTT-3.2.2-5]. */
  | { action: 'refuse', returnCode: 1 | 2, reason: string }
  /** Pass the first `at` bytes of the chunk (ending with a DISCONNECT), then end the stream. */
  | { action: 'end', at: number, reason: string }

const close = (reason: string): GuardVerdict => ({ action: 'close', reason })

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
  private target = 0
  private collected = 0
  private parts: Buffer[] = []
  private publishTopicRead = false
  private connectSeen = false
  private disconnectSeen = false

  constructor (private readonly maxPacketSize: number) {}

  /** Advances over `chunk`; returns what must happen to the connection, or null when all is well. */
  scan (chunk: Buffer): GuardVerdict | null {
    let i = 0
    while (i < chunk.length) {
      switch (this.state) {
        case State.PacketType: {
          // Nothing after a DISCONNECT is processed: the client must close the connection
          // after it [MQTT-3.14.4-1] [MQTT-3.14.4-2], and the server closes it [MQTT-4.8.0-1]
          if (this.disconnectSeen) return { action: 'end', at: i, reason: 'bytes after DISCONNECT' }
          const byte = chunk[i] as number
          const reason = this.checkFixedHeader(byte)
          if (reason !== null) return close(reason)
          this.type = byte >> 4
          this.flags = byte & 0x0f
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
            if (this.lengthBytes === 4) return close('malformed remaining length (more than 4 bytes)')
            break
          }
          if (this.remaining + 1 + this.lengthBytes > this.maxPacketSize) {
            return close(`packet of ${this.remaining + 1 + this.lengthBytes} bytes exceeds the limit of ${this.maxPacketSize} bytes`)
          }
          const verdict = this.startBody()
          if (verdict !== null) return verdict
          break
        }
        case State.Body: {
          if (this.type === PUBLISH && this.collected === 0 && !this.publishTopicRead && chunk.length - i >= 2) {
            // The common case: topic and packet identifier within this chunk, checked in place.
            const qos = (this.flags >> 1) & 0x03
            const needed = 2 + chunk.readUInt16BE(i) + (qos > 0 ? 2 : 0)
            if (needed <= this.remaining && needed <= chunk.length - i) {
              if (!publishHeaderIsPlain(chunk, i, needed, qos)) {
                const verdict = checkPublish(chunk.subarray(i, i + needed), qos)
                if (verdict !== null) return verdict
              }
              this.publishTopicRead = true
              this.target = 0
            }
          }
          if (this.collected < this.target) {
            const wanted = Math.min(this.target - this.collected, this.remaining, chunk.length - i)
            const last = this.parts[this.parts.length - 1]
            if (last !== undefined && i >= last.length && last.buffer === chunk.buffer && last.byteOffset + last.length === chunk.byteOffset + i) {
              // contiguous with what was gathered from this chunk: one view, no copy later
              this.parts[this.parts.length - 1] = chunk.subarray(i - last.length, i + wanted)
            } else {
              this.parts.push(chunk.subarray(i, i + wanted))
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
            if (this.parts.length > 0) this.parts = []
          }
          break
        }
      }
    }
    return null
  }

  private checkFixedHeader (byte: number): string | null {
    const type = byte >> 4
    const flags = byte & 0x0f
    if (type === 0 || type === 15) return `reserved control packet type ${type}` // [MQTT-2.2.1]
    if (serverOnlyPackets.has(type)) return `control packet type ${type} may only be sent by a server`
    // The first packet is CONNECT [MQTT-3.1.0-1], and only the first [MQTT-3.1.0-2]
    if (!this.connectSeen && type !== CONNECT) return 'the first packet is not a CONNECT [MQTT-3.1.0-1]'
    if (this.connectSeen && type === CONNECT) return 'a second CONNECT [MQTT-3.1.0-2]'
    if (type === PUBLISH) {
      // A PUBLISH packet MUST NOT have both QoS bits set to 1 [MQTT-3.3.1-4]
      if ((flags & 0x06) === 0x06) return 'PUBLISH with QoS 3 [MQTT-3.3.1-4]'
      // The DUP flag MUST be set to 0 for all QoS 0 messages [MQTT-3.3.1-2]
      if ((flags & 0x06) === 0 && (flags & 0x08) !== 0) return 'PUBLISH with QoS 0 and DUP 1 [MQTT-3.3.1-2]'
      return null
    }
    // Reserved flags must be exactly as table 2.2 says, else close [MQTT-2.2.2-1] [MQTT-2.2.2-2]
    const expected = type === PUBREL || type === SUBSCRIBE || type === UNSUBSCRIBE ? 0x02 : 0x00
    if (flags !== expected) return `invalid fixed-header flags 0x${flags.toString(16)} for control packet type ${type} [MQTT-2.2.2-2]`
    return null
  }

  /** The remaining length is known: decides how much of the body to inspect. */
  private startBody (): GuardVerdict | null {
    if (this.parts.length > 0) this.parts = []
    this.collected = 0
    this.publishTopicRead = false
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
    const body = this.parts.length === 1 ? this.parts[0] as Buffer : Buffer.concat(this.parts)
    switch (this.type) {
      case CONNECT: return checkConnect(body)
      case PUBLISH: {
        if (!this.publishTopicRead) {
          this.publishTopicRead = true
          const length = this.remaining + this.collected
          if (body.length < 2) return close('PUBLISH without a topic name [MQTT-3.3.2-1]')
          const qos = (this.flags >> 1) & 0x03
          const needed = 2 + body.readUInt16BE(0) + (qos > 0 ? 2 : 0)
          if (needed > length) return close('PUBLISH shorter than its topic name and packet identifier')
          this.target = needed
          if (this.collected < this.target) return null
        }
        return checkPublish(body, (this.flags >> 1) & 0x03)
      }
      case PUBACK:
      case PUBREC:
      case PUBREL:
      case PUBCOMP:
        if (body.length !== 2) return close(`acknowledgement (type ${this.type}) with a remaining length of ${body.length}, not 2`)
        // it carries the non-zero identifier of its PUBLISH [MQTT-2.3.1-1] [MQTT-2.3.1-6]
        return body.readUInt16BE(0) === 0 ? close(`acknowledgement (type ${this.type}) with packet identifier 0 [MQTT-2.3.1-1]`) : null
      case SUBSCRIBE: return checkSubscribe(body, true)
      case UNSUBSCRIBE: return checkSubscribe(body, false)
      case PINGREQ:
      case DISCONNECT:
        if (body.length !== 0) return close(`${this.type === PINGREQ ? 'PINGREQ' : 'DISCONNECT'} with a remaining length of ${body.length}, not 0`)
        if (this.type === DISCONNECT) this.disconnectSeen = true
        return null
      default:
        return null
    }
  }
}

/** Reads MQTT's length-prefixed fields off a packet body; null when a field overruns it. */
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

  bytes (): Buffer | null {
    const length = this.uint16()
    if (length === null || this.pos + length > this.body.length) return null
    const value = this.body.subarray(this.pos, this.pos + length)
    this.pos += length
    return value
  }
}

/**
 * Why `bytes` is not an MQTT UTF-8 string: ill-formed UTF-8, including encoded surrogates
 * U+D800-U+DFFF [MQTT-1.5.3-1], or U+0000 [MQTT-1.5.3-2]. A BOM is kept as is [MQTT-1.5.3-3].
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

function checkPublish (body: Buffer, qos: number): GuardVerdict | null {
  const fields = new Fields(body)
  const topic = fields.bytes() as Buffer
  const bad = utf8Violation(topic)
  if (bad !== null) return close(`PUBLISH topic name: ${bad}`)
  const nameViolation = topicNameViolation(topic.toString('utf8'))
  if (nameViolation !== null) return close(`PUBLISH: ${nameViolation}`)
  if (qos > 0 && fields.uint16() === 0) return close('PUBLISH with QoS > 0 and packet identifier 0 [MQTT-2.3.1-1]')
  return null
}

function checkSubscribe (body: Buffer, subscribe: boolean): GuardVerdict | null {
  const what = subscribe ? 'SUBSCRIBE' : 'UNSUBSCRIBE'
  const fields = new Fields(body)
  const id = fields.uint16()
  if (id === null) return close(`${what} without a packet identifier`)
  if (id === 0) return close(`${what} with packet identifier 0 [MQTT-2.3.1-1]`)
  // at least one topic filter [MQTT-3.8.3-3] [MQTT-3.10.3-2]
  if (fields.done) return close(`${what} without topic filters [${subscribe ? 'MQTT-3.8.3-3' : 'MQTT-3.10.3-2'}]`)
  while (!fields.done) {
    const filter = fields.bytes()
    if (filter === null) return close(`${what}: malformed topic filter`)
    const bad = utf8Violation(filter)
    if (bad !== null) return close(`${what} topic filter: ${bad}`)
    const violation = topicFilterViolation(filter.toString('utf8'))
    if (violation !== null) return close(`${what}: ${violation}`)
    if (subscribe) {
      const options = fields.byte()
      if (options === null) return close('SUBSCRIBE: topic filter without its requested QoS')
      // reserved bits 7-2 zero, QoS 0, 1 or 2 [MQTT-3-8.3-4]
      if ((options & 0xfc) !== 0 || (options & 0x03) === 3) return close(`SUBSCRIBE: requested QoS byte 0x${options.toString(16)} [MQTT-3.8.3-4]`)
    }
  }
  return null
}

function checkConnect (body: Buffer): GuardVerdict | null {
  const fields = new Fields(body)
  const nameBytes = fields.bytes()
  if (nameBytes === null) return close('CONNECT without a protocol name')
  const name = nameBytes.toString('latin1')
  // An unknown protocol name: disconnect [MQTT-3.1.2-1]
  if (name !== 'MQTT' && name !== 'MQIsdp') return close(`protocol name ${JSON.stringify(name)} [MQTT-3.1.2-1]`)
  const level = fields.byte()
  if (level === null) return close('CONNECT without a protocol level')
  // MQTT 3.1.1 is "MQTT" level 4; MQTT 3.1 is "MQIsdp" level 3. Anything else is a level this
  // server does not support: CONNACK 0x01, then disconnect [MQTT-3.1.2-2]
  if (!(name === 'MQTT' && level === 4) && !(name === 'MQIsdp' && level === 3)) {
    return { action: 'refuse', returnCode: 1, reason: `protocol ${name} level ${level} is not supported [MQTT-3.1.2-2]` }
  }
  const flags = fields.byte()
  if (flags === null) return close('CONNECT without connect flags')
  // The reserved flag is zero [MQTT-3.1.2-3]
  if ((flags & 0x01) !== 0) return close('CONNECT reserved flag set [MQTT-3.1.2-3]')
  const clean = (flags & 0x02) !== 0
  const will = (flags & 0x04) !== 0
  const willQos = (flags >> 3) & 0x03
  const willRetain = (flags & 0x20) !== 0
  const password = (flags & 0x40) !== 0
  const username = (flags & 0x80) !== 0
  if (!will && willQos !== 0) return close('Will QoS set without the Will Flag [MQTT-3.1.2-13]')
  if (!will && willRetain) return close('Will Retain set without the Will Flag [MQTT-3.1.2-15]')
  if (willQos === 3) return close('Will QoS 3 [MQTT-3.1.2-14]')
  if (password && !username) return close('Password Flag set without the User Name Flag [MQTT-3.1.2-22]')
  if (fields.uint16() === null) return close('CONNECT without a keep alive')

  // The payload's fields, in this order [MQTT-3.1.3-1]
  const clientId = fields.bytes()
  if (clientId === null) return close('CONNECT without a client identifier [MQTT-3.1.3-3]')
  const badId = utf8Violation(clientId)
  if (badId !== null) return close(`client identifier: ${badId} [MQTT-3.1.3-4]`)
  if (will) {
    const topic = fields.bytes()
    if (topic === null) return close('Will Flag set without a Will Topic [MQTT-3.1.2-9]')
    const badTopic = utf8Violation(topic)
    if (badTopic !== null) return close(`Will Topic: ${badTopic} [MQTT-3.1.3-10]`)
    if (fields.bytes() === null) return close('Will Flag set without a Will Message [MQTT-3.1.2-9]')
  }
  if (username) {
    const user = fields.bytes()
    if (user === null) return close('User Name Flag set without a user name [MQTT-3.1.2-19]')
    const badUser = utf8Violation(user)
    if (badUser !== null) return close(`user name: ${badUser} [MQTT-3.1.3-11]`)
  }
  if (password && fields.bytes() === null) return close('Password Flag set without a password [MQTT-3.1.2-21]')
  // Bytes left over are fields whose flag is 0: a Will [MQTT-3.1.2-11], a user name
  // [MQTT-3.1.2-18] or a password [MQTT-3.1.2-20]
  if (!fields.done) return close('CONNECT carries fields its flags do not announce [MQTT-3.1.2-11] [MQTT-3.1.2-18] [MQTT-3.1.2-20]')

  // MQTT 3.1 (section 3.1, Client Identifier) requires 1 to 23 characters, else CONNACK 2; the
  // configured bound for all levels is the authenticate hook's (limits.ts, [MQTT-3.1.3-5])
  if (level === 3 && (clientId.length === 0 || [...clientId.toString('utf8')].length > 23)) {
    return { action: 'refuse', returnCode: 2, reason: 'MQTT 3.1 client identifiers are 1 to 23 characters' }
  }
  // A zero-byte client id needs CleanSession 1 [MQTT-3.1.3-8]
  if (clientId.length === 0 && !clean) return { action: 'refuse', returnCode: 2, reason: 'zero-byte client identifier with CleanSession 0 [MQTT-3.1.3-8]' }
  return null
}
