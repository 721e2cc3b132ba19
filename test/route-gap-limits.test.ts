// The route-gap catch-up within its bounds (docs/cluster.md, "A new route and a persistent
// session"): a subscriber that stops reading or reads slowly, a session past its queue cap, and
// what the second read sends to an MQTT 5 subscription. Split from route-gap.test.ts to stay
// within tap's per-file timeout.
import t, { type Test } from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { Aedes } from 'aedes'
import { capturingLogger, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { connectBytes, rawTcpSocket, subscribeBytes } from './helpers/raw-clients.js'
import { spawnBroker } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import { unsentOutputBytes } from '../src/broker/protocol/guarded-connection.js'
import { clientById } from '../src/broker/aedes-adapter.js'
import { url, lateRouteMs, inTimeRouteMs, nodes, publishStream, stragglers } from './helpers/route-gap.js'

t.setTimeout(120_000)

interface SlowReader {
  clientId: string
  // bytes read every 100 ms once subscribed; 0: stops reading (the SUBACK too)
  readBytes: number
  payloadBytes: number
  // messages published, 400 a second at most
  count: number
  // the connection's output backs up (a QoS 0 stream it does not read) before it subscribes
  backedUp?: boolean
  limits: { maxClientOutputBytes: number, drainTimeoutMs?: number }
}

async function slowReaderUnderCatchUp (t: Test, reader: SlowReader): Promise<{ mostUnsent: number, growth: number[], cutAfterMs: number | null, cut: Record<string, unknown> | undefined, missing: number[] }> {
  const redis = await startRedis(t)
  const dir = t.testdir({ 'node.yaml': 'auth:\n  anonymous: true\ncluster:\n  heartbeatIntervalMs: 1000\n' })
  await spawnBroker(t, ['--config', `${dir}/node.yaml`, '--redis', redis.url], { NODE_ID: 'gap-late', LOG_LEVEL: 'warn', REALTIME_BROKER_TEST_ROUTE_CHANGE_DELAY_MS: String(lateRouteMs) })
  const { logger, lines } = capturingLogger()
  const subscribing = await startBroker(t, { nodeId: 'gap-sub-slow', redis: { url: redis.url }, cluster: { heartbeatIntervalMs: 1000 }, limits: reader.limits }, logger)
  const { clientId } = reader
  const socket = await rawTcpSocket(subscribing.addresses.mqtt.port, t)
  socket.on('error', () => {})
  socket.write(connectBytes(clientId, false))
  await waitFor(() => clientById(subscribing.aedes, clientId) !== undefined, 'the slow subscriber connected')

  // the most the subscriber's connection held unsent, sampled while the stream runs, and when it was cut
  let mostUnsent = 0
  let subscribedAt = 0
  let cutAfterMs: number | null = null
  const sampling = setInterval(() => {
    const unsent = unsentFor(subscribing.aedes, clientId)
    mostUnsent = Math.max(mostUnsent, unsent)
    if (subscribedAt > 0 && cutAfterMs === null && clientById(subscribing.aedes, clientId) === undefined) cutAfterMs = Date.now() - subscribedAt
  }, 2)
  t.teardown(() => clearInterval(sampling))
  const reading = setInterval(() => { if (subscribedAt > 0 && reader.readBytes > 0) socket.read(reader.readBytes) }, 100)
  t.teardown(() => clearInterval(reading))
  const { client: pub } = await openUrl(t, `mqtt://127.0.0.1:${subscribing.addresses.mqtt.port}`)
  if (reader.backedUp === true) {
    socket.write(subscribeBytes('gap/fill/#', 0))
    await sleep(200)
    const fill = 'f'.repeat(64 * 1024)
    // to within 1 MiB of the cap, not over it (which would start the output cap's own clock):
    // the catch-up's sends soon wait for the output to drain
    const backedUp = reader.limits.maxClientOutputBytes - 1024 * 1024
    for (let i = 0; i < 2000 && unsentFor(subscribing.aedes, clientId) < backedUp; i++) {
      await pub.publishAsync('gap/fill/n', fill, { qos: 0 })
      await sleep(10)
    }
    const unsent = unsentFor(subscribing.aedes, clientId)
    t.ok(unsent >= backedUp && unsent <= reader.limits.maxClientOutputBytes, `the connection's output backed up to ${unsent} bytes unsent before the SUBSCRIBE`)
  }
  const padding = 'x'.repeat(reader.payloadBytes)
  let next = 0
  // the buffers this process (the subscribing node's) keeps, after full collections, while the
  // catch-up holds: from the SUBSCRIBE, every 150 ms for 1.2 s
  const growth: number[] = []
  const sampleHold = async (): Promise<void> => {
    const before = await buffersKept()
    for (let i = 0; i < 8; i++) {
      await sleep(150)
      growth.push(await buffersKept() - before)
    }
  }
  let sampled: Promise<void> | null = null
  const worker = async (): Promise<void> => {
    while (next < reader.count) {
      const n = next++
      if (n === 200) {
        socket.write(subscribeBytes('gap/slow/#', 1))
        subscribedAt = Date.now()
        if (reader.readBytes === 0) socket.pause()
        sampled = sampleHold()
      }
      await pub.publishAsync('gap/slow/n', `${n}:${padding}`, { qos: 1 })
      await sleep(25)
    }
  }
  await Promise.all(Array.from({ length: 10 }, worker))
  await sampled
  await sleep(1000)
  clearInterval(sampling)
  clearInterval(reading)

  socket.destroy()
  await waitFor(() => clientById(subscribing.aedes, clientId) === undefined, 'the slow subscriber gone')
  const cut = lines.find((line) => line.event === 'client.error' && line.clientId === clientId && /slow consumer/.test(String(line.reason)))
  // nothing lost: what the session was not sent, or did not acknowledge, comes on its next connection
  const received = new Set<number>()
  const { client: back } = await openUrl(t, `mqtt://127.0.0.1:${subscribing.addresses.mqtt.port}`, { clientId, clean: false }, (c) => {
    c.on('message', (_topic, payload) => received.add(Number(payload.toString().split(':')[0])))
  })
  // published 250 ms or more after the SUBSCRIBE was sent: queued for the session
  const expected = Array.from({ length: reader.count - 300 }, (_, i) => i + 300)
  await waitFor(() => expected.every((n) => received.has(n)), 'every message published well after the SUBSCRIBE', 20_000).catch(() => {})
  await back.endAsync()
  return { mostUnsent, growth, cutAfterMs, cut, missing: expected.filter((n) => !received.has(n)) }
}

// 16 KiB messages at about 400 a second, 6 MiB a second
t.test('a subscriber that stops reading: what the catch-up holds and sends stays within the output cap, its connection is cut, and nothing is lost', async (t) => {
  const maxBytes = 65_536
  const { mostUnsent, growth, cut, missing } = await slowReaderUnderCatchUp(t, { clientId: 'gap-slow', readBytes: 0, payloadBytes: 16 * 1024, count: 1500, limits: { maxClientOutputBytes: maxBytes } })
  // without a bound, the hold kept all of the stream since the SUBSCRIBE (6 MiB a second); the
  // median, as messages in flight on a loaded machine now and then add a few MiB to one sample
  const median = [...growth].sort((a, b) => a - b)[growth.length / 2] as number
  t.ok(median <= maxBytes + 1024 * 1024, `buffers kept while the catch-up holds grew by a median ${Math.round(median / 1024)} KiB (${growth.map((g) => Math.round(g / 1024)).join(', ')} KiB; bound: the cap and 1 MiB of messages in flight)`)
  // the cap, the message that crossed it, and the rest of that event-loop turn's batch (as in test/slow-consumer.test.ts)
  const bound = maxBytes + 256 * 1024
  t.ok(mostUnsent <= bound, `the connection held at most ${mostUnsent} bytes unsent (bound ${bound})`)
  t.ok(cut !== undefined, `cut as a slow consumer, logged (${String(cut?.reason)})`)
  t.same(missing.length, 0, `every message published after the SUBSCRIBE arrived on the next connection (missing ${missing.length}: ${missing.slice(0, 10).join(',')})`)
})

// 8 KiB messages at about 400 a second (3.2 MiB a second), read at 80 KiB a second, its output
// backed up beforehand to 1 MiB under the cap (a QoS 0 stream): the catch-up's sends wait for the output
// to drain, and the held deliveries stay under a cap of 4 MiB through the hold: the catch-up's
// held cap or its time bound (limits.drainTimeoutMs from its first read) cuts it. (Backed up only
// a little, the catch-up sent everything it held at once, ended, and the output cap cut the
// client at a live QoS 1 message 2.5 s after the SUBSCRIBE, twice.)
t.test('a subscriber reading slower than its stream under a catch-up is cut within the bound, and gets everything stored on its next connection', async (t) => {
  const drainTimeoutMs = 2000
  const { cutAfterMs, cut, missing } = await slowReaderUnderCatchUp(t, { clientId: 'gap-slow-reader', readBytes: 8192, payloadBytes: 8192, count: 3000, backedUp: true, limits: { maxClientOutputBytes: 4 * 1024 * 1024, drainTimeoutMs } })
  t.match(cut?.reason, /route catch-up/, `cut by the catch-up as a slow consumer, logged (${String(cut?.reason)})`)
  // the hold (1 s), then the time bound, with room for a loaded machine
  const bound = 1000 + drainTimeoutMs + 1500
  t.ok(cutAfterMs !== null && cutAfterMs <= bound, `cut ${String(cutAfterMs)} ms after the SUBSCRIBE (bound ${bound} ms)`)
  t.same(missing.length, 0, `every message published after the SUBSCRIBE arrived on the next connection (missing ${missing.length}: ${missing.slice(0, 10).join(',')})`)
})

// A session past sessions.maxQueuedMessages gets messages live that its queue does not keep: a
// held copy dropped past the held cap would be lost without a trace. Past the cap (4 KiB
// messages at about 400 a second under a 64 KiB cap, held for the 1 s bound) the connection is
// cut instead, logged; the subscriber reads everything it is sent.
t.test('a session past its queue cap under a catch-up loses nothing silently: each message is delivered, or its connection cut with the logged reason', async (t) => {
  const redis = await startRedis(t)
  const dir = t.testdir({ 'node.yaml': 'auth:\n  anonymous: true\ncluster:\n  heartbeatIntervalMs: 1000\n' })
  await spawnBroker(t, ['--config', `${dir}/node.yaml`, '--redis', redis.url], { NODE_ID: 'gap-late', LOG_LEVEL: 'warn', REALTIME_BROKER_TEST_ROUTE_CHANGE_DELAY_MS: String(lateRouteMs) })
  const { logger, lines } = capturingLogger()
  const subscribing = await startBroker(t, { nodeId: 'gap-sub-full', redis: { url: redis.url }, cluster: { heartbeatIntervalMs: 1000 }, limits: { maxClientOutputBytes: 65_536 }, sessions: { maxQueuedMessages: 20 } }, logger)
  const port = subscribing.addresses.mqtt.port
  const clientId = 'gap-queue-full'
  const received: number[] = []
  const { client: sub } = await openUrl(t, `mqtt://127.0.0.1:${port}`, { clientId, clean: false, reconnectPeriod: 0 }, (c) => {
    c.on('message', (_topic, payload) => received.push(Number(payload.toString().split(':')[0])))
  })
  const { client: pub } = await openUrl(t, `mqtt://127.0.0.1:${port}`)
  const padding = 'x'.repeat(4096)
  let next = 0
  let subscribed: Promise<unknown> | null = null
  const worker = async (): Promise<void> => {
    while (next < 800) {
      const n = next++
      if (n === 100) subscribed = sub.subscribeAsync('gap/full/#', { qos: 1 })
      await pub.publishAsync('gap/full/n', `${n}:${padding}`, { qos: 1 })
      await sleep(25)
    }
  }
  await Promise.all(Array.from({ length: 10 }, worker))
  await subscribed
  await sleep(1000)
  const cut = lines.find((line) => line.event === 'client.error' && line.clientId === clientId && /slow consumer/.test(String(line.reason)))
  // published 250 ms or more after the SUBSCRIBE
  const missing = Array.from({ length: 800 - 200 }, (_, i) => i + 200).filter((n) => !received.includes(n))
  t.ok(missing.length === 0 || cut !== undefined, `every message delivered (missing ${missing.length}), or the connection cut with its reason logged (${String(cut?.reason)})`)
  // at these rates the held deliveries pass the cap within the hold
  t.ok(cut !== undefined, 'the held deliveries passed the cap: cut as a slow consumer, logged')
  sub.end(true)
})

setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

/** The bytes of Buffers this process keeps, after full collections (V8 frees their memory on a background thread, after the collection). */
async function buffersKept (): Promise<number> {
  collectGarbage()
  await sleep(20)
  collectGarbage()
  await sleep(20)
  return process.memoryUsage().arrayBuffers
}

/** The bytes the broker holds unsent for a connected client (0 once it is gone). */
function unsentFor (aedes: Aedes, clientId: string): number {
  const client = clientById(aedes, clientId)
  return client === undefined ? 0 : unsentOutputBytes(client.conn as unknown as Parameters<typeof unsentOutputBytes>[0])
}

// The second read's messages go out as their live copies would: RETAIN cleared unless the
// subscription asks for Retain As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13], with the
// subscription's identifier [MQTT-3.3.4-3]. Every message is published retained; Retain
// Handling 2 sends none on SUBSCRIBE.
t.test('MQTT 5: what the catch-up sends from the queue carries RETAIN per Retain As Published and the Subscription Identifier, as a live copy', async (t) => {
  const { publishing, subscribing } = await nodes(t, startRedis, inTimeRouteMs)
  const options = [{ clientId: 'gap-v5-rap', rap: true, id: 7 }, { clientId: 'gap-v5-norap', rap: false, id: 9 }]
  const sessions = await Promise.all(options.map(async (o) => {
    const { client } = await openUrl(t, url(subscribing), { clientId: o.clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 300 } })
    const got: Array<{ n: number, retain: boolean, ids: unknown }> = []
    client.on('message', (_topic, payload, packet) => got.push({ n: Number(payload.toString()), retain: packet.retain, ids: packet.properties?.subscriptionIdentifier }))
    return { ...o, client, got }
  }))
  const { client: pub } = await openUrl(t, url(publishing))
  let subscribed = false
  const expected = new Set<number>()
  let subscription: Promise<unknown> | null = null
  await publishStream(pub, 'gap/v5/n', 1500, (n) => {
    if (n >= 200 && subscription === null) {
      subscription = Promise.all(sessions.map(async (s) => await s.client.subscribeAsync('gap/v5/#', { qos: 1, rap: s.rap, rh: 2, properties: { subscriptionIdentifier: s.id } }))).then(() => { subscribed = true })
    }
  }, (n) => { if (subscribed) expected.add(n) }, true)
  await subscription
  for (const s of sessions) {
    await waitFor(() => [...expected].every((n) => s.got.some((m) => m.n === n)), `every message at ${s.clientId}`, 10_000).catch(() => {})
  }
  await sleep(1000)
  for (const s of sessions) {
    const numbers = s.got.map((m) => m.n)
    const missing = [...expected].filter((n) => !numbers.includes(n))
    t.same(missing.length, 0, `${s.clientId}: every message published after the SUBACK arrived (missing ${missing.length})`)
    t.equal(numbers.length, new Set(numbers).size, `${s.clientId}: no message twice`)
    t.same(stragglers(numbers), [], `${s.clientId}: strictly in publish order`)
    const wrongRetain = s.got.filter((m) => m.retain !== s.rap).map((m) => m.n)
    t.same(wrongRetain, [], `${s.clientId}: RETAIN ${s.rap ? '1 (as published)' : '0'} on every message`)
    const wrongId = s.got.filter((m) => m.ids !== s.id).map((m) => m.n)
    t.same(wrongId, [], `${s.clientId}: Subscription Identifier ${s.id} on every message`)
  }
})
