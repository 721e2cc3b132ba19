// MQTT 5 features, with MQTT.js clients (protocolVersion 5) over real sockets, on one node and
// on two nodes sharing Redis (issue #18): reason codes, session expiry and will delay that hold
// across the cluster, subscription identifiers.
import { connect as netConnect } from 'node:net'
import jwt from 'jsonwebtoken'
import mqttPacket from 'mqtt-packet'
import { connect as mqttConnect, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import t from 'tap'
import { brokerUrl, closeClient, collect, connectClient, openClient, sleep, startBroker, waitFor, type Transport } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'
import type { Teardown } from './helpers/loopback.js'
import type { BrokerHandle } from '../src/server.js'

const secret = 'mqtt5-test-secret-0123456789abcdef'
const token = (sub: string): string => jwt.sign({ sub }, secret, { expiresIn: 600 })
const acl = {
  roles: {
    member: { pub: ['chat/#', 'wills/#', 'si/#'], sub: ['chat/#', 'wills/#', 'si/#'] },
    limited: { pub: ['chat/#'], sub: ['chat/#'], limits: { maxPayloadSize: 16, maxQos: 1 as const, maxPublishRate: 2 } }
  },
  // every user but lim is a member: a role without limits would lift the limited role's
  users: Object.fromEntries([
    ['lim', { roles: ['limited'] }],
    ['ops', { roles: ['admin'] }],
    ...['watcher', 'alice', 'bob', 'sam', 'pat', 'tom', 'kim', 'back', 'gone'].map((user) => [user, { roles: ['member'] }])
  ]),
  defaultRoles: []
}
const config = { auth: { anonymous: false, jwt: { secret } }, acl }
const v5 = (user: string, options: IClientOptions = {}): IClientOptions => ({ protocolVersion: 5, username: '', password: token(user), ...options })

/** One node in memory, or two nodes on one Redis. */
async function startNodes (t: Teardown, nodes: 1 | 2): Promise<BrokerHandle[]> {
  const redis = nodes === 2 ? { url: (await startRedis(t)).url } : undefined
  const brokers: BrokerHandle[] = []
  for (let i = 0; i < nodes; i++) brokers.push(await startBroker(t, { ...config, ...(redis === undefined ? {} : { redis, nodeId: `v5-${i}` }) }))
  return brokers
}

/** The reason code of a refused publish, or 0 when it was accepted. */
async function publishCode (client: MqttClient, topic: string, payload: string, qos: 1 | 2, properties?: object): Promise<number> {
  try {
    await client.publishAsync(topic, payload, { qos, ...(properties === undefined ? {} : { properties }) })
    return 0
  } catch (err) {
    return (err as { code?: number }).code ?? -1
  }
}

/** The connection drops without a DISCONNECT: the will is due. */
function dropConnection (client: MqttClient): void {
  client.stream.destroy()
}

for (const transport of ['tcp', 'ws'] as Transport[]) {
  t.test(`${transport}: a v5 CONNACK advertises the broker's limits`, async (t) => {
    const [broker] = await startNodes(t, 1) as [BrokerHandle]
    const { connack } = await openClient(t, broker, transport, v5('alice'))
    t.equal(connack.reasonCode, 0)
    t.match(connack.properties, {
      receiveMaximum: 1000,
      maximumPacketSize: 1024 * 1024,
      topicAliasMaximum: 16,
      sharedSubscriptionAvailable: true
    }, 'Receive Maximum, Maximum Packet Size, Topic Alias Maximum [MQTT-3.2.2.3]')
  })

  t.test(`${transport}: a refused v5 PUBLISH is answered with its reason code and the connection stays up`, async (t) => {
    const [broker] = await startNodes(t, 1) as [BrokerHandle]
    const watcher = await connectClient(t, broker, transport, v5('watcher'))
    const seen = collect(watcher)
    await watcher.subscribeAsync('chat/#', { qos: 1 })
    const client = await connectClient(t, broker, transport, v5('lim'))
    t.equal(await publishCode(client, 'elsewhere/x', 'no', 1), 0x87, 'not granted: PUBACK 0x87 Not authorized')
    t.equal(await publishCode(client, 'elsewhere/x', 'no', 2), 0x87, 'QoS 2: PUBREC 0x87')
    t.equal(await publishCode(client, '$presence/lim', 'forged', 1), 0x87, 'a $ topic: 0x87')
    const codes = []
    for (let i = 0; i < 6; i++) codes.push(await publishCode(client, 'chat/rate', `r${i}`, 1))
    t.ok(codes.includes(0x97), `over the role's publish rate: 0x97 Quota exceeded (${codes.join(', ')})`)
    t.ok(client.connected, 'the connection is still up')
    await sleep(1100)
    t.equal(await publishCode(client, 'chat/ok', 'fine', 1), 0, 'a granted publish is accepted')
    await waitFor(() => seen.some((m) => m.topic === 'chat/ok'), 'the granted message')
    t.notOk(seen.some((m) => m.topic === 'chat/rate' && m.payload === 'r5'), 'no refused message was delivered')
    // over the client's own limits: a PUBACK cannot say so, a DISCONNECT does
    for (const [qos, payload, code, what] of [[1, 'x'.repeat(100), 0x95, 'over the role\'s payload size: DISCONNECT 0x95 Packet too large'], [2, 'two', 0x9B, 'over the role\'s QoS: DISCONNECT 0x9B QoS not supported [MQTT-3.2.2-11]']] as const) {
      const { client: over, connack } = await openClient(t, broker, transport, v5('lim'))
      over.on('error', () => {}) // MQTT.js reports the DISCONNECT's code as an error too
      t.equal(connack.properties?.maximumQoS, 1, 'its CONNACK said Maximum QoS 1 [MQTT-3.2.2-9]')
      const disconnected = new Promise<number>((resolve) => over.once('disconnect', (packet) => resolve(packet.reasonCode ?? -1)))
      over.publish('chat/x', payload, { qos })
      t.equal(await disconnected, code, what)
    }
    t.notOk(seen.some((m) => m.topic === 'chat/x'), 'the message over the limits was not delivered')
  })
}

for (const nodes of [1, 2] as const) {
  const where = nodes === 1 ? 'one node' : 'two nodes on Redis'

  t.test(`${where}: a session lives for its Session Expiry Interval, resumed on any node`, async (t) => {
    const brokers = await startNodes(t, nodes)
    const [a, b] = [brokers[0], brokers.at(-1)] as [BrokerHandle, BrokerHandle]
    const options = v5('alice', { clientId: 'alice-phone', clean: false, properties: { sessionExpiryInterval: 2 } })
    const first = await connectClient(t, a, 'tcp', options)
    await first.subscribeAsync('chat/room', { qos: 1 })
    await closeClient(first, false)
    const publisher = await connectClient(t, a, 'tcp', v5('bob'))
    await publisher.publishAsync('chat/room', 'while away', { qos: 1 })
    // resumed on the other node before it expires; it keeps its session past the old
    // connection's 2 s, which no node may wipe
    const resumed = await openClient(t, b, 'tcp', { ...options, properties: { sessionExpiryInterval: 60 } }, (client) => {
      client.on('message', (topic, payload) => { received.push(payload.toString()) })
    })
    const received: string[] = []
    t.equal(resumed.connack.sessionPresent, true, 'Session Present [MQTT-3.2.2-2]')
    await waitFor(() => received.includes('while away'), 'the queued message')
    await sleep(2500)
    await publisher.publishAsync('chat/room', 'later', { qos: 1 })
    await waitFor(() => received.includes('later'), 'a message after the first connection\'s interval')
    await closeClient(resumed.client, false)
    const again = await openClient(t, a, 'tcp', options)
    t.equal(again.connack.sessionPresent, true, 'the session lives on with the interval of its last connection')
    await closeClient(again.client, false)
    // 2 s after that disconnect the session is gone, deleted by one node
    await sleep(3500)
    const late = await openClient(t, b, 'tcp', options)
    t.equal(late.connack.sessionPresent, false, 'expired after its Session Expiry Interval [MQTT-3.1.2-23]')
  })

  t.test(`${where}: a delayed will is cancelled by a reconnect on any node, and sent without its delay interval`, async (t) => {
    const brokers = await startNodes(t, nodes)
    const [a, b] = [brokers[0], brokers.at(-1)] as [BrokerHandle, BrokerHandle]
    const watcher = await connectClient(t, a, 'tcp', v5('watcher'))
    const wills: IPublishPacket[] = []
    watcher.on('message', (_topic, _payload, packet) => wills.push(packet))
    await watcher.subscribeAsync('wills/#', { qos: 1 })
    const withWill = (clientId: string, topic: string): IClientOptions => v5(clientId, {
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 30 },
      will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 1, contentType: 'text/plain' } }
    })
    const back = await connectClient(t, a, 'tcp', withWill('back', 'wills/back'))
    dropConnection(back)
    await sleep(200)
    await connectClient(t, b, 'tcp', withWill('back', 'wills/back'))
    const gone = await connectClient(t, a, 'tcp', withWill('gone', 'wills/gone'))
    const droppedAt = Date.now()
    dropConnection(gone)
    await waitFor(() => wills.some((p) => p.topic === 'wills/gone'), 'the will of gone', 8000)
    t.ok(Date.now() - droppedAt >= 900, 'the will waited for its Will Delay Interval [MQTT-3.1.3-9]')
    await sleep(1500)
    t.same(wills.map((p) => p.topic), ['wills/gone'], 'the will of a client back on another node is not sent')
    t.equal(wills[0]?.properties?.contentType, 'text/plain', 'the will keeps its message properties')
    t.notOk('willDelayInterval' in (wills[0]?.properties ?? {}), 'the Will Delay Interval is not in the PUBLISH (aedes#1098)')
  })
}

