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
  t.same(gate.counts(), { active: 1, waiting: 1 }, 'b closed while waiting: out of the queue')
  gate.leave(a)
  t.same(order, ['a', 'c'], 'a done: c, the longest waiting, goes on')
  gate.leave(a)
  t.same(gate.counts(), { active: 1, waiting: 0 }, 'leaving twice frees one turn only')
  gate.leave(c)
  t.same(gate.counts(), { active: 0, waiting: 0 })
})

t.test('over the cap CONNECTs wait their turn, beyond the queue they get CONNACK 3 / 0x89, and all waiting ones connect', async (t) => {
  const redis = await startRedis(t)
  const broker = await startBroker(t, { redis: { url: redis.url }, limits: { maxConcurrentConnects: 2, maxQueuedConnects: 2, connectQueueTimeoutMs: 10_000 } })
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
  const broker = await startBroker(t, { redis: { url: redis.url }, limits: { maxConcurrentConnects: 1, maxQueuedConnects: 10, connectQueueTimeoutMs: 300 } })
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
