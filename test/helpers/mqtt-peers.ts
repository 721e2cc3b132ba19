// Stand-ins at the MQTT byte level for what the broker under test cannot play: a broker that
// refuses MQTT 5 as an older one does, and a scripted peer that records every packet a client
// sends, as bytes and parsed, and answers what the test says.
import { connect, createServer, type Server, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import type { Page } from 'playwright-core'
import type { Teardown } from './loopback.js'

/** Splits whole MQTT packets off the front of `buffer`; `rest` is an incomplete packet's start. */
export function splitPackets (buffer: Buffer): { packets: Buffer[], rest: Buffer } {
  const packets: Buffer[] = []
  let start = 0
  for (;;) {
    // fixed header: the type byte, then the Remaining Length, 7 bits a byte, low bits first
    let i = start + 1
    let length = 0
    let multiplier = 1
    let lengthRead = false
    while (i < buffer.length && !lengthRead) {
      const byte = buffer[i++] as number
      length += (byte & 0x7f) * multiplier
      multiplier *= 128
      lengthRead = (byte & 0x80) === 0
    }
    if (!lengthRead || i + length > buffer.length) break
    packets.push(buffer.subarray(start, i + length))
    start = i + length
  }
  return { packets, rest: buffer.subarray(start) }
}

/** The protocol level of a CONNECT packet's bytes (after its protocol name). */
export function connectLevel (connect: Buffer): number {
  let i = 1
  while (((connect[i] as number) & 0x80) !== 0) i++
  const nameLength = connect.readUInt16BE(i + 1)
  return connect[i + 3 + nameLength] as number
}

async function listen (t: Teardown, onSocket: (socket: Socket) => void): Promise<{ port: number, sockets: Set<Socket> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    onSocket(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { port: (server.address() as { port: number }).port, sockets }
}

/** CONNACK `reasonCode` as a broker that does not speak MQTT 5 answers a level-5 CONNECT [MQTT-3.1.2-2]: 0x01 in the 3.1.1 layout, 0x84 in the MQTT 5 one. */
function versionRefusal (reasonCode: 0x01 | 0x84): Buffer {
  return Buffer.from(reasonCode === 0x01 ? [0x20, 0x02, 0x00, 0x01] : [0x20, 0x03, 0x00, 0x84, 0x00])
}

export interface VersionRefusingPeer {
  port: number
  /** The protocol level of every CONNECT received, in order. */
  levels: number[]
  /** Drops every connection, as a network failure would. */
  drop: () => void
}

/**
 * An older broker's stand-in, in front of a real broker on `upstreamPort`: a CONNECT at
 * protocol level 5 gets CONNACK `reasonCode` and the close [MQTT-3.1.2-2]; 0x01 in the 3.1.1
 * layout (`20 02 00 01`, as a 3.1.1 broker answers), 0x84 in the MQTT 5 one. Any other
 * connection is passed through to the broker untouched.
 */
export async function startVersionRefusingPeer (t: Teardown, upstreamPort: number, reasonCode: 0x01 | 0x84 = 0x01): Promise<VersionRefusingPeer> {
  const levels: number[] = []
  const { port, sockets } = await listen(t, (client) => {
    let buffered: Buffer = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk])
      const first = splitPackets(buffered).packets[0]
      if (first === undefined) return
      client.off('data', onData)
      const level = connectLevel(first)
      levels.push(level)
      if (level === 5) {
        client.end(versionRefusal(reasonCode))
        return
      }
      const upstream = connect(upstreamPort, '127.0.0.1')
      upstream.on('error', () => client.destroy())
      upstream.write(buffered)
      client.pipe(upstream)
      upstream.pipe(client)
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
    }
    client.on('data', onData)
  })
  return { port, levels, drop: () => { for (const socket of sockets) socket.destroy() } }
}

/**
 * The same stand-in inside a browser page: the page's WebSockets to the broker's `path` are
 * routed through it (playwright's routeWebSocket, so the page's origin and CSP are unchanged).
 * Returns the protocol level of every CONNECT, in order.
 */
export async function refuseMqtt5InPage (page: Page, path: string, reasonCode: 0x01 | 0x84 = 0x01): Promise<number[]> {
  const levels: number[] = []
  await page.routeWebSocket((url) => url.pathname === path, (ws) => {
    const server = ws.connectToServer()
    let buffered: Buffer = Buffer.alloc(0)
    let passing = false
    ws.onMessage((message) => {
      const bytes = typeof message === 'string' ? Buffer.from(message) : message
      if (passing) {
        server.send(bytes)
        return
      }
      buffered = Buffer.concat([buffered, bytes])
      const first = splitPackets(buffered).packets[0]
      if (first === undefined) return
      const level = connectLevel(first)
      levels.push(level)
      if (level === 5) {
        ws.send(versionRefusal(reasonCode))
        void ws.close()
        return
      }
      passing = true
      server.send(buffered)
    })
  })
  return levels
}

export interface PeerConnection {
  /** Every packet received, in order: its bytes and what mqtt-packet parses of them. */
  received: Array<{ bytes: Buffer, packet: Packet }>
  /** The CONNECT's protocol level: the layout of every later packet both ways. */
  level: number
  /** Writes `packet`, generated in the connection's layout. */
  send: (packet: Packet) => void
  socket: Socket
}

/**
 * A scripted MQTT peer: `onPacket` sees each packet a client sends (the CONNECT first) and
 * answers through the connection, or not at all.
 */
export async function startScriptedPeer (t: Teardown, onPacket: (connection: PeerConnection, packet: Packet, bytes: Buffer) => void): Promise<{ port: number, connections: PeerConnection[] }> {
  const connections: PeerConnection[] = []
  const { port } = await listen(t, (socket) => {
    const connection: PeerConnection = {
      received: [],
      level: 4,
      socket,
      send: (packet) => { socket.write(mqttPacket.generate(packet, { protocolVersion: connection.level })) }
    }
    connections.push(connection)
    let buffered: Buffer = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      const { packets, rest } = splitPackets(Buffer.concat([buffered, chunk]))
      buffered = rest
      for (const bytes of packets) {
        if (connection.received.length === 0) connection.level = connectLevel(bytes)
        const parser = mqttPacket.parser({ protocolVersion: connection.level })
        let parsed: Packet | undefined
        parser.on('packet', (packet: Packet) => { parsed = packet })
        parser.on('error', (err: Error) => { throw err })
        parser.parse(bytes)
        if (parsed === undefined) throw new Error(`could not parse ${bytes.toString('hex')}`)
        connection.received.push({ bytes, packet: parsed })
        onPacket(connection, parsed, bytes)
      }
    })
  })
  return { port, connections }
}
