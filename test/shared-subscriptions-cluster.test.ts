// Shared subscriptions across nodes on Redis: one delivery per group and message whichever node
// publishes it and wherever the members are, a plain subscriber's own copy, redispatch to a
// member on another node, and a dead node's share moving to the survivors.
import jwt from 'jsonwebtoken'
import t from 'tap'
import { collect, connectClient, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { spawnBroker } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import { RawClient, uniqueId } from './conformance/raw-client.js'
import type { BrokerHandle } from '../src/server.js'
import type { Teardown } from './helpers/loopback.js'

type Received = ReturnType<typeof collect>

async function startCluster (t: Teardown, count: number, config: object = {}): Promise<BrokerHandle[]> {
  const redis = await startRedis(t)
  const nodes: BrokerHandle[] = []
  for (let i = 0; i < count; i++) nodes.push(await startBroker(t, { ...config, redis: { url: redis.url }, nodeId: `share-${i}` }))
  return nodes
}

/** How many times each payload was received over all of `members`. */
function countsOf (members: Received[]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const got of members) for (const { payload } of got) counts.set(payload, (counts.get(payload) ?? 0) + 1)
  return counts
}

t.test('three nodes: every message published on any node reaches the group once, members on every node get a share; a plain subscriber gets its own copy', async (t) => {
  const nodes = await startCluster(t, 3)
  const [a, b, c] = nodes as [BrokerHandle, BrokerHandle, BrokerHandle]
  // two members on a, one on b, none on c: c's messages all cross to another node
  const members = await Promise.all([a, a, b].map(async (node, i) => await connectClient(t, node, 'tcp', { protocolVersion: i === 1 ? 5 : 4 })))
  for (const member of members) await member.subscribeAsync('$share/cg/fleet/#', { qos: 2 })
  const plain = await connectClient(t, c, 'tcp')
  await plain.subscribeAsync('fleet/#', { qos: 1 })
  const got = members.map((member) => collect(member))
  const plainGot = collect(plain)
  const publishers = await Promise.all(nodes.map(async (node) => await connectClient(t, node, 'tcp')))
  await sleep(200)
  let total = 0
  for (const qos of [0, 1, 2] as const) {
    for (const [p, publisher] of publishers.entries()) {
      for (let i = 0; i < 30; i++) await publisher.publishAsync(`fleet/v${i % 5}`, `${qos}-${p}-${i}`, { qos })
    }
    total += 90
    await waitFor(() => got.reduce((sum, one) => sum + one.length, 0) >= total && plainGot.length >= total, `QoS ${qos}: the group and the plain subscriber have every message`)
  }
  await sleep(200)
  const counts = countsOf(got)
  t.equal(counts.size, total, 'the group got every message')
  t.ok([...counts.values()].every((n) => n === 1), 'none reached two members')
  t.equal(plainGot.length, total, 'the plain subscriber on the same filter got its own copy of each')
  for (const [i, one] of got.entries()) t.ok(one.length > 0, `member ${i} got a share (${one.length})`)
  const fromC = got.map((one) => one.filter((m) => m.payload.split('-')[1] === '2').length)
  t.ok(fromC.every((n) => n > 0), `messages published on the node without members reach members on both other nodes (${fromC.join(', ')})`)
})

t.test('a member on another node that goes away: what it had not acknowledged reaches the member on the publisher\'s node', async (t) => {
  const [a, b] = await startCluster(t, 2, { sharedSubscriptions: { strategy: 'hash_topic' } }) as [BrokerHandle, BrokerHandle]
  const silent = await RawClient.tcp(t, b.addresses.mqtt.port)
  await silent.connect({ clientId: uniqueId('silent') })
  await silent.subscribe({ '$share/rg/r/#': 1 })
  const steady = await connectClient(t, a, 'tcp')
  await steady.subscribeAsync('$share/rg/r/#', { qos: 1 })
  const steadyGot = collect(steady)
  const publisher = await connectClient(t, a, 'tcp')
  await sleep(200)
  // hash_topic: one topic per message, so that both members get some whichever the publisher's node
  const sent = Array.from({ length: 40 }, (_, i) => String(i))
  for (const payload of sent) await publisher.publishAsync(`r/${payload}`, payload, { qos: 1 })
  const silentGot = (await silent.drain(500)).filter((packet) => packet.cmd === 'publish')
  t.ok(silentGot.length > 0, `the silent member on the other node got some (${silentGot.length}) and acknowledged none`)
  t.equal(steadyGot.length + silentGot.length, sent.length, 'each message to one member')
  silent.destroy()
  await waitFor(() => steadyGot.length === sent.length, 'the silent member\'s messages at the other member')
  t.same(steadyGot.map((m) => m.payload).sort(), [...sent].sort(), 'zero loss, each once')
})

