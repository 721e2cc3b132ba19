// A CleanSession 1 CONNECT discards the previous session [MQTT-3.1.2-6] in two Redis round
// trips: the client-id claim that also discards the session store's record of it
// (client-id-owner.ts), and Aedes' clean-start work (subscriptions, queue, incoming QoS 2
// packets, this node's will) in one persistence call (aedes-persistence-redis' cleanSession,
// patches/). On a Redis Cluster the same state goes, key by key.
import { Redis } from 'ioredis'
import type { MqttClient } from 'mqtt'
import t from 'tap'
import { brokerUrl, closeClient, collect, openUrl, sleep, startBroker } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'
import { inspectRedis, startRedisCluster } from './helpers/redis-cluster.js'

/** Leaves session `fresh` behind: a subscription, a queued message, an offline record. */
async function leaveSession (t: Parameters<typeof startBroker>[0], url: string): Promise<void> {
  const { client } = await openUrl(t, url, { clientId: 'fresh', clean: false })
  await client.subscribeAsync('c/#', { qos: 1 })
  await closeClient(client, false)
  const { client: pub } = await openUrl(t, url)
  await pub.publishAsync('c/x', 'queued', { qos: 1 })
  await closeClient(pub)
}

for (const mode of ['redis', 'redis cluster'] as const) {
  t.test(`${mode}: a clean CONNECT discards every part of the previous session`, async (t) => {
    const url = mode === 'redis' ? (await startRedis(t)).url : (await startRedisCluster(t)).url
    const broker = await startBroker(t, { redis: { url }, sessions: { maxQueuedMessages: 100, expirySeconds: 3600 } })
    const mqttUrl = brokerUrl(broker, 'tcp')
    const { db, keys, keysMatching } = inspectRedis(t, url)
    await leaveSession(t, mqttUrl)
    // what a connection of this node that crashed mid-QoS 2 exchange leaves (the node's id is
    // stable across restarts): an incoming packet, and its will, as aedes-persistence-redis keeps them
    const willKey = `will:${broker.nodeId}:fresh`
    await db.rpush('will', willKey)
    await db.set(willKey, 'a will')
    await db.hset('incoming:fresh', '7', 'a packet')
    const left = (await keysMatching('*fresh*')).sort()
    for (const key of ['client:fresh', 'outgoing:fresh', 'incoming:fresh', willKey]) t.ok(left.includes(key), `${key} is stored (${left.join(', ')})`)
    t.not(await db.zscore(keys.shared('sessions', 'offline'), 'fresh'), null, 'the session is offline, due to expire')

    let got: Array<{ payload: string }> = []
    const { client, connack } = await openUrl(t, mqttUrl, { clientId: 'fresh', clean: true }, (c) => { got = collect(c) })
    t.equal(connack.sessionPresent, false, '[MQTT-3.2.2-1]')
    await sleep(300)
    t.same(got, [], 'nothing of the old session is delivered')
    t.same((await keysMatching('*fresh*')).filter((key) => !key.includes('sessions')), [], 'no subscription, queue, incoming packet or will of it is left')
    t.same(await db.lrange('will', 0, -1), [], 'nor the will in the list of wills')
    t.equal(await db.zscore(keys.shared('sessions', 'offline'), 'fresh'), null, 'the session store no longer expires it')
    t.equal(await db.hget(keys.shared('sessions', 'online'), 'fresh'), null, 'nor holds it online')
    await closeClient(client)
  })
}

t.test('a clean CONNECT costs two round trips to Redis, both scripts run by their SHA', async (t) => {
  const redis = await startRedis(t)
  const broker = await startBroker(t, { redis: { url: redis.url } })
  const url = brokerUrl(broker, 'tcp')
  // the first CONNECT loads the scripts (EVALSHA, then EVAL once on NOSCRIPT)
  await closeClient((await openUrl(t, url, { clientId: 'warm' })).client, false)
  await sleep(300)
  const monitor = new Redis(redis.url)
  t.teardown(() => monitor.disconnect())
  // the commands the broker sends that name a client id (not those its scripts run)
  const seen = new Map<string, string[]>()
  const feed = await monitor.monitor()
  feed.on('monitor', (_time: string, args: string[], source: string) => {
    const clientId = args.find((arg) => /clean-\d/.test(arg))?.match(/clean-\d/)?.[0]
    if (source === 'lua' || clientId === undefined) return
    seen.set(clientId, [...seen.get(clientId) ?? [], (args[0] ?? '').toLowerCase()])
  })
  await sleep(200)
  const clients: MqttClient[] = []
  for (let i = 0; i < 5; i++) clients.push((await openUrl(t, url, { clientId: `clean-${i}`, clean: true })).client)
  await sleep(300)
  feed.disconnect()
  for (let i = 0; i < 5; i++) t.same(seen.get(`clean-${i}`), ['evalsha', 'evalsha'], `clean-${i}: the client-id claim, then the clean-start script`)
  for (const client of clients) await closeClient(client, false)
})
