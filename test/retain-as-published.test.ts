// A retained message delivered live to a persistent session's subscription with Retain As
// Published keeps its RETAIN flag [MQTT-3.3.1-13] and is numbered for the session like any live
// copy: its PUBACK [MQTT-4.3.2-3], or its PUBREC (answered with a PUBREL [MQTT-4.3.3-4]) and
// PUBCOMP [MQTT-4.3.3-5], clear it from the session, so neither a reconnect [MQTT-4.4.0-1] nor a
// later read of the session's queue sends it again. The retained copy a SUBSCRIBE sends
// [MQTT-3.3.1-9] is not in the session's queue: its PUBREC is answered all the same, and the
// PUBREL stored, so a session resumed before the PUBCOMP is sent it again [MQTT-4.4.0-1]. A
// message queued while the session was offline has RETAIN 0 [MQTT-3.3.1-9] [MQTT-3.3.1-12]
// unless a matching subscription has Retain As Published [MQTT-3.3.1-13].
import type { IClientOptions, IPublishPacket, MqttClient, Packet } from 'mqtt'
import t, { type Test } from 'tap'
import type { BrokerHandle } from '../src/server.js'
import { brokerUrl, metricValue, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'
import { RawClient } from './conformance/raw-client.js'
import type { Teardown } from './helpers/loopback.js'

const persistent = (clientId: string): IClientOptions => ({ clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 300 } })

interface Wire { publishes: IPublishPacket[], acks: () => number, closed: () => boolean }

/** The PUBLISHes a client receives, the PUBACKs and PUBCOMPs it sends, and whether its connection closed. */
function wire (client: MqttClient): Wire {
  const publishes: IPublishPacket[] = []
  let acks = 0
  let closed = false
  client.on('packetreceive', (packet: Packet) => { if (packet.cmd === 'publish') publishes.push(packet) })
  client.on('packetsend', (packet: Packet) => { if (packet.cmd === 'puback' || packet.cmd === 'pubcomp') acks++ })
  client.on('close', () => { closed = true })
  return { publishes, acks: () => acks, closed: () => closed }
}

/** Whether the client sent `count` acknowledgements (a PUBCOMP for QoS 2) before its connection closed. */
async function acknowledged (t: Test, seen: Wire, count: number): Promise<boolean> {
  await waitFor(() => seen.acks() >= count || seen.closed(), 'the acknowledgements')
  // the acknowledgements reach the broker (a PUBREC it could not answer closes the connection)
  await sleep(300)
  return t.ok(seen.acks() === count && !seen.closed(), `${count} messages acknowledged (PUBACK, PUBCOMP), the connection stays (${seen.acks()} acknowledged, ${seen.closed() ? 'closed' : 'open'})`)
}

const summary = (publishes: IPublishPacket[]): string[] => publishes.map((p) => `${p.topic} ${p.payload.toString()} qos ${p.qos} retain ${String(p.retain)}`)

/** One node on memory, or one on Redis. */
async function node (t: Teardown, store: 'memory' | 'redis'): Promise<BrokerHandle> {
  return await startBroker(t, store === 'memory' ? {} : { redis: { url: (await startRedis(t)).url } })
}

const payloads = { 1: 'one', 2: 'two' }

/** Publishes a retained message of each QoS on `topic`/q1, /q2 and waits for their acknowledgements. */
async function publishRetained (publisher: MqttClient, topic: string, qos: Array<1 | 2> = [1, 2]): Promise<void> {
  for (const q of qos) await publisher.publishAsync(`${topic}/q${q}`, payloads[q], { qos: q, retain: true })
}

/** Reconnects the session: what it is sent up to a marker published after the CONNACK. */
async function resumed (t: Teardown, url: string, clientId: string, publisher: MqttClient, topic: string): Promise<IPublishPacket[]> {
  let seen: ReturnType<typeof wire> | null = null
  await openUrl(t, url, persistent(clientId), (c) => { seen = wire(c) })
  const { publishes } = seen as unknown as ReturnType<typeof wire>
  await publisher.publishAsync(`${topic}/marker`, 'marker', { qos: 1 })
  await waitFor(() => publishes.some((p) => p.payload.toString() === 'marker'), 'the marker')
  return publishes
}

