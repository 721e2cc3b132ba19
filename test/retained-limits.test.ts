// Retained caps (issue #24, item 8): a user cannot fill the retained store. Over a cap a
// retained message is delivered live but not stored, and counted; replacing or clearing a
// topic frees its slot. One node and two nodes on one Redis, MQTT over TCP and WebSocket, and
// the HTTP publish API.
import jwt from 'jsonwebtoken'
import t, { type Test } from 'tap'
import type { BrokerHandle } from '../src/server.js'
import type { ConfigInput } from '../src/broker/config/config.js'
import { collect, connectClient, metricValue, sleep, startBroker, waitFor, type Transport } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'

const secret = 'retained-limits-secret-0123456789abcdef'
const token = (user: string): string => jwt.sign({ sub: user }, secret, { expiresIn: 600 })
const as = (user: string): { username: string, password: string } => ({ username: '', password: token(user) })

function config (extra: ConfigInput = {}): ConfigInput {
  return {
    auth: { anonymous: false, jwt: { secret } },
    acl: {
      roles: { member: { pub: ['r/#'], sub: ['r/#'], limits: { maxRetained: 3, maxRetainedBytes: 1000 } } },
      users: {},
      defaultRoles: ['member']
    },
    limits: { maxRetainedMessages: 6 },
    ...extra
  }
}

/** The retained messages a new subscriber to `filter` gets: topic -> payload. */
async function retainedOf (t: Test, broker: BrokerHandle, filter: string): Promise<Record<string, string>> {
  const reader = await connectClient(t, broker, 'tcp', as('reader'))
  const got = collect(reader)
  await reader.subscribeAsync(filter, { qos: 1 })
  await sleep(150)
  await reader.endAsync()
  return Object.fromEntries(got.filter((m) => m.packet.retain).map((m) => [m.topic, m.payload]))
}

async function notStored (broker: BrokerHandle, limit: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  return metricValue(text, 'realtime_broker_retained_not_stored_total', { limit })
}

async function publishRetained (t: Test, broker: BrokerHandle, user: string, messages: Record<string, string>, transport: Transport = 'tcp'): Promise<void> {
  const client = await connectClient(t, broker, transport, as(user))
  for (const [topic, payload] of Object.entries(messages)) await client.publishAsync(topic, payload, { qos: 1, retain: true })
  await client.endAsync()
}

t.test('one node: per-user count and bytes, and the broker-wide cap', async (t) => {
  const broker = await startBroker(t, config())
  const live = await connectClient(t, broker, 'tcp', as('live'))
  const delivered = collect(live)
  await live.subscribeAsync('r/#', { qos: 1 })

  await publishRetained(t, broker, 'filler', { 'r/f/1': 'a', 'r/f/2': 'b', 'r/f/3': 'c' })
  await publishRetained(t, broker, 'filler', { 'r/f/4': 'd' }, 'ws')
  await waitFor(() => delivered.some((m) => m.topic === 'r/f/4'), 'the message over the cap delivered live')
  t.same(await retainedOf(t, broker, 'r/f/#'), { 'r/f/1': 'a', 'r/f/2': 'b', 'r/f/3': 'c' }, 'the fourth is not stored')
  t.equal(await notStored(broker, 'user_count'), 1, 'counted')

  await publishRetained(t, broker, 'filler', { 'r/f/1': 'A' })
  t.same(await retainedOf(t, broker, 'r/f/1'), { 'r/f/1': 'A' }, 'replacing an own topic needs no new slot')
  await publishRetained(t, broker, 'filler', { 'r/f/2': '' })
  await publishRetained(t, broker, 'filler', { 'r/f/4': 'd' })
  t.same(await retainedOf(t, broker, 'r/f/#'), { 'r/f/1': 'A', 'r/f/3': 'c', 'r/f/4': 'd' }, 'clearing a topic frees its slot')

  const kb = (n: number): string => 'x'.repeat(n)
  await publishRetained(t, broker, 'bulky', { 'r/b/1': kb(600), 'r/b/2': kb(600) })
  t.same(Object.keys(await retainedOf(t, broker, 'r/b/#')), ['r/b/1'], 'over the user\'s bytes: not stored')
  t.equal(await notStored(broker, 'user_bytes'), 1)
  await publishRetained(t, broker, 'bulky', { 'r/b/1': kb(900) })
  t.equal((await retainedOf(t, broker, 'r/b/1'))['r/b/1']?.length, 900, 'a replacement counts its new size only')

  // 3 (filler) + 1 (bulky) stored; the cap is 6
  await publishRetained(t, broker, 'third', { 'r/t/1': '1', 'r/t/2': '2', 'r/t/3': '3' })
  t.same(Object.keys(await retainedOf(t, broker, 'r/t/#')).sort(), ['r/t/1', 'r/t/2'], 'over the broker-wide cap: not stored')
  t.equal(await notStored(broker, 'global_count'), 1)
  t.ok(delivered.some((m) => m.topic === 'r/t/3'), 'but delivered live')

  // the HTTP publish API meets the same caps
  const response = await fetch(`http://127.0.0.1:${broker.addresses.http.port}/api/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token('third')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ topic: 'r/t/4', payload: '4', retain: true })
  })
  t.equal(response.status, 200, 'accepted over HTTP')
  await waitFor(() => delivered.some((m) => m.topic === 'r/t/4'), 'delivered live')
  t.notOk('r/t/4' in await retainedOf(t, broker, 'r/t/#'), 'not stored')
  t.equal(await notStored(broker, 'global_count'), 2)
})

t.test('two nodes on Redis: a user\'s retained messages are counted across nodes', async (t) => {
  const redis = await startRedis(t)
  const a = await startBroker(t, config({ redis: { url: redis.url }, nodeId: 'retained-a' }))
  const b = await startBroker(t, config({ redis: { url: redis.url }, nodeId: 'retained-b' }))
  await publishRetained(t, a, 'roamer', { 'r/x/1': '1', 'r/x/2': '2' })
  await publishRetained(t, b, 'roamer', { 'r/x/3': '3', 'r/x/4': '4' }, 'ws')
  t.same(Object.keys(await retainedOf(t, a, 'r/x/#')).sort(), ['r/x/1', 'r/x/2', 'r/x/3'], 'the fourth, through the other node, is not stored')
  t.equal(await notStored(b, 'user_count'), 1, 'counted on the node that refused it')
  await publishRetained(t, b, 'roamer', { 'r/x/1': '' })
  await publishRetained(t, a, 'roamer', { 'r/x/4': '4' })
  t.same(Object.keys(await retainedOf(t, b, 'r/x/#')).sort(), ['r/x/2', 'r/x/3', 'r/x/4'], 'a slot cleared through one node is free on the other')
})

t.test('one node: users whose roles set no retained limits get limits.maxRetainedPerUser and maxRetainedBytesPerUser', async (t) => {
  const broker = await startBroker(t, config({
    acl: { roles: { member: { pub: ['r/#'], sub: ['r/#'] } }, users: {}, defaultRoles: ['member'] },
    limits: { maxRetainedPerUser: 2, maxRetainedBytesPerUser: 100 }
  }))
  await publishRetained(t, broker, 'plain', { 'r/p/1': '1', 'r/p/2': '2', 'r/p/3': '3' })
  await publishRetained(t, broker, 'wide', { 'r/w/1': 'x'.repeat(101) })
  t.same(Object.keys(await retainedOf(t, broker, 'r/#')).sort(), ['r/p/1', 'r/p/2'])
  t.equal(await notStored(broker, 'user_count'), 1)
  t.equal(await notStored(broker, 'user_bytes'), 1)
})
