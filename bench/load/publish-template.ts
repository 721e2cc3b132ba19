// Pre-encoded PUBLISH packets. mqtt-packet encodes one packet once; copies of its bytes are
// then patched in place (message id, send timestamp), so the generator spends its time on
// writes, not on encoding.
import { generate } from 'mqtt-packet'
import type { ProtocolVersion } from './bench-client.js'

export type QoS = 0 | 1

export class PublishTemplate {
  readonly bytes: Buffer
  /** Where the 2-byte message id is (QoS 1), and where the payload starts. */
  private readonly messageIdOffset: number
  readonly payloadOffset: number

  /** v5: the packet carries an empty properties block (one byte after the message id). */
  constructor (readonly topic: string, payloadSize: number, readonly qos: QoS, protocolVersion: ProtocolVersion, retain = false) {
    // At least 8 bytes: room for a float64 send timestamp.
    const payload = Buffer.alloc(Math.max(payloadSize, 8), 0x61)
    this.bytes = generate({ cmd: 'publish', topic, payload, qos, retain, dup: false, messageId: qos > 0 ? 1 : undefined }, { protocolVersion })
    this.payloadOffset = this.bytes.length - payload.length
    this.messageIdOffset = this.payloadOffset - 2 - (protocolVersion === 5 ? 1 : 0)
  }

  get length (): number {
    return this.bytes.length
  }

  /** `count` back-to-back copies: one buffer to write again and again (QoS 0 floods). */
  repeated (count: number): Buffer {
    const batch = Buffer.allocUnsafe(this.bytes.length * count)
    for (let i = 0; i < count; i++) this.bytes.copy(batch, i * this.bytes.length)
    return batch
  }

  /** Copies the packet into `target` at `at` with this message id (QoS 1) and timestamp. */
  writeInto (target: Buffer, at: number, messageId: number, sentAtMs?: number): void {
    this.bytes.copy(target, at)
    if (this.qos > 0) target.writeUInt16BE(messageId, at + this.messageIdOffset)
    if (sentAtMs !== undefined) target.writeDoubleLE(sentAtMs, at + this.payloadOffset)
  }
}

/** Reads the send timestamp a template wrote at the start of a payload. */
export function readSentAt (buffer: Buffer, payloadStart: number): number {
  return buffer.readDoubleLE(payloadStart)
}
