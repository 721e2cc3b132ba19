// Streaming MQTT framer for the receiving side of the load generator. It finds packet
// boundaries in each chunk and decodes PUBLISH and PUBACK in place (no object per message),
// because a subscriber may have to keep up with a broker's full output; the rare control
// packets (CONNACK, SUBACK, ...) are handed on whole, for mqtt-packet's parser.
import type { ProtocolVersion } from './bench-client.js'

const PUBLISH = 3
const PUBACK = 4

export interface FrameHandlers {
  /** A PUBLISH: its payload is buffer[payloadStart, payloadEnd). */
  publish: (buffer: Buffer, payloadStart: number, payloadEnd: number, qos: number, messageId: number, retain: boolean) => void
  puback: (messageId: number) => void
  /** Any other packet, whole (fixed header included). */
  control: (packet: Buffer) => void
}

export class FrameReader {
  private carry: Buffer | null = null

  /** MQTT 5 puts a properties block between a PUBLISH's packet id and its payload. */
  private readonly publishHasProperties: boolean

  constructor (protocolVersion: ProtocolVersion, private readonly handlers: FrameHandlers) {
    this.publishHasProperties = protocolVersion === 5
  }

  push (chunk: Buffer): void {
    const buffer = this.carry === null ? chunk : Buffer.concat([this.carry, chunk])
    this.carry = null
    let offset = 0
    while (offset < buffer.length) {
      const end = this.dispatch(buffer, offset)
      if (end < 0) break
      offset = end
    }
    // A packet cut by the chunk boundary waits for the next chunk.
    if (offset < buffer.length) this.carry = Buffer.from(buffer.subarray(offset))
  }

  /** Handles the packet at `start`; returns where the next one starts, or -1 if incomplete. */
  private dispatch (buffer: Buffer, start: number): number {
    let length = 0
    let multiplier = 1
    let i = start + 1
    for (;;) {
      if (i >= buffer.length) return -1
      const byte = buffer[i++] as number
      length += (byte & 0x7f) * multiplier
      if ((byte & 0x80) === 0) break
      multiplier *= 128
      if (i - start > 5) throw new Error('malformed remaining length from broker')
    }
    const end = i + length
    if (end > buffer.length) return -1
    const header = buffer[start] as number
    const type = header >> 4
    if (type === PUBLISH) {
      const qos = (header >> 1) & 3
      const topicLength = buffer.readUInt16BE(i)
      let payloadStart = i + 2 + topicLength
      let messageId = 0
      if (qos > 0) {
        messageId = buffer.readUInt16BE(payloadStart)
        payloadStart += 2
      }
      if (this.publishHasProperties) payloadStart = skipVariableByteInteger(buffer, payloadStart)
      this.handlers.publish(buffer, payloadStart, end, qos, messageId, (header & 1) === 1)
    } else if (type === PUBACK) {
      this.handlers.puback(buffer.readUInt16BE(i))
    } else {
      this.handlers.control(buffer.subarray(start, end))
    }
    return end
  }
}

/** Reads the Variable Byte Integer at `at` (a v5 property length) and returns where what it counts ends. */
function skipVariableByteInteger (buffer: Buffer, at: number): number {
  let value = 0
  let multiplier = 1
  let i = at
  for (;;) {
    const byte = buffer[i++] as number
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) return i + value
    multiplier *= 128
    if (i - at > 4) throw new Error('malformed property length from broker')
  }
}
