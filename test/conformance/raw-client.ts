// A raw MQTT client for conformance tests: it sends exactly the bytes it is given (packets
// built with mqtt-packet, or by hand where mqtt-packet cannot express them), parses what the
// broker sends with mqtt-packet's parser, and reports when the connection closes. Every wait
// is bounded.
import type { Duplex } from 'node:stream'
import mqttPacket, { type IConnackPacket, type IConnectPacket, type IPublishPacket, type ISubackPacket, type ISubscribePacket, type ISubscription, type Packet, type QoS } from 'mqtt-packet'
import { WebSocket, createWebSocketStream } from 'ws'
import type { Teardown } from '../helpers/loopback.js'
import { rawTcpSocket } from '../helpers/raw-clients.js'

export const defaultWaitMs = 2000

export type ConnectOptions = Partial<Omit<IConnectPacket, 'cmd'>>

/** The protocol levels the raw client speaks: MQTT 3.1.1 (4) or MQTT 5.0 (5). */
export type ProtocolLevel = 4 | 5

/** Bytes of a packet: mqtt-packet's encoding of `packet` (MQTT 3.1.1 unless `level` is 5). */
export function encode (packet: Packet, level: ProtocolLevel = 4): Buffer {
  return level === 5 ? mqttPacket.generate(packet, { protocolVersion: 5 }) : mqttPacket.generate(packet)
}

/** A CONNECT packet (MQTT 3.1.1 unless `level` is 5) with a fresh client id unless `options` names one. */
export function connectPacket (options: ConnectOptions = {}, level: ProtocolLevel = 4): IConnectPacket {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: level, clean: true, keepalive: 0, clientId: uniqueId('raw'), ...options }
}

let counter = 0
/** A client id or topic level unique within this process. */
export function uniqueId (prefix = 'c'): string {
  counter++
  return `${prefix}${process.pid.toString(36)}${counter.toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`
}

/** An MQTT string: two length bytes, then the bytes. */
export function mqttString (value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  const length = Buffer.alloc(2)
  length.writeUInt16BE(bytes.length)
  return Buffer.concat([length, bytes])
}

/** The bytes of a variable-length integer: a remaining length, or an MQTT 5 Variable Byte Integer. */
export function varInt (value: number): number[] {
  const bytes: number[] = []
  let n = value
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    bytes.push(byte)
  } while (n > 0)
  return bytes
}

/** A packet from its first byte and its body, with the remaining length encoded. */
export function rawPacket (firstByte: number, ...body: Array<Buffer | number[]>): Buffer {
  const payload = Buffer.concat(body.map((b) => Buffer.isBuffer(b) ? b : Buffer.from(b)))
  return Buffer.concat([Buffer.from([firstByte, ...varInt(payload.length)]), payload])
}

/** A hand-made CONNECT: protocol name/level, flags and payload fields given as they are. */
export function rawConnect ({ protocolName = 'MQTT', level = 4, flags = 0x02, keepalive = 0, payload = [mqttString(uniqueId('raw'))] }: {
  protocolName?: string
  level?: number
  flags?: number
  keepalive?: number
  payload?: Buffer[]
} = {}): Buffer {
  const keep = Buffer.alloc(2)
  keep.writeUInt16BE(keepalive)
  return rawPacket(0x10, mqttString(protocolName), [level, flags], keep, ...payload)
}

export class RawClient {
  readonly received: Packet[] = []
  closed = false
  private readonly waiters = new Set<() => void>()
  private parseError: Error | null = null

  /** `level` 5: packets are sent and read in the MQTT 5.0 layout, CONNECT says level 5. */
  private constructor (private readonly stream: Duplex, readonly level: ProtocolLevel = 4) {
    const parser = mqttPacket.parser({ protocolVersion: level })
    parser.on('packet', (packet: Packet) => {
      this.received.push(packet)
      this.wake()
    })
    parser.on('error', (err: Error) => {
      this.parseError = err
      this.wake()
    })
    stream.on('data', (chunk: Buffer) => parser.parse(chunk))
    const onClose = (): void => {
      this.closed = true
      this.wake()
    }
    stream.on('close', onClose)
    stream.on('end', onClose)
    stream.on('error', onClose)
  }

  /** Opens a TCP connection to the broker's MQTT port, speaking MQTT `level`. */
  static async tcp (t: Teardown, port: number, level: ProtocolLevel = 4): Promise<RawClient> {
    const socket = await rawTcpSocket(port, t)
    socket.setNoDelay(true)
    return new RawClient(socket, level)
  }