t.test('subscription identifiers: every matching subscription\'s, live and queued', async (t) => {
  const [broker] = await startNodes(t, 1) as [BrokerHandle]
  const options = v5('sam', { clientId: 'sam', clean: false, properties: { sessionExpiryInterval: 60 } })
  const sub = await connectClient(t, broker, 'tcp', options)
  await sub.subscribeAsync('si/+', { qos: 1, properties: { subscriptionIdentifier: 5 } })
  await sub.subscribeAsync('si/#', { qos: 1, properties: { subscriptionIdentifier: 7 } })
  await sub.subscribeAsync('si/plain', { qos: 1 })
  const live: IPublishPacket[] = []
  sub.on('message', (_topic, _payload, packet) => live.push(packet))
  const publisher = await connectClient(t, broker, 'tcp', v5('pat'))
  await publisher.publishAsync('si/a', 'one', { qos: 1 })
  await publisher.publishAsync('si/deep/b', 'two', { qos: 1 })
  await waitFor(() => live.length === 2, 'both messages')
  t.same([live[0]?.properties?.subscriptionIdentifier].flat().sort(), [5, 7], 'both identifiers, one copy [MQTT-3.3.4-3] [MQTT-3.3.4-4]')
  t.same(live[1]?.properties?.subscriptionIdentifier, 7, 'the one matching subscription\'s')
  await closeClient(sub, false)
  await publisher.publishAsync('si/plain', 'queued', { qos: 1 })
  const queued: IPublishPacket[] = []
  await openClient(t, broker, 'tcp', options, (client) => client.on('message', (_topic, _payload, packet) => queued.push(packet)))
  await waitFor(() => queued.length === 1, 'the queued message')
  t.same([queued[0]?.properties?.subscriptionIdentifier].flat().sort(), [5, 7], 'a queued message carries them too')
})

