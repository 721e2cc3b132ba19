// limits.maxConcurrentConnects: a node works on a bounded number of CONNECTs at once; more
// wait in a bounded queue for a bounded time, beyond which they get CONNACK 3 (MQTT 5: 0x89
// server busy), counted. Redis' writes paused (CLIENT PAUSE WRITE) hold CONNECTs in their
// client-id claim, as a storm's Redis round trips would. A scrape waits for Redis too (the
// retained count), so the gate's gauges are read only once Redis answers again.
import { Redis } from 'ioredis'
import { connect, type MqttClient } from 'mqtt'
import t from 'tap'
import type { BrokerHandle } from '../src/server.js'
import { ConnectGate } from '../src/broker/process/connect-gate.js'
import { ConnectPacer, eventLoopDelay, type LoopDelaySample } from '../src/broker/process/connect-pacer.js'
import { brokerUrl, closeClient, connectRefused, metricValue, openUrl, sleep, startBroker } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'

async function metrics (broker: BrokerHandle): Promise<string> {
  return await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
}

async function gateIsEmpty (broker: BrokerHandle): Promise<boolean> {
  const text = await metrics(broker)
  return metricValue(text, 'realtime_broker_connects_in_progress', { state: 'active' }) === 0 && metricValue(text, 'realtime_broker_connects_in_progress', { state: 'waiting' }) === 0
}

t.test('the gate: first come first served, a turn freed goes to the longest waiting, a closed waiter leaves the queue', async (t) => {
  const gate = new ConnectGate({ maxConcurrent: 1, maxQueued: 2, maxWaitMs: 60_000 })
  const order: string[] = []
  const refusals: string[] = []
  const [a, b, c, d] = [{}, {}, {}, {}]
  t.equal(gate.enter(a, () => order.push('a'), (why) => refusals.push(`a:${why}`)), false, 'a goes on at once')
  t.equal(gate.enter(b, () => order.push('b'), (why) => refusals.push(`b:${why}`)), true, 'b waits')
  t.equal(gate.enter(c, () => order.push('c'), (why) => refusals.push(`c:${why}`)), true, 'c waits')
  gate.enter(d, () => order.push('d'), (why) => refusals.push(`d:${why}`))
  t.same(refusals, ['d:queue_full'], 'd finds the queue full')
  gate.leave(b)
  t.same(gate.counts(), { active: 1, waiting: 1, turns: 1 }, 'b closed while waiting: out of the queue')
  gate.leave(a)
  t.same(order, ['a', 'c'], 'a done: c, the longest waiting, goes on')
  gate.leave(a)
  t.same(gate.counts(), { active: 1, waiting: 0, turns: 1 }, 'leaving twice frees one turn only')
  gate.leave(c)
  t.same(gate.counts(), { active: 0, waiting: 0, turns: 1 })
})

t.test('paced: the turns halve while the event loop runs late, at least one, grow back below half the target, and the gate follows', async (t) => {
  // the delay of each window, as the event loop would report it
  let sample: LoopDelaySample = { window: 0, maxMs: 0 }
  const measuring: boolean[] = []
  const late = (maxMs: number): void => { sample = { window: sample.window + 1, maxMs } }
  const pacer = new ConnectPacer(40, 20, { start: () => measuring.push(true), stop: () => measuring.push(false), latest: () => sample })
  const gate = new ConnectGate({ maxConcurrent: 40, maxQueued: 100, maxWaitMs: 60_000, pacer })
  t.equal(pacer.allowed(), 40, 'the cap while nothing was measured')
  late(25)
  t.equal(pacer.allowed(), 20, 'a late window halves the turns')
  t.equal(pacer.allowed(), 20, 'once per window')
  for (const delay of [80, 80, 80, 80, 80, 80]) late(delay)
  t.equal(pacer.allowed(), 10, 'windows not looked at are not judged')
  for (let i = 0; i < 6; i++) { late(90); pacer.allowed() }
  t.equal(pacer.allowed(), 1, 'never under one turn')
  late(15)
  t.equal(pacer.allowed(), 1, 'between half the target and the target: unchanged')
  late(5)
  t.equal(pacer.allowed(), 5, 'under half the target: a tenth of the cap more')

  const admitted: string[] = []
  const held = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((name) => {
    const connection = {}
    gate.enter(connection, () => admitted.push(name), () => t.fail(`${name} refused`))
    return connection
  })
  t.same(measuring, [true], 'the delay is measured once the gate is in use')
  t.same(admitted, ['a', 'b', 'c', 'd', 'e'], 'five turns: five go on, the others wait')
  late(40)
  gate.leave(held[0] as object)
  t.same(admitted, ['a', 'b', 'c', 'd', 'e'], 'the loop late again: two turns, four still held, none given')
  t.same(gate.counts(), { active: 4, waiting: 2, turns: 2 })
  for (let i = 0; i < 3; i++) { late(1); pacer.allowed() }
  gate.leave(held[1] as object)
  t.same(admitted, ['a', 'b', 'c', 'd', 'e', 'f', 'g'], 'back on time: 14 turns, the waiting go on')
  for (const connection of held.slice(2)) gate.leave(connection)
  t.same(measuring, [true, false], 'idle again: no more measuring')
})

