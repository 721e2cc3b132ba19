// A minimal MQTT 3.1.1 or 5 client for load generation: CONNECT, SUBSCRIBE and DISCONNECT are
// encoded by mqtt-packet (v5: without properties, as a client that uses no v5 feature sends them); PUBLISH bytes come pre-encoded from the caller; received QoS 1
// messages are acknowledged in one write per received chunk.
import { generate, parser as createParser, type Packet, type QoS } from 'mqtt-packet'
import { FrameReader } from './frame-reader.js'
import { openWire, type Wire, type WireAddress } from './wire.js'

/** MQTT 3.1.1 (protocol level 4) or MQTT 5. */
export type ProtocolVersion = 4 | 5

export interface ConnectOptions {
  address: WireAddress
  protocolVersion: ProtocolVersion
  clientId: string
  keepaliveS?: number
  username?: string
  password?: string
  timeoutMs: number
}

type PublishHandler = (buffer: Buffer, payloadStart: number, payloadEnd: number, retain: boolean) => void

interface Waiter {
  cmd: Packet['cmd']
  resolve: (packet: Packet) => void
  reject: (err: Error) => void
}

export class BenchClient {
  /** Called for each PUBLISH received. */
  onPublish: PublishHandler = () => {}
  /** Called for each PUBACK received (this client published at QoS 1). */
  onPuback: (messageId: number) => void = () => {}
  /** Called after each received chunk is handled: a point to top up publishing. */
  afterData: () => void = () => {}
  /** Called when the wire can take more after send() returned false. */
  onDrain: () => void = () => {}

  private readonly waiters: Waiter[] = []
  private readonly controlParser: ReturnType<typeof createParser>
  private pendingAcks: number[] = []
  private closeReason: string | null = null

  private constructor (private readonly wire: Wire, readonly clientId: string, private readonly protocolVersion: ProtocolVersion) {
    this.controlParser = createParser({ protocolVersion })
    const reader = new FrameReader(protocolVersion, {
      publish: (buffer, start, end, qos, messageId, retain) => {
        if (qos === 1) this.pendingAcks.push(messageId)
        this.onPublish(buffer, start, end, retain)
      },
      puback: (messageId) => this.onPuback(messageId),
      control: (packet) => this.controlParser.parse(packet)
    })
    this.controlParser.on('packet', (packet: Packet) => this.settle(packet))
    // A malformed packet from the broker ends this connection, not the harness.
    this.controlParser.on('error', () => wire.destroy())
    wire.onData = (chunk) => {
      try {
        reader.push(chunk)
      } catch {
        wire.destroy()
        return
      }
      if (this.pendingAcks.length > 0) this.flushAcks()
      this.afterData()
    }
    wire.onDrain = () => this.onDrain()
    wire.onClose = (reason) => {
      this.closeReason = reason
      for (const waiter of this.waiters.splice(0)) waiter.reject(new Error(`${clientId}: ${reason} while waiting for ${waiter.cmd}`))
    }
  }

  static async connect (options: ConnectOptions): Promise<BenchClient> {
    const wire = await openWire(options.address, options.timeoutMs)
    const client = new BenchClient(wire, options.clientId, options.protocolVersion)
    const connack = client.expect('connack', options.timeoutMs)
    wire.send(generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: options.protocolVersion,
      clientId: options.clientId,
      clean: true,
      keepalive: options.keepaliveS ?? 0,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: Buffer.from(options.password) })
    }))
    try {
      const packet = await connack
      const code = packet.cmd === 'connack' ? packet.returnCode ?? packet.reasonCode ?? 0 : -1
      if (code !== 0) throw new Error(`${options.clientId}: CONNACK return code ${code}`)
    } catch (err) {
      wire.destroy()
      throw err
    }
    return client
  }

  get closed (): boolean {
    return this.wire.closed
  }

  /** Why the connection closed, if it has. */
  get closedBecause (): string | null {
    return this.closeReason
  }

  async subscribe (filter: string, qos: QoS, timeoutMs: number): Promise<void> {
    const suback = this.expect('suback', timeoutMs)
    this.wire.send(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] }, { protocolVersion: this.protocolVersion }))
    const packet = await suback
    const granted = packet.cmd === 'suback' ? packet.granted[0] : undefined
    if (granted !== qos) throw new Error(`${this.clientId}: SUBACK for ${filter} granted ${String(granted)}, wanted ${qos}`)
  }

  /** Sends bytes (usually pre-encoded PUBLISH packets); false means wait for onDrain. */
  send (bytes: Buffer): boolean {
    return this.wire.send(bytes)
  }

  /** Sends DISCONNECT and closes: for clients that end normally. */
  disconnect (): void {
    if (this.wire.closed) return
    this.wire.send(disconnectPacket)
    this.wire.destroy()
  }

  destroy (): void {
    this.wire.destroy()
  }

  /** Resolves with the next packet of this kind; rejects on timeout or close. */
  private expect (cmd: Packet['cmd'], timeoutMs: number): Promise<Packet> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(waiter)
        if (index >= 0) this.waiters.splice(index, 1)
        reject(new Error(`${this.clientId}: no ${cmd} within ${timeoutMs} ms`))
      }, timeoutMs)
      const waiter: Waiter = {
        cmd,
        resolve: (packet) => { clearTimeout(timer); resolve(packet) },
        reject: (err) => { clearTimeout(timer); reject(err) }
      }
      if (this.closeReason !== null) waiter.reject(new Error(`${this.clientId}: ${this.closeReason}`))
      else this.waiters.push(waiter)
    })
  }

  private settle (packet: Packet): void {
    const index = this.waiters.findIndex((w) => w.cmd === packet.cmd)
    if (index < 0) return
    const [waiter] = this.waiters.splice(index, 1)
    waiter?.resolve(packet)
  }

  // A 2-byte PUBACK is a v5 success too: reason code and properties may be left out [MQTT-3.4.2-1]
  private flushAcks (): void {
    const acks = Buffer.allocUnsafe(this.pendingAcks.length * 4)
    let at = 0
    for (const messageId of this.pendingAcks) {
      acks[at] = 0x40 // PUBACK, remaining length 2
      acks[at + 1] = 2
      acks.writeUInt16BE(messageId, at + 2)
      at += 4
    }
    this.pendingAcks = []
    this.wire.send(acks)
  }
}

const disconnectPacket = generate({ cmd: 'disconnect' })
