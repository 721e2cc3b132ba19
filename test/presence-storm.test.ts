// Presence storms (issue #24, item 9): one user opening and closing connections in a loop
// must not flood the observers of $presence/+, and must not open connections without bound.
// One node and two nodes on one Redis, real clients over TCP and WebSocket.
import jwt from 'jsonwebtoken'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import type { BrokerHandle } from '../src/server.js'
import type { ConfigInput } from '../src/broker/config/config.js'
import { brokerUrl, closeClient, connectClient, connectRefused, metricValue, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'
import { startRedisCluster } from './helpers/redis-cluster.js'

const secret = 'presence-storm-secret-0123456789abcdef'
const as = (user: string): { username: string, password: string } => ({ username: '', password: jwt.sign({ sub: user }, secret, { expiresIn: 600 }) })
const acl = (limits: object = {}): object => ({
  roles: { member: { pub: ['chat/#'], sub: ['$presence/+'], limits } },
  users: {},
  defaultRoles: ['member']
})
const intervalMs = 400


interface PresenceUpdate { online: boolean, connections: number }

/** Every presence update of `user` a watcher of $presence/+ receives, in order. */
async function watchPresence (t: Test, broker: BrokerHandle, user: string): Promise<PresenceUpdate[]> {
  const watcher = await connectClient(t, broker, 'tcp', as('watcher'))
  const updates: PresenceUpdate[] = []
  watcher.on('message', (topic, payload) => { if (topic === `$presence/${user}`) updates.push(JSON.parse(payload.toString()) as PresenceUpdate) })
  await watcher.subscribeAsync('$presence/+', { qos: 1 })
  return updates
}

/** Opens and closes connections of `user` for `ms`, alternating brokers and transports. */
async function storm (t: Test, brokers: BrokerHandle[], user: string, ms: number): Promise<number> {
  const deadline = Date.now() + ms
  let cycles = 0
  while (Date.now() < deadline) {
    const broker = brokers[cycles % brokers.length] as BrokerHandle
    const { client } = await openUrl(t, brokerUrl(broker, cycles % 3 === 0 ? 'ws' : 'tcp'), as(user))
    await closeClient(client, cycles % 2 === 0)
    cycles++
  }
  return cycles
}

async function metrics (broker: BrokerHandle): Promise<string> {
  return await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
}

function config (extra: ConfigInput = {}): ConfigInput {
  return {
    auth: { anonymous: false, jwt: { secret } },
    acl: acl() as ConfigInput['acl'],
    // the storm itself is not rate limited here: what is measured is the coalescing
    limits: { maxConnectRatePerUser: 0 },
    presence: { minUpdateIntervalMs: intervalMs, heartbeatMs: 200, nodeTimeoutMs: 1000 },
    ...extra
  }
}

/** The storm's updates are bounded by the interval; the last one says the user is offline. */
async function checkStorm (t: Test, brokers: BrokerHandle[], updates: PresenceUpdate[]): Promise<void> {
  const started = Date.now()
  const cycles = await storm(t, brokers, 'stormy', 2000)
  const elapsed = Date.now() - started
  t.ok(cycles >= 40, `a storm of ${cycles} connect/disconnect cycles`)
  await waitFor(() => updates.at(-1)?.online === false && updates.at(-1)?.connections === 0, 'the final state: offline', 5000)
  await sleep(intervalMs * 2)
  // one update per interval cluster-wide, plus the trailing one
  const bound = Math.ceil(elapsed / intervalMs) + 2
  t.ok(updates.length <= bound, `${updates.length} updates for ${cycles * 2} changes (at most ${bound})`)
  t.match(updates.at(-1), { online: false, connections: 0 }, 'the last update is the final state')

  // a connection that stays: its state follows within an interval
  const stays = await connectClient(t, brokers[0] as BrokerHandle, 'tcp', as('stormy'))
  await waitFor(() => updates.at(-1)?.online === true, 'online again', intervalMs * 3)
  t.match(updates.at(-1), { online: true, connections: 1 })
  await closeClient(stays)
}

t.test('one node: a connect/disconnect storm costs observers one update per interval', async (t) => {
  const broker = await startBroker(t, config())
  const updates = await watchPresence(t, broker, 'stormy')
  await checkStorm(t, [broker], updates)
})

// one Redis, and a Redis Cluster (presence's keys share one slot there)
const redisSetups = [{ name: 'Redis', start: startRedis }, { name: 'a Redis Cluster', start: startRedisCluster }]

for (const { name, start } of redisSetups) t.test(`two nodes on ${name}: the storm alternates nodes, still one update per interval`, async (t) => {
  const redis = await start(t)
  const a = await startBroker(t, config({ redis: { url: redis.url }, nodeId: 'storm-a' }))
  const b = await startBroker(t, config({ redis: { url: redis.url }, nodeId: 'storm-b' }))
  const updates = await watchPresence(t, b, 'stormy')
  await checkStorm(t, [a, b], updates)
})

/** Connects `count` clients of `user`, over TCP and WebSocket in turn. */
async function connectMany (t: Test, brokers: BrokerHandle[], user: string, count: number): Promise<MqttClient[]> {
  const clients: MqttClient[] = []
  for (let i = 0; i < count; i++) clients.push(await connectClient(t, brokers[i % brokers.length] as BrokerHandle, i % 2 === 0 ? 'tcp' : 'ws', as(user)))
  return clients
}

t.test('one node: the connection limit refuses the N+1th connection of a user (CONNACK 5), counted', async (t) => {
  const broker = await startBroker(t, config({ acl: acl({ maxConnections: 3 }) as ConfigInput['acl'] }))
  const clients = await connectMany(t, [broker], 'many', 3)
  t.equal(await connectRefused(t, brokerUrl(broker, 'tcp'), as('many')), 5, 'the fourth gets CONNACK 5')
  t.equal(await connectRefused(t, brokerUrl(broker, 'ws'), as('many')), 5, 'over WebSocket too')
  t.equal(metricValue(await metrics(broker), 'realtime_broker_auth_failures_total', { reason: 'connection_limit' }), 2, 'counted')
  await connectClient(t, broker, 'tcp', as('other'))
  t.pass('another user is not affected')
  await closeClient(clients[0] as MqttClient, false)
  await waitFor(() => broker.aedes.connectedClients === 3, 'one closed')
  await sleep(50)
  await connectClient(t, broker, 'tcp', as('many'))
  t.pass('a closed connection makes room')
})

t.test('one node: the connect rate limit refuses connections over the rate (CONNACK 5), counted', async (t) => {
  const broker = await startBroker(t, config({ limits: { maxConnectRatePerUser: 3 } }))
  const clients = await connectMany(t, [broker], 'hasty', 3)
  t.equal(await connectRefused(t, brokerUrl(broker, 'tcp'), as('hasty')), 5, 'the fourth within a second gets CONNACK 5')
  t.equal(metricValue(await metrics(broker), 'realtime_broker_auth_failures_total', { reason: 'connect_rate_limit' }), 1, 'counted')
  await Promise.all(clients.map((client) => closeClient(client)))
  await sleep(1100)
  await connectClient(t, broker, 'tcp', as('hasty'))
  t.pass('accepted again once the bucket refilled')
})

for (const { name, start } of redisSetups) t.test(`two nodes on ${name}: the connection limit counts the user across nodes`, async (t) => {
  const redis = await start(t)
  const limited = (nodeId: string): ConfigInput => config({ redis: { url: redis.url }, nodeId, acl: acl({ maxConnections: 2 }) as ConfigInput['acl'] })
  const a = await startBroker(t, limited('limit-a'))
  const b = await startBroker(t, limited('limit-b'))
  const clients = await connectMany(t, [a, b], 'roamer', 2)
  await sleep(100) // the counts reach Redis once the clients are ready
  t.equal(await connectRefused(t, brokerUrl(a, 'tcp'), as('roamer')), 5, 'a third connection on either node is refused')
  t.equal(await connectRefused(t, brokerUrl(b, 'ws'), as('roamer')), 5)
  await closeClient(clients[1] as MqttClient, false)
  await waitFor(() => b.aedes.connectedClients === 0, 'closed on b')
  await sleep(100)
  await connectClient(t, a, 'tcp', as('roamer'))
  t.pass('a connection closed on one node makes room on the other')
})
