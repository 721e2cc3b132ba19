// Persistent sessions are bounded: a queue cap per session (sessions.maxQueuedMessages) and an
// expiry of sessions left offline (sessions.expirySeconds), in memory and across nodes on Redis.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import type { BrokerHandle } from '../src/server.js'
import type { ConfigInput } from '../src/broker/config/config.js'
import { brokerUrl, closeClient, collect, metricValue, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { spawnBroker } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import { inspectRedis, startRedisCluster } from './helpers/redis-cluster.js'

type T = Parameters<typeof startBroker>[0]

const scrape = async (broker: BrokerHandle): Promise<string> => await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
const metricSum = async (brokers: BrokerHandle[], name: string, labels: Record<string, string> = {}): Promise<number> =>
  (await Promise.all(brokers.map(async (b) => metricValue(await scrape(b), name, labels)))).reduce((a, b) => a + b, 0)

/** A persistent session that has subscribed to `filter` and gone offline. */
async function leaveSession (t: T, url: string, clientId: string, filter: string): Promise<void> {
  const { client } = await openUrl(t, url, { clientId, clean: false })
  await client.subscribeAsync(filter, { qos: 1 })
  await closeClient(client, false)
}

/** Reconnects a persistent session; `messages` collects what its session delivers. */
async function resume (t: T, url: string, clientId: string): Promise<{ client: MqttClient, sessionPresent: boolean, messages: Array<{ topic: string, payload: string }> }> {
  let messages: Array<{ topic: string, payload: string }> = []
  const { client, connack } = await openUrl(t, url, { clientId, clean: false }, (c) => { messages = collect(c) })
  return { client, sessionPresent: connack.sessionPresent, messages }
}

const cap = 50
const capConfig: ConfigInput = { sessions: { maxQueuedMessages: cap, expirySeconds: 0 } }

for (const mode of ['memory', 'redis (2 nodes)', 'redis cluster (2 nodes)'] as const) {
  t.test(`queue cap (${mode}): an offline session keeps the first ${cap} messages, the rest are counted drops`, async (t) => {
    let nodes: BrokerHandle[]
    if (mode === 'memory') {
      nodes = [await startBroker(t, capConfig)]
    } else {
      const redis = await (mode === 'redis (2 nodes)' ? startRedis : startRedisCluster)(t)
      nodes = [await startBroker(t, { ...capConfig, redis: { url: redis.url } }), await startBroker(t, { ...capConfig, redis: { url: redis.url } })]
    }
    const publisherNode = nodes[0] as BrokerHandle
    const subscriberNode = nodes[nodes.length - 1] as BrokerHandle
    const subUrl = brokerUrl(subscriberNode, 'tcp')
    await leaveSession(t, subUrl, 'full', 'q/#')
    await leaveSession(t, subUrl, 'under', 'q/b')
    if (nodes.length > 1) await sleep(300) // the subscriptions reach the other node

    const { client: pub } = await openUrl(t, brokerUrl(publisherNode, 'tcp'))
    const sent: string[] = []
    let acked = 0
    for (let i = 0; i < 80; i++) {
      const topic = i % 4 === 3 ? 'q/b' : 'q/a' // 20 on q/b
      await pub.publishAsync(topic, `m${i}`, { qos: 1 })
      acked++
      sent.push(`m${i}`)
    }
    t.equal(acked, 80, 'every publish is acknowledged, drops included')

    const full = await resume(t, subUrl, 'full')
    t.equal(full.sessionPresent, true)
    await waitFor(() => full.messages.length >= cap, `${cap} queued messages`)
    await sleep(300)
    t.same(full.messages.map((m) => m.payload), sent.slice(0, cap), 'exactly the first messages, in order (drop-new)')
    t.equal(await metricSum(nodes, 'realtime_broker_dropped_messages_total', { reason: 'queue_full' }), 80 - cap, 'each message not stored is counted')

    const under = await resume(t, subUrl, 'under')
    await waitFor(() => under.messages.length >= 20, '20 messages on q/b')
    await sleep(200)
    t.same(under.messages.map((m) => m.payload), sent.filter((_, i) => i % 4 === 3), 'a session under the cap gets every message')

    // acknowledged messages leave the queue: the session stores again
    await closeClient(full.client, false)
    await pub.publishAsync('q/a', 'after', { qos: 1 })
    const again = await resume(t, subUrl, 'full')
    await waitFor(() => again.messages.length >= 1, 'the message published after the queue emptied')
    t.same(again.messages.map((m) => m.payload), ['after'])
    t.equal(await metricSum(nodes, 'realtime_broker_dropped_messages_total', { reason: 'queue_full' }), 80 - cap, 'no further drop')
  })
}

/** A raw MQTT client that acknowledges nothing until told to. */
async function rawSession (t: T, port: number, clientId: string, filter: string): Promise<{ publishes: mqttPacket.IPublishPacket[], ackAll: () => void, closed: () => boolean }> {
  const socket = createConnection(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const publishes: mqttPacket.IPublishPacket[] = []
  let suback = false
  let closed = false
  parser.on('packet', (packet: mqttPacket.Packet) => {
    if (packet.cmd === 'publish') publishes.push(packet)
    if (packet.cmd === 'suback') suback = true
  })
  socket.on('data', (chunk: Buffer) => parser.parse(chunk))
  socket.on('close', () => { closed = true })
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId, keepalive: 60 }))
  socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] }))
  await waitFor(() => suback, 'SUBACK')
  return {
    publishes,
    ackAll: () => { for (const p of publishes) socket.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId ?? 0 })) },
    closed: () => closed
  }
}

