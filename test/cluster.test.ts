// Three broker processes on one real Redis act as one broker.
import t from 'tap'
import { closeClient, collect, openUrl, sleep, waitFor } from './helpers/broker.js'
import { spawnBroker, type BrokerProcess } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import { startRedisCluster } from './helpers/redis-cluster.js'
import type { Teardown } from './helpers/loopback.js'

const url = (node: BrokerProcess): string => `mqtt://127.0.0.1:${node.mqttPort}`

async function threeNodes (t: Teardown, redisUrl: string, emitter: string): Promise<BrokerProcess[]> {
  return await Promise.all(['a', 'b', 'c'].map((id) => spawnBroker(t, ['--redis', redisUrl], { NODE_ID: `node-${id}`, LOG_LEVEL: 'warn', REDIS_EMITTER: emitter })))
}

// The same behaviour with either emitter between the nodes, and on a Redis Cluster (where the
// stock emitter cannot run).
const setups = [
  { emitter: 'routed', redis: 'one Redis', start: startRedis },
  { emitter: 'mqemitter-redis', redis: 'one Redis', start: startRedis },
  { emitter: 'routed', redis: 'a Redis Cluster', start: startRedisCluster }
]
for (const { emitter, redis: where, start } of setups) t.test(`cluster (${emitter} emitter): three nodes on ${where}`, async (t) => {
  const redis = await start(t)
  const [a, b, c] = await threeNodes(t, redis.url, emitter) as [BrokerProcess, BrokerProcess, BrokerProcess]

  t.test('/readyz reports Redis', async (t) => {
    const body = await (await fetch(`http://127.0.0.1:${a.httpPort}/readyz`)).json()
    t.match(body, { status: 'ready', checks: { listeners: true, redis: true } })
  })

  t.test('messages cross nodes at every QoS, with wildcards', async (t) => {
    const { client: sub } = await openUrl(t, url(b))
    await sub.subscribeAsync({ 'x/+/q0': { qos: 0 }, 'x/+/q1': { qos: 1 }, 'x/#': { qos: 2 } })
    const got = collect(sub)
    const { client: pub } = await openUrl(t, url(a))
    await sleep(200) // subscriptions reach the other nodes through Redis
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(`x/n/q${qos}`, `m${qos}`, { qos })
    await waitFor(() => got.length >= 3, 'three messages')
    await sleep(200)
    t.same(got.map((m) => m.payload).sort(), ['m0', 'm1', 'm2'], 'each once, though two filters match')
  })

  t.test('retained messages stored through one node are delivered by another', async (t) => {
    const { client: pub } = await openUrl(t, url(a))
    await pub.publishAsync('cfg/theme', 'dark', { qos: 1, retain: true })
    const { client: sub } = await openUrl(t, url(c))
    const got = collect(sub)
    await sub.subscribeAsync('cfg/#', { qos: 1 })
    await waitFor(() => got.length === 1, 'retained message')
    t.equal(got[0]?.payload, 'dark')
    t.equal(got[0]?.packet.retain, true)
  })

  t.test('a persistent session resumes on another node with its queued messages', async (t) => {
    const session = { clientId: 'roamer', clean: false }
    const { client: first } = await openUrl(t, url(a), session)
    await first.subscribeAsync('roam/#', { qos: 1 })
    await closeClient(first, false)
    const { client: pub } = await openUrl(t, url(b))
    for (let i = 0; i < 10; i++) await pub.publishAsync(`roam/${i}`, String(i), { qos: 1 })
    let got: ReturnType<typeof collect> = []
    const { connack } = await openUrl(t, url(c), session, (client) => { got = collect(client) })
    t.equal(connack.sessionPresent, true)
    await waitFor(() => got.length >= 10, 'ten queued messages')
    t.same(got.map((m) => m.payload), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
    // and its subscription is live on the new node
    await pub.publishAsync('roam/live', 'live', { qos: 1 })
    await waitFor(() => got.some((m) => m.payload === 'live'), 'live message on the new node')
  })

  t.test('connecting with a client id connected on another node takes the session over', async (t) => {
    const session = { clientId: 'twin', clean: false }
    const { client: first } = await openUrl(t, url(a), session)
    await first.subscribeAsync('twin/#', { qos: 1 })
    let closes = 0
    first.on('close', () => { closes++ })
    const { client: second } = await openUrl(t, url(b), session)
    await waitFor(() => closes === 1, 'the old connection closed')
    const got = collect(second)
    const { client: pub } = await openUrl(t, url(c))
    await sleep(200)
    for (let i = 0; i < 5; i++) await pub.publishAsync('twin/m', String(i), { qos: 1 })
    await waitFor(() => got.length >= 5, 'messages on the new connection')
    await sleep(300)
    t.equal(closes, 1, 'closed exactly once')
    t.same(got.map((m) => m.payload), ['0', '1', '2', '3', '4'], 'no message lost or doubled')
  })

  t.test('a will fires on other nodes when a client drops', async (t) => {
    const { client: watcher } = await openUrl(t, url(c))
    await watcher.subscribeAsync('status/#', { qos: 1 })
    const got = collect(watcher)
    const { client: device } = await openUrl(t, url(a), { will: { topic: 'status/device-1', payload: Buffer.from('offline'), qos: 1, retain: false } })
    await sleep(200)
    device.stream.destroy()
    await waitFor(() => got.length === 1, 'the will')
    t.equal(got[0]?.payload, 'offline')
  })
})