for (const store of ['memory', 'redis'] as const) {
  for (const qos of [1, 2] as const) {
    t.test(`${store}: a retained QoS ${qos} message sent live with Retain As Published and acknowledged is not sent again on reconnect`, async (t) => {
      const broker = await node(t, store)
      const url = brokerUrl(broker, 'tcp')
      const { client: sub } = await openUrl(t, url, persistent('rap-live'))
      const first = wire(sub)
      await sub.subscribeAsync('rap/#', { qos: 2, rap: true })
      const { client: pub } = await openUrl(t, url, { protocolVersion: 5 })
      await publishRetained(pub, 'rap', [qos])
      if (!await acknowledged(t, first, 1)) return
      t.same(summary(first.publishes), [`rap/q${qos} ${payloads[qos]} qos ${qos} retain true`], 'live, RETAIN as published [MQTT-3.3.1-13]')
      await sub.endAsync()

      const again = await resumed(t, url, 'rap-live', pub, 'rap')
      t.same(summary(again), ['rap/marker marker qos 1 retain false'], 'nothing acknowledged is sent again [MQTT-4.4.0-1]')
    })
  }

  t.test(`${store}: a retained message sent on SUBSCRIBE to a persistent session is acknowledged without a stored copy`, async (t) => {
    const broker = await node(t, store)
    const url = brokerUrl(broker, 'tcp')
    const { client: pub } = await openUrl(t, url, { protocolVersion: 5 })
    await publishRetained(pub, 'held')
    for (const rap of [true, false]) {
      const clientId = `on-subscribe-${String(rap)}`
      const { client: sub } = await openUrl(t, url, persistent(clientId))
      const first = wire(sub)
      await sub.subscribeAsync('held/#', { qos: 2, rap })
      if (!await acknowledged(t, first, 2)) return
      t.same(summary(first.publishes).sort(), ['held/q1 one qos 1 retain true', 'held/q2 two qos 2 retain true'], `Retain As Published ${String(rap)}: sent on SUBSCRIBE with RETAIN 1 [MQTT-3.3.1-9]`)
      await sub.endAsync()
      const again = await resumed(t, url, clientId, pub, 'held')
      t.same(summary(again), ['held/marker marker qos 1 retain false'], 'nothing sent again on reconnect')
    }
  })
}

const queuedCases = [
  { name: 'MQTT 5, Retain As Published off', version: 5, rap: false, retain: false },
  { name: 'MQTT 5, Retain As Published on', version: 5, rap: true, retain: true },
  { name: 'MQTT 3.1.1', version: 4, rap: undefined, retain: false }
] as const

/** A persistent session of `clientId` in MQTT `version` (MQTT 5: with a Session Expiry Interval). */
const session = (clientId: string, version: 4 | 5): IClientOptions => version === 5 ? persistent(clientId) : { clientId, clean: false, protocolVersion: 4 }

for (const store of ['memory', 'redis'] as const) {
  t.test(`${store}: a retained message queued while the session was offline is sent on CONNECT with RETAIN as its subscription says`, async (t) => {
    const broker = await node(t, store)
    const url = brokerUrl(broker, 'tcp')
    const { client: pub } = await openUrl(t, url, { protocolVersion: 5 })
    for (const c of queuedCases) {
      const clientId = `queued-${c.version}-${String(c.rap)}`
      const topic = `queued/${clientId}`
      const { client: sub } = await openUrl(t, url, session(clientId, c.version))
      await sub.subscribeAsync(`${topic}/#`, c.rap === undefined ? { qos: 1 } : { qos: 1, rap: c.rap })
      await sub.endAsync()
      await pub.publishAsync(`${topic}/held`, 'held', { qos: 1, retain: true })

      const publishes: IPublishPacket[] = []
      await openUrl(t, url, session(clientId, c.version), (client) => client.on('packetreceive', (p: Packet) => { if (p.cmd === 'publish') publishes.push(p) }))
      await waitFor(() => publishes.length === 1, 'the queued message')
      t.same(publishes.map((p) => `${p.topic} qos ${p.qos} retain ${String(p.retain)}`), [`${topic}/held qos 1 retain ${String(c.retain)}`], c.name)
    }
  })

  t.test(`${store}: the PUBREL of a retained QoS 2 message sent on SUBSCRIBE is sent again to the resumed session until its PUBCOMP`, async (t) => {
    const broker = await node(t, store)
    const { client: pub } = await openUrl(t, brokerUrl(broker, 'tcp'), { protocolVersion: 5 })
    for (const version of [5, 4] as const) {
      const clientId = `pubrel-${version}`
      await pub.publishAsync(`kept/${clientId}`, 'kept', { qos: 2, retain: true })
      const connect = { clientId, clean: false, ...(version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}) }
      const first = await RawClient.tcp(t, broker.addresses.mqtt.port, version)
      await first.connect(connect)
      await first.subscribe({ [`kept/${clientId}`]: 2 })
      const sent = await first.expect('publish')
      t.match(sent, { qos: 2, retain: true }, `MQTT ${version}: sent on SUBSCRIBE, RETAIN 1 (3.1.1 [MQTT-3.3.1-8])`)
      first.send({ cmd: 'pubrec', messageId: sent.messageId })
      await first.expect('pubrel')
      // the PUBREL is lost with the connection: no PUBCOMP
      first.destroy()

      const resumed = await RawClient.tcp(t, broker.addresses.mqtt.port, version)
      t.match(await resumed.connect(connect), { sessionPresent: true })
      t.match(await resumed.expect('pubrel'), { messageId: sent.messageId }, 'the resumed session is sent the PUBREL again [MQTT-4.4.0-1]')
      resumed.send({ cmd: 'pubcomp', messageId: sent.messageId })
      t.same(await resumed.drain(300), [], 'and nothing else')
      resumed.destroy()

      const again = await RawClient.tcp(t, broker.addresses.mqtt.port, version)
      await again.connect(connect)
      t.same(await again.drain(500), [], 'its PUBCOMP cleared it from the session')
      again.destroy()
    }
  })
}