for (const mode of ['memory', 'redis'] as const) {
  t.test(`queue cap (${mode}): a connected session over its cap gets messages live, once, and stays connected`, async (t) => {
    const config: ConfigInput = { sessions: { maxQueuedMessages: 5, expirySeconds: 0 } }
    const broker = await startBroker(t, mode === 'memory' ? config : { ...config, redis: { url: (await startRedis(t)).url } })
    const url = brokerUrl(broker, 'tcp')
    await leaveSession(t, url, 'other', 'live/b')
    const slow = await rawSession(t, broker.addresses.mqtt.port, 'slow', 'live/#')
    const { client: pub } = await openUrl(t, url)
    for (let i = 0; i < 5; i++) await pub.publishAsync('live/a', `a${i}`, { qos: 1 }) // fills slow's queue: unacknowledged
    for (let i = 0; i < 3; i++) await pub.publishAsync('live/b', `b${i}`, { qos: 1 }) // stored for other only
    await waitFor(() => slow.publishes.length >= 8, 'eight live messages')
    t.same(slow.publishes.map((p) => String(p.payload)), ['a0', 'a1', 'a2', 'a3', 'a4', 'b0', 'b1', 'b2'])
    t.equal(metricValue(await scrape(broker), 'realtime_broker_dropped_messages_total', { reason: 'queue_full' }), 3, 'three not stored for the slow session')
    slow.ackAll()
    await sleep(300)
    t.equal(slow.closed(), false, 'the slow session was not disconnected')
    // acknowledging a message it did not hold must not release the copy another session holds
    const other = await resume(t, url, 'other')
    await waitFor(() => other.messages.length >= 3, 'the messages queued for the other session')
    t.same(other.messages.map((m) => m.payload), ['b0', 'b1', 'b2'])
  })
}

t.test('session expiry (memory): an abandoned session is deleted, one that came back is kept', async (t) => {
  const broker = await startBroker(t, { sessions: { maxQueuedMessages: 100, expirySeconds: 2 } })
  const url = brokerUrl(broker, 'tcp')
  await leaveSession(t, url, 'gone', 'e/#')
  await leaveSession(t, url, 'back', 'e/#')
  const { client: pub } = await openUrl(t, url)
  await pub.publishAsync('e/x', 'queued', { qos: 1 })

  const back = await resume(t, url, 'back') // well before the TTL
  t.equal(back.sessionPresent, true)
  await waitFor(() => back.messages.length === 1, 'the queued message')
  await closeClient(back.client, false)
  const backOnline = await resume(t, url, 'back') // and stays connected through the TTL

  await sleep(2800) // the TTL, and a sweep (every 500 ms)
  t.equal(metricValue(await scrape(broker), 'realtime_broker_sessions_expired_total'), 1, 'one session expired')

  const gone = await resume(t, url, 'gone')
  t.equal(gone.sessionPresent, false, 'the expired session is gone [MQTT-3.2.2-2]')
  await sleep(300)
  t.same(gone.messages, [], 'with its queued messages')
  await pub.publishAsync('e/y', 'new', { qos: 1 })
  await sleep(200)
  t.same(gone.messages, [], 'and its subscriptions')

  await waitFor(() => backOnline.messages.length === 1, 'the message, live')
  await closeClient(backOnline.client, false)
  const backAgain = await resume(t, url, 'back')
  t.equal(backAgain.sessionPresent, true, 'a session whose client stayed connected is kept')
})

// on one Redis, and on a Redis Cluster, where the sessions' keys share one slot and an expired
// session's queue is released key by key
const redisSetups = [{ name: 'redis', start: startRedis }, { name: 'redis cluster', start: startRedisCluster }]