t.test('the broker tells a v5 client why it ends the connection: takeover 0x8E, admin 0x98', async (t) => {
  const [broker] = await startNodes(t, 1) as [BrokerHandle]
  const reasonOf = (client: MqttClient): Promise<number> => new Promise((resolve) => client.once('disconnect', (packet) => resolve(packet.reasonCode ?? -1)))
  const old = await connectClient(t, broker, 'tcp', v5('tom', { clientId: 'tom-1' }))
  const tookOver = reasonOf(old)
  await connectClient(t, broker, 'tcp', v5('tom', { clientId: 'tom-1' }))
  t.equal(await tookOver, 0x8E, 'Session taken over [MQTT-3.1.4-3]')
  const kicked = await connectClient(t, broker, 'tcp', v5('kim', { clientId: 'kim-1' }))
  const kick = reasonOf(kicked)
  const admin = token('ops')
  const res = await fetch(`http://127.0.0.1:${broker.addresses.http.port}/api/v1/admin/clients/kim-1`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } })
  t.equal(res.status, 200)
  t.equal(await kick, 0x98, 'Administrative action')
})

/** Sends an AUTH packet through MQTT.js's own packet path (it has no public API for one, mqttjs/MQTT.js#1795). */
function sendAuth (client: MqttClient, reasonCode: number, method: string, data: string): void {
  (client as unknown as { _sendPacket: (packet: object) => void })._sendPacket({ cmd: 'auth', reasonCode, properties: { authenticationMethod: method, authenticationData: Buffer.from(data) } })
}