t.test('memory: a PUBREC for a Packet Identifier not in flight is answered with a PUBREL, the connection stays', async (t) => {
  const broker = await node(t, 'memory')
  for (const version of [5, 4] as const) {
    const client = await RawClient.tcp(t, broker.addresses.mqtt.port, version)
    await client.connect({ clientId: `unknown-pubrec-${version}`, clean: false, ...(version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}) })
    client.send({ cmd: 'pubrec', messageId: 999 })
    const pubrel = await client.expect('pubrel')
    // MQTT 5: 0x92 Packet Identifier not found [MQTT-3.6.2-1]; 3.1.1 has no reason code
    t.match(pubrel, { messageId: 999, ...(version === 5 ? { reasonCode: 0x92 } : {}) }, `MQTT ${version}: a PUBREL for it [MQTT-4.3.3-4]`)
    client.send({ cmd: 'pingreq' })
    t.equal((await client.expect('pingresp')).cmd, 'pingresp', 'the connection stays')
    client.destroy()
  }
})

// Redis says only that this node's identifier cache has no mapping ('unknown key'), while a
// stored copy may still be queued: the connection closes, as before, rather than completing a
// flow the next CONNECT would deliver again
t.test('redis: a PUBREC for a Packet Identifier this node has no mapping for closes the connection', async (t) => {
  const broker = await node(t, 'redis')
  const client = await RawClient.tcp(t, broker.addresses.mqtt.port, 5)
  await client.connect({ clientId: 'unknown-pubrec', clean: false, properties: { sessionExpiryInterval: 300 } })
  client.send({ cmd: 'pubrec', messageId: 999 })
  t.equal(await client.closedWithin(), true, 'closed')
})

for (const qos of [1, 2] as const) {
  t.test(`redis, two nodes: a later SUBSCRIBE's read of the queue does not send an acknowledged retained QoS ${qos} message sent with Retain As Published again`, async (t) => {
    const redis = await startRedis(t)
    const publishing = await startBroker(t, { redis: { url: redis.url }, nodeId: 'rap-pub' })
    const subscribing = await startBroker(t, { redis: { url: redis.url }, nodeId: 'rap-sub' })
    const { client: sub } = await openUrl(t, brokerUrl(subscribing, 'tcp'), persistent('rap-read'))
    const seen = wire(sub)
    await sub.subscribeAsync('rap/#', { qos: 2, rap: true })
    const { client: pub } = await openUrl(t, brokerUrl(publishing, 'tcp'), { protocolVersion: 5 })
    // the route reaches the publishing node (until then its messages come from the catch-up)
    await pub.publishAsync('rap/probe', 'probe', { qos: 1 })
    await waitFor(() => seen.acks() === 1, 'the probe')
    await sleep(1500)
    await publishRetained(pub, 'rap', [qos])
    if (!await acknowledged(t, seen, 2)) return
    t.same(summary(seen.publishes), ['rap/probe probe qos 1 retain false', `rap/q${qos} ${payloads[qos]} qos ${qos} retain true`], 'live, RETAIN as published [MQTT-3.3.1-13]')

    // a new filter: its route is not known everywhere yet, so the session's queue is read again
    const before = await catchUps(subscribing)
    await sub.subscribeAsync('other/#', { qos: 1 })
    const deadline = Date.now() + 5000
    while (await catchUps(subscribing) === before) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the catch-up')
      await sleep(50)
    }
    // the read follows the count
    await sleep(500)
    t.same(summary(seen.publishes.slice(2)), [], 'nothing sent again on the same connection')
  })
}

/** The node's route catch-ups (realtime_broker_route_catch_ups_total, both outcomes). */
async function catchUps (broker: BrokerHandle): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  return metricValue(text, 'realtime_broker_route_catch_ups_total', { outcome: 'in_time' }) + metricValue(text, 'realtime_broker_route_catch_ups_total', { outcome: 'bound' })
}
