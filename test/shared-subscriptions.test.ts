// Shared subscriptions on one node ($share/<group>/<filter>, MQTT 3.1.1 and 5.0): each message
// to one member of each group, a plain subscriber gets its own copy, the ShareName rules, the
// ACL on the filter, no retained messages on subscribe, and redispatch of what a member that
// went away had not acknowledged.
import t from 'tap'
import type { MqttClient } from 'mqtt'
import { closeClient, collect, connectClient, metricValue, openClient, sleep, startBroker, waitFor } from './helpers/broker.js'
import { RawClient, uniqueId } from './conformance/raw-client.js'
import type { Teardown } from './helpers/loopback.js'
import type { BrokerHandle } from '../src/server.js'

type Received = ReturnType<typeof collect>

/** How many times each payload was received, over all of `members`. */
function countsOf (members: Received[]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const got of members) for (const { payload } of got) counts.set(payload, (counts.get(payload) ?? 0) + 1)
  return counts
}

for (const protocolVersion of [4, 5] as const) {
  for (const qos of [0, 1, 2] as const) {
    t.test(`MQTT ${protocolVersion === 4 ? '3.1.1' : '5.0'}, QoS ${qos}: each message to one member of the group, in turn; a plain subscriber gets every one`, async (t) => {
      const broker = await startBroker(t)
      const members = await Promise.all([0, 1, 2].map(async () => await connectClient(t, broker, 'tcp', { protocolVersion })))
      for (const member of members) await member.subscribeAsync('$share/workers/jobs/#', { qos })
      const plain = await connectClient(t, broker, 'tcp', { protocolVersion })
      await plain.subscribeAsync('jobs/#', { qos })
      const got = members.map((member) => collect(member))
      const plainGot = collect(plain)
      const publisher = await connectClient(t, broker, 'tcp', { protocolVersion })
      const sent = Array.from({ length: 60 }, (_, i) => String(i))
      for (const payload of sent) await publisher.publishAsync(`jobs/${Number(payload) % 7}`, payload, { qos })
      await waitFor(() => got.reduce((sum, one) => sum + one.length, 0) >= sent.length && plainGot.length >= sent.length, 'every message to the group and to the plain subscriber')
      await sleep(100)
      const counts = countsOf(got)
      t.same([...counts.keys()].sort(), [...sent].sort(), 'the group got every message')
      t.ok([...counts.values()].every((n) => n === 1), 'none twice')
      t.same(got.map((one) => one.length), [20, 20, 20], 'round robin: 20 each')
      t.same(plainGot.map((m) => m.payload), sent, 'the plain subscriber on the same filter got every message, in order')
      for (const [i, one] of got.entries()) t.ok(one.every((m) => m.packet.qos === qos), `member ${i}: at the QoS of its subscription`)
    })
  }
}

t.test('two groups on one filter each get every message once; a member gets at most its own subscription\'s QoS [MQTT-4.8.2-3]', async (t) => {
  const broker = await startBroker(t)
  const a = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  const b = await connectClient(t, broker, 'tcp')
  const c = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  await a.subscribeAsync('$share/one/m/+', { qos: 0 })
  await b.subscribeAsync('$share/one/m/+', { qos: 0 })
  await c.subscribeAsync('$share/two/m/+', { qos: 2 })
  const [gotA, gotB, gotC] = [collect(a), collect(b), collect(c)]
  const publisher = await connectClient(t, broker, 'tcp')
  for (let i = 0; i < 10; i++) await publisher.publishAsync('m/x', String(i), { qos: 2 })
  await waitFor(() => gotA.length + gotB.length === 10 && gotC.length === 10, 'both groups')
  t.same(countsOf([gotA, gotB]).size, 10, 'group one: every message once')
  t.ok([...gotA, ...gotB].every((m) => m.packet.qos === 0), 'group one at QoS 0, as its members subscribed')
  t.ok(gotC.every((m) => m.packet.qos === 2), 'group two at QoS 2')
})

