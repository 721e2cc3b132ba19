// The interest-routed emitter: local delivery never goes through Redis, nodes receive only
// what their clients want, and a node whose Redis link is cut resumes without loss.
import t from 'tap'
import { collect, openUrl, sleep, waitFor } from './helpers/broker.js'
import { spawnBroker, type BrokerProcess } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import { inspectRedis, startRedisCluster } from './helpers/redis-cluster.js'
import { startTcpProxy } from './helpers/tcp-proxy.js'

const url = (node: BrokerProcess): string => `mqtt://127.0.0.1:${node.mqttPort}`

// on one Redis and on a Redis Cluster (the third test cuts one Redis link through a proxy)
const redisSetups = [{ on: 'one Redis', start: startRedis }, { on: 'a Redis Cluster', start: startRedisCluster }]

for (const { on, start } of redisSetups) t.test(`local delivery stays local; only interested nodes receive a message (${on})`, async (t) => {
  const redis = await start(t)
  const { db, keys, commandCalls } = inspectRedis(t, redis.url)
  const [a, b, c] = await Promise.all(['ra', 'rb', 'rc'].map((id) => spawnBroker(t, ['--redis', redis.url], { NODE_ID: id, LOG_LEVEL: 'warn' }))) as [BrokerProcess, BrokerProcess, BrokerProcess]
  const { client: localSub } = await openUrl(t, url(a))
  await localSub.subscribeAsync('local/#', { qos: 1 })
  const { client: remoteSub } = await openUrl(t, url(b))
  await remoteSub.subscribeAsync('remote/#', { qos: 0 })
  const localGot = collect(localSub)
  const remoteGot = collect(remoteSub)
  const { client: pub } = await openUrl(t, url(a))
  await sleep(300)

  const xaddsBefore = await commandCalls('xadd')
  for (let i = 0; i < 200; i++) await pub.publishAsync('local/x', String(i), { qos: 0 })
  await waitFor(() => localGot.length === 200, 'local deliveries')
  t.equal(await commandCalls('xadd'), xaddsBefore, 'no message went through Redis for a subscriber on the same node')

  for (let i = 0; i < 50; i++) await pub.publishAsync('remote/x', String(i), { qos: 0 })
  await waitFor(() => remoteGot.length === 50, 'cross-node deliveries')
  // inboxes also carry Aedes' own $SYS traffic, which every node wants: count the test topic
  const handedTo = async (node: string): Promise<number> => ((await db.xrangeBuffer(keys.owned('inbox', node), '-', '+')).flatMap(([, fields]) => fields).join('').match(/remote\/x/g) ?? []).length
  t.equal(await handedTo('rb'), 50, 'node b got exactly the 50 messages it wanted')
  t.equal(await handedTo('rc'), 0, 'node c, with no interest, got none of them')
  t.equal(c.child.exitCode, null)
})

for (const { on, start } of redisSetups) t.test(`a QoS 1 message wanted on its own node and on two others reaches all three, in order, and is acknowledged (${on})`, async (t) => {
  const redis = await start(t)
  const nodes = await Promise.all(['ja', 'jb', 'jc'].map((id) => spawnBroker(t, ['--redis', redis.url], { NODE_ID: id, LOG_LEVEL: 'warn' })))
  const subscribers = await Promise.all(nodes.map(async (node) => (await openUrl(t, url(node))).client))
  await Promise.all(subscribers.map(async (sub) => await sub.subscribeAsync('join/#', { qos: 1 })))
  const received = subscribers.map((sub) => collect(sub))
  const { client: pub } = await openUrl(t, url(nodes[0] as BrokerProcess))
  await sleep(300)
  const sent = Array.from({ length: 20 }, (_, i) => String(i))
  // each PUBACK waits for the local delivery and both hand-offs: a lost part would hang here
  for (const payload of sent) await pub.publishAsync('join/x', payload, { qos: 1 })
  await waitFor(() => received.every((got) => got.length >= sent.length), 'every subscriber has every message')
  for (const [i, got] of received.entries()) t.same(got.map((m) => m.payload), sent, `subscriber on node ${i}: each message once, in order`)
})

t.test('a node whose Redis link is cut for 5 s under a QoS 1 stream loses nothing', async (t) => {
  const redis = await startRedis(t)
  const proxy = await startTcpProxy(t, redis.port)
  const a = await spawnBroker(t, ['--redis', redis.url], { NODE_ID: 'ca', LOG_LEVEL: 'warn' })
  const b = await spawnBroker(t, ['--redis', `redis://127.0.0.1:${proxy.port}`], { NODE_ID: 'cb', LOG_LEVEL: 'warn' })
  // an online subscriber and a persistent one, both on the node whose link is cut
  const { client: online } = await openUrl(t, url(b))
  await online.subscribeAsync('stream/#', { qos: 1 })
  const onlineGot = new Set<number>()
  online.on('message', (_t, p) => onlineGot.add(Number(p.toString())))
  const { client: pub } = await openUrl(t, url(a))
  await sleep(300)

  const acked = new Set<number>()
  let n = 0
  const publishFor = async (ms: number): Promise<void> => {
    const end = Date.now() + ms
    while (Date.now() < end) {
      const i = n++
      await pub.publishAsync('stream/n', String(i), { qos: 1 })
      acked.add(i)
    }
  }
  await publishFor(500)
  proxy.cut()
  await publishFor(5000)
  proxy.restore()
  await publishFor(500)
  await waitFor(() => [...acked].every((i) => onlineGot.has(i)), 'every acknowledged message at the online subscriber', 20_000).catch(() => {})
  const missing = [...acked].filter((i) => !onlineGot.has(i))
  t.ok(acked.size > 100, `${acked.size} messages acknowledged, ${n - acked.size} not`)
  t.same(missing, [], 'the online subscriber missed nothing: node b resumed its inbox where it stopped')
  t.equal(b.child.exitCode, null, 'node b kept running')
})
