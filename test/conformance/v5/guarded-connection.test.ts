// How a guarded connection carries out the guard's MQTT 5 verdicts, over real TCP: a client
// socket on one side; on the other a guarded socket (TCP and TLS listeners) or a
// GuardedConnection around the socket (the WebSocket listener's wrapper), read and written by a
// stand-in for Aedes that answers CONNECT with CONNACK when told to. No Aedes: its MQTT 5
// handling comes with Aedes 2.
import { createServer, connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import mqttPacket, { type Packet } from 'mqtt-packet'
import t from 'tap'
import { authPacketEvent, GuardedConnection, guardSocket } from '../../../src/broker/protocol/guarded-connection.js'
import type { Tap } from '../targets.js'

const v5 = (packet: Packet): Buffer => mqttPacket.generate(packet, { protocolVersion: 5 })
const connect5 = (properties: Record<string, unknown> = {}): Buffer => v5({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: 'conn5', properties } as Packet)
const connack5 = Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00])
const badPublish = v5({ cmd: 'publish', topic: 'a', payload: 'p', qos: 0, retain: false, dup: false, properties: { topicAlias: 0 } })
const outputLimits = { maxBytes: 1024 * 1024, drainTimeoutMs: 0 }

interface Harness {
  client: Socket
  /** The guarded connection Aedes would read and write. */
  connection: Duplex
  /** What reached Aedes. */
  aedes: Buffer[]
  /** What the client received, once the connection closed. */
  closed: Promise<Buffer>
}