t.test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] ShareName rules; Shared Subscription Available in CONNACK; the ACL applies to the filter', async (t) => {
  const broker = await startBroker(t, { acl: { roles: { anonymous: { pub: ['#'], sub: ['open/#'] } } } })
  const { client: v5, connack } = await openClient(t, broker, 'tcp', { protocolVersion: 5 })
  t.equal(connack.properties?.sharedSubscriptionAvailable, true, 'CONNACK: Shared Subscription Available')
  await v5.endAsync()
  // raw clients: MQTT.js refuses some of these before sending them. ('$share/a+/x' is a malformed
  // filter whatever its first level [MQTT-4.7.1-2]: the frame guard closes the connection.)
  const filters = ['$share//open/x', '$share/+/open/x', '$share/g', '$share/g/', '$share/g/open/x', '$share/g/closed/x']
  const asked = Object.fromEntries(filters.map((filter) => [filter, 1 as const]))
  const raw5 = await RawClient.tcp(t, broker.addresses.mqtt.port, 5)
  await raw5.connect()
  t.same(await raw5.subscribe(asked), [0x8F, 0x8F, 0x8F, 0x8F, 1, 0x87], 'v5: 0x8F Topic Filter invalid for a broken ShareName or no filter, 0x87 where the filter is not granted')
  const raw4 = await RawClient.tcp(t, broker.addresses.mqtt.port)
  await raw4.connect()
  t.same(await raw4.subscribe(asked), [0x80, 0x80, 0x80, 0x80, 1, 0x80], '3.1.1: 0x80 for each refused filter, the others granted')
  t.notOk(await raw4.closedWithin(200), 'a refused filter costs only itself')
})

t.test('[MQTT-4.8.2] no retained message is sent on a shared subscribe; a plain one still gets it', async (t) => {
  const broker = await startBroker(t)
  const publisher = await connectClient(t, broker, 'tcp')
  await publisher.publishAsync('kept/x', 'retained', { qos: 1, retain: true })
  const member = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  const got = collect(member)
  await member.subscribeAsync('$share/g/kept/#', { qos: 1 })
  const plain = await connectClient(t, broker, 'tcp')
  const plainGot = collect(plain)
  await plain.subscribeAsync('kept/#', { qos: 1 })
  await waitFor(() => plainGot.length === 1, 'the plain subscriber\'s retained message')
  await sleep(200)
  t.equal(got.length, 0, 'the member got no retained message')
})

t.test('[MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82', async (t) => {
  const broker = await startBroker(t)
  const client = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  const disconnect = new Promise<number | undefined>((resolve) => client.once('disconnect', (packet) => resolve(packet.reasonCode)))
  client.subscribe('$share/g/nl/x', { qos: 1, nl: true })
  t.equal(await disconnect, 0x82, 'DISCONNECT with Protocol Error')
})

// [MQTT-3.3.4-3] a message carries the Subscription Identifiers of the client's matching
// subscriptions, a Shared Subscription's among them (matched by its filter, not its $share/ name)
// on the copies its group sends to this member, and only on those
t.test('[MQTT-3.3.4-3] a copy a shared subscription delivers carries its Subscription Identifier', async (t) => {
  const broker = await startBroker(t)
  const client = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  await client.subscribeAsync('$share/g/si/#', { qos: 1, properties: { subscriptionIdentifier: 7 } })
  const got = collect(client)
  const publisher = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  await publisher.publishAsync('si/shared-only', 'a', { qos: 1 })
  await waitFor(() => got.length >= 1, 'the message')
  t.equal(got[0]?.packet.properties?.subscriptionIdentifier, 7, 'the shared subscription\'s identifier')
})