t.test('enhanced authentication: the JWT method at CONNECT, and re-authentication with a fresh token on a live connection', async (t) => {
  const [broker] = await startNodes(t, 1) as [BrokerHandle]
  const signed = (sub: string, seconds: number, pub: string[]): string => jwt.sign({ sub, acl: { pub, sub: ['chat/#'] } }, secret, { expiresIn: seconds })
  const viaMethod = (tokenText: string, method = 'JWT'): IClientOptions => ({ protocolVersion: 5, properties: { authenticationMethod: method, authenticationData: Buffer.from(tokenText) } })

  const refused = await new Promise<number>((resolve) => {
    const client = mqttConnect(brokerUrl(broker, 'tcp'), { ...viaMethod('x', 'SCRAM-SHA-1'), reconnectPeriod: 0 })
    client.on('error', (err: Error & { code?: number }) => { resolve(err.code ?? -1); client.end(true) })
  })
  t.equal(refused, 0x8C, 'another method: CONNACK 0x8C Bad authentication method')

  // a token for 2 s that may publish chat/a only
  const { client, connack } = await openClient(t, broker, 'tcp', viaMethod(signed('alice', 2, ['chat/a'])))
  t.equal(connack.reasonCode, 0, 'the token as the JWT method\'s Authentication Data')
  t.equal(connack.properties?.authenticationMethod, 'JWT', 'the CONNACK names the method [MQTT-4.12.0-5]')
  t.equal(await publishCode(client, 'chat/b', 'before', 1), 0x87, 'the first token does not grant chat/b')
  const auths: Array<{ reasonCode?: number, properties?: { authenticationMethod?: string } }> = []
  client.on('packetreceive', (packet) => { if (packet.cmd === 'auth') auths.push(packet) })
  // a fresh token for a minute that may publish chat/#
  sendAuth(client, 0x19, 'JWT', signed('alice', 60, ['chat/#']))
  await waitFor(() => auths.length === 1, 'the AUTH answer')
  t.match(auths[0], { reasonCode: 0, properties: { authenticationMethod: 'JWT' } }, 'AUTH 0x00 Success, with the method')
  t.equal(await publishCode(client, 'chat/b', 'after', 1), 0, 'the grants of the new token apply, no reconnect')
  await sleep(3000)
  t.ok(client.connected, 'still connected after the first token expired: the expiry moved')

  const disconnected = new Promise<number>((resolve) => client.once('disconnect', (packet) => resolve(packet.reasonCode ?? -1)))
  client.on('error', () => {}) // MQTT.js reports the DISCONNECT's code as an error too
  sendAuth(client, 0x19, 'JWT', 'not a token')
  t.equal(await disconnected, 0x87, 'a refused re-authentication: DISCONNECT 0x87')
})

/** A raw MQTT 5 client over TCP that acknowledges nothing by itself. */
async function rawV5 (t: Teardown, broker: BrokerHandle, connect: object): Promise<{ packets: mqttPacket.Packet[], send: (packet: object) => void }> {
  const socket = netConnect(broker.addresses.mqtt.port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  const packets: mqttPacket.Packet[] = []
  parser.on('packet', (packet: mqttPacket.Packet) => packets.push(packet))
  socket.on('data', (chunk: Buffer) => parser.parse(chunk))
  const send = (packet: object): void => { socket.write(mqttPacket.generate(packet as mqttPacket.Packet, { protocolVersion: 5 })) }
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: `raw-${Math.random().toString(36).slice(2)}`, username: '', password: Buffer.from(token('watcher')), ...connect })
  await waitFor(() => packets.some((p) => p.cmd === 'connack'), 'the CONNACK')
  return { packets, send }
}

