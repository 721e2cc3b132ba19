// Limits that protect the process: the offending connection is closed or refused, others are untouched.
import type { Socket } from 'node:net'
import t from 'tap'
import { brokerUrl, capturingLogger, collect, connectClient, connectRefused, startBroker, subscribeGranted, transports, waitFor } from './helpers/broker.js'
import type { Teardown } from './helpers/loopback.js'
import { closedBy, connectBytes, rawTcpSocket } from './helpers/raw-clients.js'

/** A raw TCP connection to the broker whose CONNECT was accepted (CONNACK 0 read). */
async function connectedSocket (t: Teardown & { same: (found: unknown, wanted: unknown, message: string) => void }, port: number, clientId: string): Promise<Socket> {
  const socket = await rawTcpSocket(port, t)
  const connack = new Promise<Buffer>((resolve) => socket.once('data', resolve))
  socket.write(connectBytes(clientId))
  t.same([...(await connack).subarray(0, 4)], [0x20, 0x02, 0x00, 0x00], 'CONNACK 0: the packet after it is checked on its own')
  return socket
}

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

/** The reason the frame guard logged for the last connection it closed. */
const lastViolation = (lines: Array<Record<string, unknown>>): unknown => lines.filter((l) => l.event === 'protocol.violation').at(-1)?.reason

t.test('a remaining length of 268,435,455 with nothing behind it is refused at once', async (t) => {
  const { logger, lines } = capturingLogger()
  const broker = await startBroker(t, {}, logger)
  const socket = await connectedSocket(t, broker.addresses.mqtt.port, 'huge-length')
  const closed = closedBy(socket)
  socket.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]))
  await closed
  t.match(lastViolation(lines), /packet of 268435460 bytes exceeds the limit/, 'closed by the size check, without waiting for 256 MiB')
})

t.test('reserved packet types and fixed-header flags close the connection [MQTT-2.2.2-2]', async (t) => {
  const { logger, lines } = capturingLogger()
  const broker = await startBroker(t, {}, logger)
  // after an accepted CONNECT, so that the header rule closes them, not the first-packet rule
  const headers: Array<[number[], RegExp]> = [
    [[0x00, 0x00], /reserved control packet type 0/],
    [[0xf0, 0x00], /reserved control packet type 15/],
    [[0x20, 0x02, 0x00, 0x00], /type 2 may only be sent by a server/],
    [[0x36, 0x00], /PUBLISH with QoS 3 \[MQTT-3\.3\.1-4\]/],
    [[0x80, 0x00], /flags 0x0 for control packet type 8 \[MQTT-2\.2\.2-2\]/],
    [[0xc1, 0x00], /flags 0x1 for control packet type 12 \[MQTT-2\.2\.2-2\]/]
  ]
  for (const [header, reason] of headers) {
    const socket = await connectedSocket(t, broker.addresses.mqtt.port, `reserved-${(header[0] as number).toString(16)}`)
    const closed = closedBy(socket)
    socket.write(Buffer.from(header))
    await closed
    t.match(lastViolation(lines), reason, `closed on header 0x${(header[0] as number).toString(16)}`)
  }
})

t.test('a connection that never sends CONNECT is closed after connectTimeout', async (t) => {
  const broker = await startBroker(t, { limits: { connectTimeoutMs: 300 } })
  const socket = await rawTcpSocket(broker.addresses.mqtt.port, t)
  const started = Date.now()
  await closedBy(socket)
  t.ok(Date.now() - started >= 250, 'not before the timeout')
})