/** A client connected to a guarded connection of `kind`; `answerConnect` makes the stand-in send CONNACK on the first bytes it reads. */
async function harness (t: Tap, kind: 'socket' | 'wrapped', { answerConnect = true } = {}): Promise<Harness> {
  const aedes: Buffer[] = []
  let connection: Duplex | undefined
  const server = createServer((socket) => {
    connection = kind === 'socket' ? guardSocket(socket, 1024 * 1024, outputLimits) : new GuardedConnection(socket, 1024 * 1024, outputLimits)
    const guarded = connection
    guarded.on('error', () => {})
    guarded.on('data', (chunk: Buffer) => {
      if (aedes.length === 0 && answerConnect) guarded.write(connack5)
      aedes.push(chunk)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const port = (server.address() as { port: number }).port
  const client = connect(port, '127.0.0.1')
  t.teardown(() => client.destroy())
  await new Promise<void>((resolve) => client.once('connect', resolve))
  const received: Buffer[] = []
  client.on('data', (chunk: Buffer) => received.push(chunk))
  const closed = new Promise<Buffer>((resolve) => client.once('close', () => resolve(Buffer.concat(received))))
  while (connection === undefined) await new Promise((resolve) => setImmediate(resolve))
  return { client, connection, aedes, closed }
}

const within = async <T>(promise: Promise<T>, ms = 3000): Promise<T | 'timeout'> =>
  await Promise.race([promise, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms).unref())])

const hex = (bytes: Buffer | 'timeout'): string => bytes === 'timeout' ? 'still open' : bytes.toString('hex')

const kinds = ['socket', 'wrapped'] as const

t.test('[MQTT-3.2.2-6] [MQTT-3.2.2-7] [MQTT-3.1.4-6] a refused v5 CONNECT gets a v5 CONNACK with its reason code, then the close; nothing after it reaches Aedes', async (t) => {
  for (const kind of kinds) {
    await t.test(kind, async (t) => {
      const { client, aedes, closed } = await harness(t, kind)
      client.write(Buffer.concat([connect5({ receiveMaximum: 0 }), v5({ cmd: 'pingreq' })]))
      t.equal(hex(await within(closed)), '2003008200', 'CONNACK: Session Present 0, reason code 0x82, no properties; then closed')
      t.same(aedes, [], 'Aedes saw nothing')
    })
  }
})

t.test('[MQTT-4.13.1-1] [MQTT-3.14.4-1] after the CONNACK, a v5 packet breaking a rule gets a DISCONNECT with its reason code, after what Aedes wrote and with nothing after it', async (t) => {
  for (const kind of kinds) {
    await t.test(kind, async (t) => {
      const { client, connection, closed } = await harness(t, kind)
      client.write(connect5())
      await new Promise<void>((resolve) => client.once('data', () => resolve()))
      // Aedes keeps writing (a PINGRESP a millisecond) while the guard answers
      const writing = setInterval(() => { if (!connection.destroyed) connection.write(Buffer.from([0xd0, 0x00])) }, 1)
      t.teardown(() => clearInterval(writing))
      client.write(badPublish)
      const received = await within(closed)
      clearInterval(writing)
      const bytes = hex(received)
      t.ok(bytes.startsWith('2003000000'), `the CONNACK first: ${bytes}`)
      t.ok(bytes.endsWith('e0028200'), 'DISCONNECT 0x82 (Protocol Error), the last packet, then closed')
      t.match(bytes.slice(10, -8), /^(d000)*$/, 'only what Aedes wrote before it in between')
    })
  }
})

t.test('[MQTT-3.14.0-1] before the CONNACK, a v5 packet breaking a rule closes the connection without a DISCONNECT', async (t) => {
  for (const kind of kinds) {
    await t.test(kind, async (t) => {
      const { client, aedes, closed } = await harness(t, kind, { answerConnect: false })
      client.write(Buffer.concat([connect5(), badPublish]))
      t.equal(hex(await within(closed)), '', 'closed, nothing sent')
      t.same(aedes, [], 'the chunk with the broken packet did not reach Aedes')
    })
  }
})

t.test('[MQTT-4.12.0-5] an AUTH packet goes to the authPacketEvent listener whole, never to Aedes, and the connection goes on', async (t) => {
  for (const kind of kinds) {
    await t.test(kind, async (t) => {
      const { client, connection, aedes } = await harness(t, kind)
      const auths: Buffer[] = []
      connection.on(authPacketEvent, (packet: Buffer) => auths.push(packet))
      const auth = v5({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'JWT', authenticationData: Buffer.from('fresh') } })
      const connect = connect5({ authenticationMethod: 'JWT', authenticationData: Buffer.from('token') })
      const publish = v5({ cmd: 'publish', topic: 'a/b', payload: 'p', qos: 0, retain: false, dup: false })
      const ping = v5({ cmd: 'pingreq' })
      // the AUTH cut across two writes, between packets for Aedes
      const stream = Buffer.concat([connect, publish, auth, ping])
      const cut = connect.length + publish.length + 3
      client.write(stream.subarray(0, cut))
      await new Promise((resolve) => setTimeout(resolve, 50))
      client.write(stream.subarray(cut))
      const expected = Buffer.concat([connect, publish, ping])
      for (let i = 0; i < 100 && Buffer.concat(aedes).length < expected.length; i++) await new Promise((resolve) => setTimeout(resolve, 10))
      t.equal(Buffer.concat(aedes).toString('hex'), expected.toString('hex'), 'Aedes got everything but the AUTH')
      t.same(auths.map((a) => a.toString('hex')), [auth.toString('hex')], 'the listener got the AUTH packet, whole')
      t.notOk(connection.destroyed, 'still connected')
    })
  }
})

t.test('without an authPacketEvent listener, an AUTH gets DISCONNECT 0x8C (Bad authentication method)', async (t) => {
  for (const kind of kinds) {
    await t.test(kind, async (t) => {
      const { client, closed } = await harness(t, kind)
      client.write(connect5({ authenticationMethod: 'JWT' }))
      await new Promise<void>((resolve) => client.once('data', () => resolve()))
      client.write(v5({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'JWT' } }))
      t.equal(hex(await within(closed)), '2003000000e0028c00', 'CONNACK, then DISCONNECT 0x8C, then closed')
    })
  }
})
