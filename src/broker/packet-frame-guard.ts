// Scans the MQTT fixed headers of an inbound byte stream before Aedes parses it, so that a
// packet that is too large or malformed closes its connection before it is buffered.
// Only header bytes are inspected; payload bytes are skipped by count, so the cost is tiny.

const enum State { PacketType, RemainingLength, Body }

// Control packet types (MQTT 3.1.1 table 2.1)
const PUBLISH = 3
const PUBREL = 6
const SUBSCRIBE = 8
const UNSUBSCRIBE = 10

// Packets only a server sends: a client that sends one is in breach of the protocol.
const serverOnlyPackets = new Set([2 /* CONNACK */, 9 /* SUBACK */, 11 /* UNSUBACK */, 13 /* PINGRESP */])

export class PacketFrameGuard {
  private state = State.PacketType
  private remaining = 0
  private multiplier = 1
  private lengthBytes = 0

  constructor (private readonly maxPacketSize: number) {}

  /** Advances over `chunk`; returns why the stream must be closed, or null when it is fine. */
  scan (chunk: Buffer): string | null {
    let i = 0
    while (i < chunk.length) {
      switch (this.state) {
        case State.PacketType: {
          const reason = checkFixedHeader(chunk[i] as number)
          if (reason !== null) return reason
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
            if (this.lengthBytes === 4) return 'malformed remaining length (more than 4 bytes)'
            break
          }
          if (this.remaining + 1 + this.lengthBytes > this.maxPacketSize) {
            return `packet of ${this.remaining + 1 + this.lengthBytes} bytes exceeds the limit of ${this.maxPacketSize} bytes`
          }
          this.state = this.remaining === 0 ? State.PacketType : State.Body
          break
        }
        case State.Body: {
          const skip = Math.min(this.remaining, chunk.length - i)
          i += skip
          this.remaining -= skip
          if (this.remaining === 0) this.state = State.PacketType
          break
        }
      }
    }
    return null
  }
}

function checkFixedHeader (byte: number): string | null {
  const type = byte >> 4
  const flags = byte & 0x0f
  if (type === 0 || type === 15) return `reserved control packet type ${type}` // [MQTT-2.2.1]
  if (serverOnlyPackets.has(type)) return `control packet type ${type} may only be sent by a server`
  if (type === PUBLISH) {
    // A PUBLISH packet MUST NOT have both QoS bits set to 1 [MQTT-3.3.1-4]
    if ((flags & 0x06) === 0x06) return 'PUBLISH with QoS 3'
    return null
  }
  // Reserved flags must be exactly as table 2.2 says, else close [MQTT-2.2.2-1] [MQTT-2.2.2-2]
  const expected = type === PUBREL || type === SUBSCRIBE || type === UNSUBSCRIBE ? 0x02 : 0x00
  if (flags !== expected) return `invalid fixed-header flags 0x${flags.toString(16)} for control packet type ${type}`
  return null
}