t.test('[MQTT-3.3.4-3] a plain copy carries no identifier of a shared subscription whose group sent the message to another member', async (t) => {
  const broker = await startBroker(t)
  const [x, y] = await Promise.all([0, 1].map(async () => await connectClient(t, broker, 'tcp', { protocolVersion: 5 })))
  for (const member of [x, y]) await member?.subscribeAsync('$share/g/si/#', { qos: 1, properties: { subscriptionIdentifier: 7 } })
  await x?.subscribeAsync('si/both', { qos: 1, properties: { subscriptionIdentifier: 9 } })
  const [xGot, yGot] = [collect(x as MqttClient), collect(y as MqttClient)]
  const publisher = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  for (const n of [1, 2, 3, 4]) await publisher.publishAsync('si/both', String(n), { qos: 1 })
  await waitFor(() => xGot.length >= 4 && yGot.length >= 2, 'every message at x (its plain subscription) and the group\'s share at y')
  const toY = yGot.map((m) => m.payload)
  t.ok(toY.length > 0, `the group sent ${toY.join(', ')} to y`)
  for (const m of xGot.filter((m) => toY.includes(m.payload))) {
    t.same(m.packet.properties?.subscriptionIdentifier, 9, `x's copy of ${m.payload}: its plain subscription's identifier alone`)
  }
})

/** A member over a raw socket that never acknowledges what it is sent. */
async function silentMember (t: Teardown, broker: BrokerHandle, filter: string, clean = true, clientId = uniqueId('silent')): Promise<{ client: RawClient, got: string[] }> {
  const client = await RawClient.tcp(t, broker.addresses.mqtt.port)
  await client.connect({ clean, clientId })
  await client.subscribe({ [filter]: 1 })
  const got: string[] = []
  const read = async (): Promise<void> => {
    for (;;) {
      const packet = await client.next(60_000).catch(() => null)
      if (packet === null) return
      if (packet.cmd === 'publish') got.push(String(packet.payload))
    }
  }
  void read()
  return { client, got }
}

t.test('QoS 1: what a member whose session ends with its connection had not acknowledged goes to another member (redispatch)', async (t) => {
  const broker = await startBroker(t)
  const silent = await silentMember(t, broker, '$share/g/r/#')
  const steady = await connectClient(t, broker, 'tcp')
  await steady.subscribeAsync('$share/g/r/#', { qos: 1 })
  const steadyGot = collect(steady)
  const publisher = await connectClient(t, broker, 'tcp')
  const sent = Array.from({ length: 20 }, (_, i) => String(i))
  for (const payload of sent) await publisher.publishAsync('r/x', payload, { qos: 1 })
  await waitFor(() => silent.got.length + steadyGot.length === 20, 'the first round')
  t.equal(silent.got.length, 10, 'the silent member got its half and acknowledged none')
  // its connection ends without a DISCONNECT (as a killed process's would)
  silent.client.destroy()
  await waitFor(() => steadyGot.length === 20, 'the silent member\'s messages at the other member')
  t.same(steadyGot.map((m) => m.payload).sort(), [...sent].sort(), 'every message reached the group: zero loss')
})

t.test('a member with a persistent session keeps what it had not acknowledged: sent again when it comes back [MQTT-4.8.2-4]', async (t) => {
  const broker = await startBroker(t)
  const clientId = 'persistent-member'
  const silent = await silentMember(t, broker, '$share/p/s/#', false, clientId)
  const steady = await connectClient(t, broker, 'tcp')
  await steady.subscribeAsync('$share/p/s/#', { qos: 1 })
  const steadyGot = collect(steady)
  const publisher = await connectClient(t, broker, 'tcp')
  for (let i = 0; i < 10; i++) await publisher.publishAsync('s/x', String(i), { qos: 1 })
  await waitFor(() => silent.got.length + steadyGot.length === 10, 'the first round')
  const kept = [...silent.got]
  silent.client.destroy()
  await sleep(300)
  t.equal(steadyGot.length, 5, 'the other member did not get the persistent member\'s messages')
  const back = await connectClient(t, broker, 'tcp', { clean: false, clientId })
  const again = collect(back)
  await waitFor(() => again.length >= kept.length, 'the kept messages on return')
  t.same(again.map((m) => m.payload).sort(), [...kept].sort(), 'the messages it had not acknowledged, sent again')
  await closeClient(back)
})