t.test('what a v5 client says it can take: Maximum Packet Size, Receive Maximum, topic aliases, payload format', async (t) => {
  const [broker] = await startNodes(t, 1) as [BrokerHandle]
  const publisher = await connectClient(t, broker, 'tcp', v5('pat'))

  // [MQTT-3.1.2-25] a message larger than the client's Maximum Packet Size is not sent to it
  const small = await connectClient(t, broker, 'tcp', v5('sam', { properties: { maximumPacketSize: 256 } }))
  const smallGot = collect(small)
  await small.subscribeAsync('chat/size', { qos: 1 })
  await publisher.publishAsync('chat/size', 'x'.repeat(1000), { qos: 1 })
  await publisher.publishAsync('chat/size', 'fits', { qos: 1 })
  await waitFor(() => smallGot.length === 1, 'the message that fits')
  await sleep(200)
  t.same(smallGot.map((m) => m.payload), ['fits'], 'only the message that fits')

  // [MQTT-3.3.4-9] no more unacknowledged QoS 1 messages than its Receive Maximum
  const raw = await rawV5(t, broker, { properties: { receiveMaximum: 2 } })
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'chat/window', qos: 1 }] })
  await waitFor(() => raw.packets.some((p) => p.cmd === 'suback'), 'the SUBACK')
  for (let i = 0; i < 5; i++) await publisher.publishAsync('chat/window', `w${i}`, { qos: 1 })
  const publishes = (): mqttPacket.IPublishPacket[] => raw.packets.filter((p): p is mqttPacket.IPublishPacket => p.cmd === 'publish')
  await waitFor(() => publishes().length === 2, 'two messages')
  await sleep(300)
  t.equal(publishes().length, 2, 'two in flight, the rest wait')
  raw.send({ cmd: 'puback', messageId: publishes()[0]?.messageId, reasonCode: 0 })
  await waitFor(() => publishes().length === 3, 'a third once one is acknowledged')
  for (const p of publishes()) raw.send({ cmd: 'puback', messageId: p.messageId, reasonCode: 0 })
  await waitFor(() => publishes().length === 5, 'all five, in order')
  t.same(publishes().map((p) => p.payload.toString()), ['w0', 'w1', 'w2', 'w3', 'w4'], 'every message, in order')

  // a payload announced as UTF-8 that is not: PUBACK 0x99
  t.equal(await publishCode(await connectClient(t, broker, 'tcp', v5('pat')), 'chat/pfi', Buffer.from([0xff, 0xfe]) as unknown as string, 1, { payloadFormatIndicator: true }), 0x99, 'PUBACK 0x99 Payload format invalid')
})

t.test('outbound topic aliases, when configured: the topic once, then its alias', async (t) => {
  const broker = await startBroker(t, { ...config, limits: { outboundTopicAliases: 4 } })
  const sub = await connectClient(t, broker, 'tcp', v5('sam', { properties: { topicAliasMaximum: 8 } }))
  const wire: mqttPacket.IPublishPacket[] = []
  sub.on('packetreceive', (packet) => { if (packet.cmd === 'publish') wire.push(packet as mqttPacket.IPublishPacket) })
  const got = collect(sub)
  await sub.subscribeAsync('chat/#', { qos: 1 })
  const publisher = await connectClient(t, broker, 'tcp', v5('pat'))
  for (const n of [1, 2, 3]) await publisher.publishAsync('chat/room/with/a/long/topic', `m${n}`, { qos: n === 2 ? 0 : 1 })
  await waitFor(() => got.length === 3, 'three messages')
  t.same(wire.map((p) => [p.topic, p.properties?.topicAlias]), [['chat/room/with/a/long/topic', 1], ['', 1], ['', 1]], 'topic and alias 1, then the alias alone [MQTT-3.3.2-9]')
  t.same(got.map((m) => m.topic), Array(3).fill('chat/room/with/a/long/topic'), 'the client reads the topic back')
})