t.test('the event-loop delay: a blocked loop is measured, only while started', async (t) => {
  const delay = eventLoopDelay()
  delay.start()
  t.teardown(() => delay.stop())
  await sleep(150)
  const quiet = delay.latest()
  t.ok(quiet.maxMs < 50, `an idle loop is about on time (${quiet.maxMs.toFixed(1)} ms)`)
  const blockedUntil = performance.now() + 120
  while (performance.now() < blockedUntil) { /* the loop blocked, as by a burst of CONNECTs */ }
  await sleep(20)
  const blocked = delay.latest()
  t.equal(blocked.window, quiet.window + 1, 'a new window')
  t.ok(blocked.maxMs >= 100, `the blocked loop is measured (${blocked.maxMs.toFixed(1)} ms)`)
  delay.stop()
  t.same(delay.latest(), blocked, 'stopped: the last window stays')
})

t.test('over the cap CONNECTs wait their turn, beyond the queue they get CONNACK 3 / 0x89, and all waiting ones connect', async (t) => {
  const redis = await startRedis(t)
  const broker = await startBroker(t, { redis: { url: redis.url }, limits: { maxConcurrentConnects: 2, maxQueuedConnects: 2, connectQueueTimeoutMs: 10_000, connectLoopDelayMs: 0 } })
  const url = brokerUrl(broker, 'tcp')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await openUrl(t, url, { clientId: 'before-the-storm' })

  // the client-id claims wait on Redis: turns are held
  await admin.call('CLIENT', 'PAUSE', '2000', 'WRITE')
  const pending: Array<Promise<{ client: MqttClient }>> = []
  for (const clientId of ['c1', 'c2', 'c3', 'c4']) {
    pending.push(openUrl(t, url, { clientId, connectTimeout: 10_000 }))
    await sleep(50)
  }
  t.equal(await connectRefused(t, url, { clientId: 'c5' }), 3, 'MQTT 3.1.1: CONNACK 3 server unavailable')
  // MQTT.js reports a v5 CONNACK's reason code
  t.equal(await connectRefused(t, url, { clientId: 'c6', protocolVersion: 5 }), 0x89, 'MQTT 5: CONNACK 0x89 server busy')
  const connected = await Promise.all(pending)
  t.equal(connected.length, 4, 'the four admitted or waiting CONNECTs all connect once Redis answers')
  t.ok(await gateIsEmpty(broker), 'every turn is given back')
  const text = await metrics(broker)
  t.equal(metricValue(text, 'realtime_broker_connects_throttled_total', { outcome: 'queued' }), 2, 'two waited')
  t.equal(metricValue(text, 'realtime_broker_connects_throttled_total', { outcome: 'queue_full' }), 2, 'two refused')
  t.equal(metricValue(text, 'realtime_broker_connects_total', { transport: 'tcp' }), 5, 'the refused ones are not counted as connects')
})

t.test('a CONNECT that waits longer than connectQueueTimeoutMs is refused; a connection closed while holding its turn frees it', async (t) => {
  const redis = await startRedis(t)
  const broker = await startBroker(t, { redis: { url: redis.url }, limits: { maxConcurrentConnects: 1, maxQueuedConnects: 10, connectQueueTimeoutMs: 300, connectLoopDelayMs: 0 } })
  const url = brokerUrl(broker, 'tcp')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())

  await admin.call('CLIENT', 'PAUSE', '1500', 'WRITE')
  const holder = openUrl(t, url, { clientId: 'holder', connectTimeout: 10_000 })
  await sleep(100)
  const startedAt = Date.now()
  t.equal(await connectRefused(t, url, { clientId: 'late', protocolVersion: 5 }), 0x89, 'refused after waiting')
  const waited = Date.now() - startedAt
  t.ok(waited >= 280 && waited < 1200, `after about connectQueueTimeoutMs, not when Redis answered (${waited} ms)`)
  await holder
  t.ok(await gateIsEmpty(broker))
  t.equal(metricValue(await metrics(broker), 'realtime_broker_connects_throttled_total', { outcome: 'wait_timeout' }), 1)

  // a client that gives up while its CONNECT is being worked on (its socket closes) frees its
  // turn: the one waiting gets it (else it would be refused after 300 ms, Redis paused 1.5 s)
  await admin.call('CLIENT', 'PAUSE', '1500', 'WRITE')
  const quitter = connect(url, { clientId: 'quitter', reconnectPeriod: 0, connectTimeout: 10_000 })
  await sleep(100)
  const waiter = openUrl(t, url, { clientId: 'waiter', connectTimeout: 10_000 })
  await sleep(100)
  quitter.end(true)
  const { client } = await waiter
  t.ok(client.connected, 'the waiting one got the freed turn and connected')
  t.equal(metricValue(await metrics(broker), 'realtime_broker_connects_throttled_total', { outcome: 'wait_timeout' }), 1, 'it was not refused')
  t.ok(await gateIsEmpty(broker))
  await closeClient(client)
})

t.test('CONNECTs refused by authentication, over TCP and WebSocket, give their turn back', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: false }, limits: { maxConcurrentConnects: 1, maxQueuedConnects: 0 } })
  for (const transport of ['tcp', 'ws', 'tcp', 'ws'] as const) {
    // with one turn and no queue, a turn not given back would make the next one 3 (busy)
    t.equal(await connectRefused(t, brokerUrl(broker, transport), { clientId: `nobody-${transport}` }), 5, `${transport}: not authorized, not busy`)
  }
  t.ok(await gateIsEmpty(broker))
})
