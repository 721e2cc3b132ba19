// MQTT 3.1.1 delivery semantics end to end, over TCP and over WebSocket.
import t from 'tap'
import { closeClient, collect, connectClient, openClient, sleep, startBroker, transports, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'

for (const transport of transports) {
  t.test(`${transport}: QoS 0, 1 and 2 are delivered with the granted QoS`, async (t) => {
    const broker = await startBroker(t)
    const sub = await connectClient(t, broker, transport)
    const granted = await sub.subscribeAsync({ 'q/0': { qos: 0 }, 'q/1': { qos: 1 }, 'q/2': { qos: 2 } })
    t.same(granted.map((g) => g.qos), [0, 1, 2])
    const got = collect(sub)
    const pub = await connectClient(t, broker, transport)
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(`q/${qos}`, `m${qos}`, { qos })
    await waitFor(() => got.length === 3, 'three messages')
    t.same(got.map((m) => [m.topic, m.payload, m.packet.qos]).sort(), [['q/0', 'm0', 0], ['q/1', 'm1', 1], ['q/2', 'm2', 2]])
  })

  t.test(`${transport}: a message is downgraded to the subscription's QoS`, async (t) => {
    const broker = await startBroker(t)
    const sub = await connectClient(t, broker, transport)
    await sub.subscribeAsync('down', { qos: 0 })
    const got = collect(sub)
    const pub = await connectClient(t, broker, transport)
    await pub.publishAsync('down', 'x', { qos: 2 })
    await waitFor(() => got.length === 1, 'message')
    t.equal(got[0]?.packet.qos, 0)
  })

  t.test(`${transport}: wildcards match, and # does not match $SYS topics`, async (t) => {
    const broker = await startBroker(t)
    const sub = await connectClient(t, broker, transport)
    await sub.subscribeAsync(['#', 'a/+/c'])
    const got = collect(sub)
    const pub = await connectClient(t, broker, transport)
    await pub.publishAsync('a/b/c', '1', { qos: 1 })
    // the broker publishes its own $SYS heartbeat topics; publish one directly as well
    await new Promise<void>((resolve) => broker.aedes.publish({ cmd: 'publish', topic: '$SYS/test', payload: Buffer.from('sys'), qos: 0, retain: false, dup: false }, () => resolve()))
    await pub.publishAsync('done', '2', { qos: 1 })
    await waitFor(() => got.some((m) => m.topic === 'done'), 'done message')
    t.notOk(got.some((m) => m.topic.startsWith('$')), '# never delivers $ topics [MQTT-4.7.2-1]')
    t.same(got.filter((m) => m.topic === 'a/b/c').length, 1, 'overlapping subscriptions deliver once')
  })

  t.test(`${transport}: retained messages are set, replaced, cleared and delivered on subscribe`, async (t) => {
    const broker = await startBroker(t)
    const pub = await connectClient(t, broker, transport)
    await pub.publishAsync('ret/a', 'first', { qos: 1, retain: true })
    await pub.publishAsync('ret/a', 'second', { qos: 1, retain: true })
    await pub.publishAsync('ret/b', 'gone', { qos: 1, retain: true })
    await pub.publishAsync('ret/b', '', { qos: 1, retain: true })

    const sub = await connectClient(t, broker, transport)
    const got = collect(sub)
    await sub.subscribeAsync('ret/#', { qos: 1 })
    await waitFor(() => got.length >= 1, 'retained message')
    await sleep(100)
    t.same(got.map((m) => [m.topic, m.payload, m.packet.retain]), [['ret/a', 'second', true]], 'replaced value only; the empty payload cleared ret/b')

    // a live message to an existing subscriber has retain = 0 [MQTT-3.3.1-9]
    await pub.publishAsync('ret/a', 'live', { qos: 1, retain: true })
    await waitFor(() => got.length === 2, 'live message')
    t.equal(got[1]?.packet.retain, false)
  })

  t.test(`${transport}: a persistent session keeps subscriptions and queues QoS 1/2 while offline`, async (t) => {
    const broker = await startBroker(t)
    const options = { clientId: `persist-${transport}`, clean: false }
    const first = await connectClient(t, broker, transport, options)
    await first.subscribeAsync('inbox/#', { qos: 1 })
    await closeClient(first, false)

    const pub = await connectClient(t, broker, transport)
    for (let i = 0; i < 5; i++) await pub.publishAsync(`inbox/${i}`, `m${i}`, { qos: 1 })
    await pub.publishAsync('inbox/q0', 'dropped', { qos: 0 })

    let got: ReturnType<typeof collect> = []
    const { connack } = await openClient(t, broker, transport, options, (client) => { got = collect(client) })
    t.equal(connack.sessionPresent, true, 'CONNACK says the session was present [MQTT-3.2.2-2]')
    await waitFor(() => got.length >= 5, 'queued messages')
    await sleep(100)
    t.same(got.map((m) => m.payload), ['m0', 'm1', 'm2', 'm3', 'm4'], 'QoS 1 queued in order; QoS 0 not queued')
  })

  t.test(`${transport}: a clean session starts with no subscriptions`, async (t) => {
    const broker = await startBroker(t)
    const first = await connectClient(t, broker, transport, { clientId: `clean-${transport}`, clean: false })
    await first.subscribeAsync('x', { qos: 1 })
    await closeClient(first, false)
    const clean = await connectClient(t, broker, transport, { clientId: `clean-${transport}`, clean: true })
    const got = collect(clean)
    const pub = await connectClient(t, broker, transport)
    await pub.publishAsync('x', 'nobody', { qos: 1 })
    await sleep(150)
    t.same(got, [], 'clean=true discarded the old session [MQTT-3.1.2-6]')
  })

  t.test(`${transport}: the last will is published on abnormal disconnect, not on DISCONNECT`, async (t) => {
    const broker = await startBroker(t)
    const watcher = await connectClient(t, broker, transport)
    await watcher.subscribeAsync('will/#', { qos: 1 })
    const got = collect(watcher)

    const polite = await connectClient(t, broker, transport, { will: { topic: 'will/polite', payload: Buffer.from('gone'), qos: 1, retain: false } })
    await closeClient(polite, false) // sends DISCONNECT
    const rude = await connectClient(t, broker, transport, { will: { topic: 'will/rude', payload: Buffer.from('gone'), qos: 1, retain: false } })
    rude.stream.destroy() // no DISCONNECT
    await waitFor(() => got.length >= 1, 'will message')
    await sleep(150)
    t.same(got.map((m) => m.topic), ['will/rude'])
  })

  t.test(`${transport}: a client that misses its keepalive is disconnected and its will fires`, async (t) => {
    const broker = await startBroker(t)
    const watcher = await connectClient(t, broker, transport)
    await watcher.subscribeAsync('ka/will')
    const got = collect(watcher)
    const silent = await connectClient(t, broker, transport, { keepalive: 1, will: { topic: 'ka/will', payload: Buffer.from('timeout'), qos: 0, retain: false } })
    // stop MQTT.js from sending PINGREQ: the broker must act after 1.5 x keepalive [MQTT-3.1.2-24]
    silent.stream.pause()
    ;(silent as unknown as { _destroyKeepaliveManager: () => void })._destroyKeepaliveManager()
    await waitFor(() => got.length === 1, 'keepalive will', 4000)
    t.equal(got[0]?.payload, 'timeout')
  })

  t.test(`${transport}: a second connection with the same client id takes the session over`, async (t) => {
    const broker = await startBroker(t)
    const first = await connectClient(t, broker, transport, { clientId: `dup-${transport}`, clean: false })
    await first.subscribeAsync('takeover', { qos: 1 })
    const firstClosed = new Promise<void>((resolve) => first.once('close', () => resolve()))
    const second = await connectClient(t, broker, transport, { clientId: `dup-${transport}`, clean: false })
    await firstClosed
    t.pass('the old connection was closed [MQTT-3.1.4-2]')
    const got = collect(second)
    const pub = await connectClient(t, broker, transport)
    await pub.publishAsync('takeover', 'to-new', { qos: 1 })
    await waitFor(() => got.length === 1, 'message on the new connection')
    t.equal(got[0]?.payload, 'to-new', 'subscriptions moved to the new connection')
  })
}

t.test('TCP and WebSocket clients see each other', async (t) => {
  const broker = await startBroker(t)
  const tcp = await connectClient(t, broker, 'tcp')
  const ws = await connectClient(t, broker, 'ws')
  await tcp.subscribeAsync('from/ws', { qos: 1 })
  await ws.subscribeAsync('from/tcp', { qos: 1 })
  const tcpGot = collect(tcp)
  const wsGot = collect(ws)
  await tcp.publishAsync('from/tcp', 'hello ws', { qos: 1 })
  await ws.publishAsync('from/ws', 'hello tcp', { qos: 1 })
  await waitFor(() => tcpGot.length === 1 && wsGot.length === 1, 'both messages')
  t.equal(tcpGot[0]?.payload, 'hello tcp')
  t.equal(wsGot[0]?.payload, 'hello ws')
})

t.test('tcp: with mqtt.noDelay off (Nagle on) the listener still carries QoS 0 and QoS 1 both ways', async (t) => {
  const broker = await startBroker(t, { mqtt: { port: 0, noDelay: false } })
  t.equal(broker.config.mqtt.noDelay, false, 'the option reached the broker')
  const sub = await connectClient(t, broker, 'tcp')
  await sub.subscribeAsync('nagle/#', { qos: 1 })
  const got = collect(sub)
  const pub = await connectClient(t, broker, 'tcp')
  for (let i = 0; i < 20; i++) await pub.publishAsync(`nagle/${i}`, String(i), { qos: (i % 2) as 0 | 1 })
  await waitFor(() => got.length === 20, 'twenty messages')
  t.same(got.map((m) => m.payload), Array.from({ length: 20 }, (_, i) => String(i)), 'in order')
})

// A retained message is stored before it is handed on, so a plain message the same client
// published right after it reached subscribers first; counting "the highest message number
// delivered" as seen then dropped the retained one for every live subscriber (aedes#994).
for (const store of ['memory', 'redis'] as const) {
  for (const clean of [true, false]) {
    t.test(`${store}, ${clean ? 'clean' : 'persistent'} subscriber: a retained and a plain QoS 1 message published in one turn both arrive live`, async (t) => {
      const redis = store === 'redis' ? await startRedis(t) : null
      const broker = await startBroker(t, redis === null ? {} : { redis: { url: redis.url } })
      const sub = await connectClient(t, broker, 'tcp', { clientId: `live-${store}-${String(clean)}`, clean })
      await sub.subscribeAsync(['X/#', 'X/+'], { qos: 1 }) // overlapping: still one copy each
      const got = collect(sub)
      const pub = await connectClient(t, broker, 'tcp')
      for (let round = 0; round < 5; round++) {
        await Promise.all([
          pub.publishAsync('X/p', `p${round}`, { qos: 1, retain: true }),
          pub.publishAsync('X/m', `m${round}`, { qos: 1 })
        ])
      }
      await waitFor(() => got.length >= 10, 'ten messages')
      await sleep(200)
      t.same(got.map((m) => m.payload).sort(), ['m0', 'm1', 'm2', 'm3', 'm4', 'p0', 'p1', 'p2', 'p3', 'p4'], 'every message once')
      t.ok(got.every((m) => !m.packet.retain), 'live messages carry retain 0 [MQTT-3.3.1-9]')
    })
  }
}