  /** Opens a WebSocket connection offering `protocols` (default: the `mqtt` subprotocol), speaking MQTT `level`. */
  static async websocket (t: Teardown, url: string, protocols: string[] = ['mqtt'], level: ProtocolLevel = 4): Promise<{ client: RawClient, ws: WebSocket }> {
    const ws = new WebSocket(url, protocols)
    t.teardown(() => ws.terminate())
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
      ws.once('unexpected-response', () => reject(new Error('WebSocket upgrade refused')))
    })
    return { client: new RawClient(createWebSocketStream(ws), level), ws }
  }

  /** Sends raw bytes, or a packet encoded by mqtt-packet. */
  send (data: Buffer | Packet): this {
    this.stream.write(Buffer.isBuffer(data) ? data : encode(data, this.level))
    return this
  }

  /** Sends CONNECT and resolves with the CONNACK; fails if anything else comes first. */
  async connect (options: ConnectOptions = {}, ms = defaultWaitMs): Promise<IConnackPacket> {
    this.send(connectPacket(options, this.level))
    return await this.expect('connack', ms)
  }

  /** The next packet received (the first not consumed yet), whatever it is. */
  async next (ms = defaultWaitMs): Promise<Packet> {
    const deadline = Date.now() + ms
    for (;;) {
      const packet = this.received.shift()
      if (packet !== undefined) return packet
      if (this.parseError !== null) throw new Error(`the broker sent a malformed packet: ${this.parseError.message}`)
      if (this.closed) throw new Error('connection closed while waiting for a packet')
      if (!await this.wait(deadline)) throw new Error(`no packet within ${ms} ms`)
    }
  }

  /** The next packet, which must be a `cmd` packet. */
  async expect<C extends Packet['cmd']> (cmd: C, ms = defaultWaitMs): Promise<Extract<Packet, { cmd: C }>> {
    const packet = await this.next(ms)
    if (packet.cmd !== cmd) throw new Error(`expected ${cmd}, got ${packet.cmd} ${JSON.stringify(summary(packet))}`)
    return packet as Extract<Packet, { cmd: C }>
  }

  /** Collects the packets that arrive within `ms`. */
  async drain (ms: number): Promise<Packet[]> {
    const deadline = Date.now() + ms
    while (await this.wait(deadline)) { /* keep collecting */ }
    return this.received.splice(0)
  }

  /** Resolves true once the connection is closed by the broker, false after `ms`. */
  async closedWithin (ms = defaultWaitMs): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!this.closed) {
      if (!await this.wait(deadline)) return this.closed
    }
    return true
  }

  /** Closes the connection from this side (no DISCONNECT). */
  destroy (): void {
    this.stream.destroy()
  }

  /** Sends DISCONNECT and waits for the broker to close the connection. */
  async disconnect (): Promise<void> {
    this.send({ cmd: 'disconnect' })
    await this.closedWithin()
  }

  private nextId = 1
  /** A fresh, non-zero packet identifier. */
  packetId (): number {
    const id = this.nextId
    this.nextId = this.nextId === 65535 ? 1 : this.nextId + 1
    return id
  }

  /** SUBSCRIBE, and the return codes of its SUBACK (which must carry the same packet identifier). */
  async subscribe (filters: Record<string, QoS>, messageId = this.packetId()): Promise<number[]> {
    this.send({ cmd: 'subscribe', messageId, subscriptions: Object.entries(filters).map(([topic, qos]) => ({ topic, qos })) })
    const suback = await this.expect('suback')
    if (suback.messageId !== messageId) throw new Error(`SUBACK for ${suback.messageId}, not ${messageId}`)
    return suback.granted as number[]
  }

  /** SUBSCRIBE with subscription options (and properties, MQTT 5), and its SUBACK (which must carry the same packet identifier). */
  async subscribeWith (subscriptions: ISubscription[], properties?: ISubscribePacket['properties'], messageId = this.packetId()): Promise<ISubackPacket> {
    this.send({ cmd: 'subscribe', messageId, subscriptions, ...(properties === undefined ? {} : { properties }) })
    const suback = await this.expect('suback')
    if (suback.messageId !== messageId) throw new Error(`SUBACK for ${suback.messageId}, not ${messageId}`)
    return suback
  }

  /** UNSUBSCRIBE, and waits for the UNSUBACK with the same packet identifier. */
  async unsubscribe (filters: string[], messageId = this.packetId()): Promise<void> {
    this.send({ cmd: 'unsubscribe', messageId, unsubscriptions: filters })
    const unsuback = await this.expect('unsuback')
    if (unsuback.messageId !== messageId) throw new Error(`UNSUBACK for ${unsuback.messageId}, not ${messageId}`)
  }

  /** PUBLISH and its whole handshake: PUBACK for QoS 1, PUBREC/PUBREL/PUBCOMP for QoS 2. */
  async publish (topic: string, payload: string | Buffer, { qos = 0, retain = false, messageId }: { qos?: QoS, retain?: boolean, messageId?: number } = {}): Promise<void> {
    const id = qos > 0 ? messageId ?? this.packetId() : undefined
    this.send({ cmd: 'publish', topic, payload, qos, retain, dup: false, ...(id === undefined ? {} : { messageId: id }) })
    if (qos === 1) {
      await this.expectAck('puback', id as number)
    } else if (qos === 2) {
      await this.expectAck('pubrec', id as number)
      this.send({ cmd: 'pubrel', messageId: id as number })
      await this.expectAck('pubcomp', id as number)
    }
  }

  /**
   * Waits for the acknowledgement `cmd` of packet `messageId`. PUBLISH packets arriving
   * meanwhile (e.g. the client's own message) are left for later reads.
   */
  async expectAck (cmd: 'puback' | 'pubrec' | 'pubcomp' | 'pubrel', messageId: number, ms = defaultWaitMs): Promise<void> {
    const deadline = Date.now() + ms
    const aside: Packet[] = []
    try {
      for (;;) {
        const packet = await this.next(Math.max(1, deadline - Date.now()))
        if (packet.cmd === cmd && packet.messageId === messageId) return
        if (packet.cmd !== 'publish') throw new Error(`expected ${cmd} ${messageId}, got ${JSON.stringify(summary(packet))}`)
        aside.push(packet)
      }
    } finally {
      this.received.unshift(...aside)
    }
  }

  /** Acknowledges a PUBLISH the broker sent: PUBACK, or PUBREC then PUBCOMP once PUBREL comes. */
  async ack (packet: IPublishPacket): Promise<void> {
    if (packet.qos === 1) this.send({ cmd: 'puback', messageId: packet.messageId as number })
    if (packet.qos === 2) {
      this.send({ cmd: 'pubrec', messageId: packet.messageId as number })
      await this.expectAck('pubrel', packet.messageId as number)
      this.send({ cmd: 'pubcomp', messageId: packet.messageId as number })
    }
  }

  /** The PUBLISH packets that arrive within `ms`, each acknowledged (`ack`, the default) or not. */
  async messages (ms: number, { ack = true } = {}): Promise<IPublishPacket[]> {
    const deadline = Date.now() + ms
    const out: IPublishPacket[] = []
    for (;;) {
      const left = deadline - Date.now()
      if (left <= 0) return out
      let packet: Packet
      try {
        packet = await this.next(left)
      } catch (err) {
        if (this.closed) throw err
        return out
      }
      if (packet.cmd !== 'publish') throw new Error(`expected publish, got ${JSON.stringify(summary(packet))}`)
      out.push(packet)
      if (ack) await this.ack(packet)
    }
  }

  /** Waits until `count` PUBLISH packets arrived (acknowledging them unless told not to). */
  async nextMessages (count: number, { ack = true, ms = defaultWaitMs } = {}): Promise<IPublishPacket[]> {
    const out: IPublishPacket[] = []
    while (out.length < count) {
      const packet = await this.expect('publish', ms)
      out.push(packet)
      if (ack) await this.ack(packet)
    }
    return out
  }

  private wake (): void {
    for (const waiter of this.waiters) waiter()
    this.waiters.clear()
  }

  /** Waits for something to happen; false when the deadline passed first. */
  private async wait (deadline: number): Promise<boolean> {
    const ms = deadline - Date.now()
    if (ms <= 0) return false
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(wake)
        resolve(false)
      }, ms)
      const wake = (): void => {
        clearTimeout(timer)
        resolve(true)
      }
      this.waiters.add(wake)
    })
  }
}

/** The fields of a packet worth printing in a failure message. */
export function summary (packet: Packet): Record<string, unknown> {
  const { cmd } = packet
  const out: Record<string, unknown> = { cmd }
  for (const key of ['returnCode', 'reasonCode', 'sessionPresent', 'messageId', 'topic', 'qos', 'dup', 'retain', 'granted', 'properties'] as const) {
    if (key in packet) out[key] = (packet as unknown as Record<string, unknown>)[key]
  }
  if ('payload' in packet && packet.payload !== undefined && packet.payload !== null) out.payload = packet.payload.toString()
  return out
}