t.test('a group whose last member went keeps its QoS 1 messages for the next member (counted); QoS 0 is dropped', async (t) => {
  const broker = await startBroker(t)
  const silent = await silentMember(t, broker, '$share/w/q/#')
  const publisher = await connectClient(t, broker, 'tcp')
  for (let i = 0; i < 5; i++) await publisher.publishAsync('q/x', String(i), { qos: 1 })
  await waitFor(() => silent.got.length === 5, 'the only member got them')
  silent.client.destroy()
  await sleep(200)
  await publisher.publishAsync('q/x', 'qos0', { qos: 0 })
  const scrape = async (): Promise<string> => await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  const group = { group: '$share/w/q/#' }
  let text = await scrape()
  t.equal(metricValue(text, 'realtime_broker_shared_group_waiting', group), 5, 'five waiting')
  t.equal(metricValue(text, 'realtime_broker_shared_group_messages_total', { ...group, outcome: 'redispatched' }), 5, 'five redispatched from the member gone')
  t.equal(metricValue(text, 'realtime_broker_shared_group_messages_total', { ...group, outcome: 'dropped' }), 1, 'the QoS 0 one dropped')
  t.equal(metricValue(text, 'realtime_broker_shared_group_members', group), 0, 'no member')
  const next = await connectClient(t, broker, 'tcp')
  const nextGot = collect(next)
  await next.subscribeAsync('$share/w/q/#', { qos: 1 })
  await waitFor(() => nextGot.length === 5, 'the waiting messages at the next member')
  t.same(nextGot.map((m) => m.payload).sort(), ['0', '1', '2', '3', '4'])
  text = await scrape()
  t.equal(metricValue(text, 'realtime_broker_shared_group_waiting', group), 0, 'none waiting')
  t.equal(metricValue(text, 'realtime_broker_shared_group_members', group), 1, 'one member')
  t.equal(metricValue(text, 'realtime_broker_shared_group_messages_total', { ...group, outcome: 'delivered' }), 10, 'delivered: five to the first member, the same five to the next')
})

t.test('a group whose members are all away with their persistent sessions lives on: QoS 1 messages wait for the next member, QoS 0 are dropped', async (t) => {
  const broker = await startBroker(t)
  const clientId = 'away-member'
  const member = await connectClient(t, broker, 'tcp', { clean: false, clientId })
  await member.subscribeAsync('$share/a/away/#', { qos: 1 })
  await closeClient(member, false)
  await sleep(100)
  const publisher = await connectClient(t, broker, 'tcp')
  for (let i = 0; i < 3; i++) await publisher.publishAsync('away/x', String(i), { qos: 1 })
  await publisher.publishAsync('away/x', 'qos0', { qos: 0 })
  const text = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(text, 'realtime_broker_shared_group_waiting', { group: '$share/a/away/#' }), 3, 'three waiting in the group')
  const next = await connectClient(t, broker, 'tcp')
  const nextGot = collect(next)
  await next.subscribeAsync('$share/a/away/#', { qos: 1 })
  await waitFor(() => nextGot.length === 3, 'the waiting messages at the member that joined')
  t.same(nextGot.map((m) => m.payload), ['0', '1', '2'], 'in order, the QoS 0 one dropped')
})

t.test('a role may limit the ShareNames its users join (acl.roles.<role>.shareNames)', async (t) => {
  const broker = await startBroker(t, { acl: { roles: { anonymous: { pub: ['#'], sub: ['#'], shareNames: ['workers'] } } } })
  const raw = await RawClient.tcp(t, broker.addresses.mqtt.port, 5)
  await raw.connect()
  t.same(await raw.subscribe({ '$share/workers/jobs/#': 1, '$share/other/jobs/#': 1, 'jobs/#': 1 }), [1, 0x87, 1], 'the listed ShareName granted, another refused, plain filters as before')
})
