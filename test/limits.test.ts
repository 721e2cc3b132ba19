// Limits that protect the process: the offending connection is closed or refused, others are untouched.
import { Socket, connect as tcpConnect } from 'node:net'
import t from 'tap'
import { brokerUrl, collect, connectClient, connectRefused, startBroker, subscribeGranted, transports, waitFor } from './helpers/broker.js'

/** A raw TCP socket to the broker's MQTT port, resolved once connected. */
async function rawSocket (t: { teardown: (fn: () => unknown) => void }, port: number): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await new Promise((resolve) => socket.once('connect', resolve))
  return socket
}

const closedBy = (socket: Socket): Promise<void> => new Promise((resolve) => socket.once('close', () => resolve()))

for (const transport of transports) {
  t.test(`${transport}: a packet over maxPacketSize closes only its own connection`, async (t) => {
    const broker = await startBroker(t, { limits: { maxPacketSize: 1024 } })
    const bystander = await connectClient(t, broker, transport)
    await bystander.subscribeAsync('big/#', { qos: 1 })
    const got = collect(bystander)
    const offender = await connectClient(t, broker, transport)
    const closed = new Promise<void>((resolve) => offender.once('close', () => resolve()))
    offender.publish('big/one', Buffer.alloc(2000), { qos: 0 })
    await closed
    await offender.endAsync(true)
    const pub = await connectClient(t, broker, transport)
    await pub.publishAsync('big/ok', Buffer.alloc(500), { qos: 1 })
    await waitFor(() => got.length === 1, 'the message under the limit')
    t.same(got.map((m) => m.topic), ['big/ok'], 'the oversized message was never delivered')
  })

  t.test(`${transport}: a client id over the limit gets CONNACK 2`, async (t) => {
    const broker = await startBroker(t, { limits: { maxClientIdLength: 16 } })
    const code = await connectRefused(t, brokerUrl(broker, transport), { clientId: 'x'.repeat(17) })
    t.equal(code, 2, 'identifier rejected [MQTT-3.1.3-9]')
    await connectClient(t, broker, transport, { clientId: 'x'.repeat(16) })
  })

  t.test(`${transport}: a topic over maxTopicLength: SUBACK 0x80 for that filter only, publisher closed`, async (t) => {
    const broker = await startBroker(t, { limits: { maxTopicLength: 32 } })
    const client = await connectClient(t, broker, transport)
    const granted = await subscribeGranted(client, { ['l/' + 'x'.repeat(40)]: { qos: 1 }, 'l/short': { qos: 1 } })
    t.same(granted, [128, 1], 'refused filter 0x80, the other granted in the same SUBACK')
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
    client.publish('l/' + 'y'.repeat(40), 'x', { qos: 0 })
    await closed
    t.pass('the publisher of an over-long topic was disconnected')
  })
}

t.test('a remaining length of 268,435,455 with nothing behind it is refused at once', async (t) => {
  const broker = await startBroker(t)
  const socket = await rawSocket(t, broker.addresses.mqtt.port)
  const closed = closedBy(socket)
  socket.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]))
  await closed
  t.pass('closed without waiting for 256 MiB')
})

t.test('reserved packet types and fixed-header flags close the connection [MQTT-2.2.2-2]', async (t) => {
  const broker = await startBroker(t)
  for (const header of [[0x00, 0x00], [0xf0, 0x00], [0x80, 0x00], [0x20, 0x02, 0x00, 0x00], [0x36, 0x00]]) {
    const socket = await rawSocket(t, broker.addresses.mqtt.port)
    const closed = closedBy(socket)
    socket.write(Buffer.from(header))
    await closed
    t.pass(`closed on header 0x${(header[0] as number).toString(16)}`)
  }
})

t.test('a connection that never sends CONNECT is closed after connectTimeout', async (t) => {
  const broker = await startBroker(t, { limits: { connectTimeoutMs: 300 } })
  const socket = await rawSocket(t, broker.addresses.mqtt.port)
  const started = Date.now()
  await closedBy(socket)
  t.ok(Date.now() - started >= 250, 'not before the timeout')
})