for (const { name, start } of redisSetups) t.test(`session expiry (${name}, 2 nodes): expired exactly once in the cluster, kept when resumed on another node`, async (t) => {
  const redis = await start(t)
  const config: ConfigInput = { sessions: { maxQueuedMessages: 100, expirySeconds: 2 }, redis: { url: redis.url } }
  const a = await startBroker(t, config)
  const b = await startBroker(t, config)
  await leaveSession(t, brokerUrl(a, 'tcp'), 'gone', 'e/#')
  await leaveSession(t, brokerUrl(a, 'tcp'), 'moved', 'e/#')
  await sleep(300)
  const { client: pub } = await openUrl(t, brokerUrl(b, 'tcp'))
  await pub.publishAsync('e/x', 'queued', { qos: 1 })

  const moved = await resume(t, brokerUrl(b, 'tcp'), 'moved') // on the other node, before the TTL
  t.equal(moved.sessionPresent, true)
  await waitFor(() => moved.messages.length === 1, 'the queued message on the other node')
  // taken over by a connection on the other node: the old connection's end must not count
  const { client: first } = await openUrl(t, brokerUrl(a, 'tcp'), { clientId: 'taken', clean: false })
  await first.subscribeAsync('e/#', { qos: 1 })
  const taken = await resume(t, brokerUrl(b, 'tcp'), 'taken')
  await waitFor(() => !first.connected, 'the first connection closed by the takeover')

  const deadline = Date.now() + 6000
  while (await metricSum([a, b], 'realtime_broker_sessions_expired_total') < 1 && Date.now() < deadline) await sleep(100)
  await sleep(1000) // two more sweeps on each node
  t.equal(await metricSum([a, b], 'realtime_broker_sessions_expired_total'), 1, 'one node expired the session, once')

  const { db, keys, keysMatching } = inspectRedis(t, redis.url)
  t.same(await keysMatching('packet:*'), [], 'no queued packet left behind')
  t.equal(await db.zscore(keys.shared('sessions', 'offline'), 'gone'), null)

  const gone = await resume(t, brokerUrl(b, 'tcp'), 'gone')
  t.equal(gone.sessionPresent, false, 'the expired session is gone on every node')
  await sleep(300)
  t.same(gone.messages, [])

  await closeClient(moved.client, false)
  const movedAgain = await resume(t, brokerUrl(a, 'tcp'), 'moved')
  t.equal(movedAgain.sessionPresent, true, 'the session resumed on the other node was kept')
  await closeClient(taken.client, false)
  const takenAgain = await resume(t, brokerUrl(a, 'tcp'), 'taken')
  t.equal(takenAgain.sessionPresent, true, 'the session taken over on the other node was kept')
})

for (const { name, start } of redisSetups) t.test(`session expiry (${name}): the sessions of a node killed with SIGKILL expire on a survivor`, async (t) => {
  const redis = await start(t)
  const dir = mkdtempSync(join(tmpdir(), 'rb-sessions-'))
  const file = join(dir, 'node.yaml')
  const shared = { sessions: { maxQueuedMessages: 100, expirySeconds: 2 }, presence: { enabled: true, heartbeatMs: 200, nodeTimeoutMs: 600 } }
  writeFileSync(file, JSON.stringify({ ...shared, auth: { anonymous: true }, redis: { url: redis.url } }))
  const survivor = await startBroker(t, { ...shared, redis: { url: redis.url } })
  const doomed = await spawnBroker(t, ['--config', file], { NODE_ID: 'doomed', LOG_LEVEL: 'warn' })
  const { client } = await openUrl(t, `mqtt://127.0.0.1:${doomed.mqttPort}`, { clientId: 'orphan', clean: false })
  await client.subscribeAsync('o/#', { qos: 1 })
  await openUrl(t, `mqtt://127.0.0.1:${doomed.mqttPort}`, { clientId: 'ephemeral', clean: true })
  await sleep(300) // its heartbeat and session reach Redis
  doomed.child.kill('SIGKILL')
  await doomed.exited

  const deadline = Date.now() + 8000
  while (metricValue(await scrape(survivor), 'realtime_broker_sessions_expired_total') < 1 && Date.now() < deadline) await sleep(100)
  t.equal(metricValue(await scrape(survivor), 'realtime_broker_sessions_expired_total'), 1, 'the orphaned session expired')
  const { db, keys } = inspectRedis(t, redis.url)
  t.same(await db.hgetall(keys.shared('sessions', 'owner')), {}, 'neither its client id nor that of a clean session on the dead node has an owner left (client-id-owner.ts)')
  t.same(await db.hgetall(keys.shared('sessions', 'holder')), {}, 'nor a holder on the dead node')
  const orphan = await resume(t, brokerUrl(survivor, 'tcp'), 'orphan')
  t.equal(orphan.sessionPresent, false)
})

t.test('a CleanSession 1 connection discards the queued messages of the previous session [MQTT-3.1.2-6]', async (t) => {
  const broker = await startBroker(t, { sessions: { maxQueuedMessages: 2, expirySeconds: 0 } })
  const url = brokerUrl(broker, 'tcp')
  await leaveSession(t, url, 'fresh', 'c/#')
  const { client: pub } = await openUrl(t, url)
  for (const payload of ['c0', 'c1']) await pub.publishAsync('c/x', payload, { qos: 1 })
  let got: Array<{ payload: string }> = []
  const { client } = await openUrl(t, url, { clientId: 'fresh', clean: true }, (c) => { got = collect(c) })
  await sleep(300)
  t.same(got, [], 'nothing of the old session is delivered')
  await closeClient(client)
  // the discarded messages no longer count against the cap of a new persistent session
  await leaveSession(t, url, 'fresh', 'c/#')
  for (const payload of ['c2', 'c3']) await pub.publishAsync('c/x', payload, { qos: 1 })
  const again = await resume(t, url, 'fresh')
  await waitFor(() => again.messages.length >= 2, 'two queued messages')
  t.same(again.messages.map((m) => m.payload), ['c2', 'c3'])
})