t.test('a node killed with SIGKILL: its members leave the group on every node and the survivors get the whole stream', async (t) => {
  const redis = await startRedis(t)
  const secret = 'shared-subscriptions-test-secret-0123456789'
  const dir = t.testdir({ 'node.yaml': JSON.stringify({ auth: { anonymous: true, jwt: { secret } }, acl: { users: { root: { roles: ['admin'] } } }, cluster: { heartbeatIntervalMs: 300 } }) })
  const asRoot = { headers: { authorization: `Bearer ${jwt.sign({ sub: 'root' }, secret, { expiresIn: 600 })}` } }
  const [a, b] = await Promise.all(['sk-a', 'sk-b'].map(async (id) => await spawnBroker(t, ['--config', `${dir}/node.yaml`, '--redis', redis.url], { NODE_ID: id, LOG_LEVEL: 'warn' })))
  if (a === undefined || b === undefined) throw new Error('two nodes')
  const { client: survivor } = await openUrl(t, `mqtt://127.0.0.1:${a.mqttPort}`)
  await survivor.subscribeAsync('$share/dg/d/#', { qos: 1 })
  const { client: doomed } = await openUrl(t, `mqtt://127.0.0.1:${b.mqttPort}`)
  doomed.on('error', () => {})
  await doomed.subscribeAsync('$share/dg/d/#', { qos: 1 })
  const { client: publisher } = await openUrl(t, `mqtt://127.0.0.1:${a.mqttPort}`, { protocolVersion: 5 })
  const survivorGot = collect(survivor)
  await sleep(200)
  const admin = async (): Promise<Array<{ group: string, members: Array<{ node: string }> }>> =>
    ((await (await fetch(`http://127.0.0.1:${a.httpPort}/api/v1/admin/shared-subscriptions`, asRoot)).json()) as { groups: Array<{ group: string, members: Array<{ node: string }> }> }).groups
  t.same((await admin()).find((group) => group.group === '$share/dg/d/#')?.members.map((m) => m.node).sort(), ['sk-a', 'sk-b'], 'the admin API lists the group with a member on each node')
  b.child.kill('SIGKILL')
  await b.exited
  // once the registry has taken b for dead (3 beats), only a's member is listed
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline && (await admin()).find((group) => group.group === '$share/dg/d/#')?.members.length !== 1) await sleep(100)
  t.same((await admin()).find((group) => group.group === '$share/dg/d/#')?.members.map((m) => m.node), ['sk-a'], 'the dead node\'s member is gone')
  const sent = Array.from({ length: 30 }, (_, i) => String(i))
  for (const payload of sent) await publisher.publishAsync('d/x', payload, { qos: 1 })
  await waitFor(() => survivorGot.length >= sent.length, 'the whole stream at the survivor')
  t.same(survivorGot.map((m) => m.payload), sent, 'every message, in order, at the survivor')
})

t.test('a group whose only member, on another node, is away with its persistent session: messages wait on the publisher\'s node for the next member, wherever it joins', async (t) => {
  const [a, b] = await startCluster(t, 2) as [BrokerHandle, BrokerHandle]
  const member = await connectClient(t, b, 'tcp', { clean: false, clientId: 'away-on-b' })
  await member.subscribeAsync('$share/ag/away/#', { qos: 1 })
  member.end(true)
  const publisher = await connectClient(t, a, 'tcp')
  await sleep(300)
  for (let i = 0; i < 5; i++) await publisher.publishAsync('away/x', String(i), { qos: 1 })
  const next = await connectClient(t, b, 'tcp')
  const nextGot = collect(next)
  await next.subscribeAsync('$share/ag/away/#', { qos: 1 })
  await waitFor(() => nextGot.length === 5, 'the messages that waited on the other node')
  t.same(nextGot.map((m) => m.payload), ['0', '1', '2', '3', '4'], 'each once, in order')
})

t.test('hash_topic: publishers on both nodes, members on both: each topic\'s messages all reach one member, in order', async (t) => {
  const [a, b] = await startCluster(t, 2, { sharedSubscriptions: { strategy: 'hash_topic' } }) as [BrokerHandle, BrokerHandle]
  const members = await Promise.all([a, a, b, b].map(async (node) => await connectClient(t, node, 'tcp')))
  for (const member of members) await member.subscribeAsync('$share/hg/v/#', { qos: 1 })
  const got = members.map((member) => collect(member))
  // each topic has one publisher, on either node: MQTT orders the messages of one publisher on
  // one topic. 32 topics: member ids are random, and with 8 the chance that hashing left two of
  // the four members without a topic was 2%; with 32 it is below one in 10^8.
  const topics = 32
  const publishers = await Promise.all(Array.from({ length: 8 }, async (_, i) => await connectClient(t, i % 2 === 0 ? a : b, 'tcp')))
  await sleep(300)
  await Promise.all(publishers.map(async (publisher, p) => {
    for (let v = p; v < topics; v += publishers.length) {
      for (let seq = 0; seq < 25; seq++) await publisher.publishAsync(`v/${v}`, String(seq), { qos: 1 })
    }
  }))
  await waitFor(() => got.reduce((sum, one) => sum + one.length, 0) === topics * 25, 'every message')
  for (let v = 0; v < topics; v++) {
    const holders = got.map((one) => one.filter((m) => m.topic === `v/${v}`).map((m) => m.payload)).filter((seen) => seen.length > 0)
    t.equal(holders.length, 1, `v/${v}: one member`)
    t.same(holders[0], Array.from({ length: 25 }, (_, seq) => String(seq)), `v/${v}: in order`)
  }
  t.ok(got.filter((one) => one.length > 0).length >= 3, `the topics spread over the members (${got.map((one) => one.length).join(', ')})`)
})
