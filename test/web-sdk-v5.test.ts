// The browser SDK's MQTT 5: the version it ends up on (against the real broker, and against an
// older broker's stand-in that refuses MQTT 5), token refresh by re-authentication at the byte
// level, and message properties. The SDK runs in Node here, over TCP (MQTT.js's Node build);
// test/browser.test.ts runs it in Chromium over WebSocket.
import type { IAuthPacket, IConnectPacket, IPublishPacket, Packet } from 'mqtt-packet'
import t from 'tap'
import { RealtimeClient, type RealtimeOptions } from '../clients/web/src/client.js'
import type { RealtimeError } from '../clients/web/src/errors.js'
import { signToken, type JwtConfig } from '../src/acl/jwt.js'
import { acceptsMqtt5, brokerUrl, collect, connectClient, startBroker, waitFor } from './helpers/broker.js'
import type { Teardown } from './helpers/loopback.js'
import { startScriptedPeer, startVersionRefusingPeer, type PeerConnection } from './helpers/mqtt-peers.js'

/** A client of the SDK, closed by the test's teardown, logging its states and errors. */
function sdkClient (t: Teardown, options: RealtimeOptions): { client: RealtimeClient, states: string[], errors: RealtimeError[] } {
  const client = new RealtimeClient({ backoff: { initialDelayMs: 50, maxDelayMs: 200 }, connectTimeoutMs: 2000, ...options })
  const states: string[] = []
  const errors: RealtimeError[] = []
  client.on('state', ({ state }) => states.push(state))
  client.on('error', (error) => errors.push(error))
  t.teardown(() => client.close())
  return { client, states, errors }
}

/** An unsigned JWT (the scripted peer does not verify it), valid for `ttlS` from now. */
function unsignedToken (sub: string, ttlS: number, serial: number): string {
  const now = Math.floor(Date.now() / 1000)
  return `e30.${Buffer.from(JSON.stringify({ sub, iat: now, exp: now + ttlS, serial })).toString('base64url')}.sig`
}

const connackV5 = (reasonCode = 0): Packet => ({ cmd: 'connack', sessionPresent: false, reasonCode })
const connectOf = (connection: PeerConnection): IConnectPacket => connection.received[0]?.packet as IConnectPacket

t.test('against the real broker the SDK ends up on the version the broker accepts', async (t) => {
  const broker = await startBroker(t)
  const url = brokerUrl(broker, 'tcp')
  const expected = await acceptsMqtt5(t, url) ? 5 : 4
  const { client, errors } = sdkClient(t, { url })
  await client.whenOnline()
  t.equal(client.protocolVersion, expected, `MQTT ${expected === 5 ? '5' : '3.1.1'}`)
  const got: unknown[] = []
  await client.subscribe('v/#', (data) => got.push(data))
  await client.publish('v/1', { on: expected })
  await waitFor(() => got.length === 1, 'its own message back')
  t.same(got, [{ on: expected }])
  t.same(errors, [], 'a fallback is no error')
})

t.test('a broker that refuses MQTT 5 with CONNACK 0x01 gets MQTT 3.1.1, once for the client\'s life [MQTT-3.1.2-2]', async (t) => {
  const broker = await startBroker(t)
  const peer = await startVersionRefusingPeer(t, broker.addresses.mqtt.port, 0x01)
  const { client, states, errors } = sdkClient(t, { url: `mqtt://127.0.0.1:${peer.port}` })
  await client.whenOnline()
  t.same(peer.levels, [5, 4], 'MQTT 5 first, then 3.1.1')
  t.equal(client.protocolVersion, 4)
  t.same(states, ['online'], 'no backoff, no reconnecting state for the fallback')
  t.same(errors, [])

  // the connection drops: the next attempt goes straight to 3.1.1
  peer.drop()
  await waitFor(() => peer.levels.length === 3 && client.state === 'online', 'the reconnect')
  t.same(peer.levels, [5, 4, 4], 'the fallback is remembered')
  const tcp = await connectClient(t, broker, 'tcp')
  const got = collect(tcp)
  await tcp.subscribeAsync('old/#', { qos: 1 })
  await client.publish('old/broker', 'works', { properties: { userProperties: { dropped: 'on 3.1.1' } } })
  await waitFor(() => got.length === 1, 'the message through the old broker')
  t.equal(got[0]?.payload, '"works"')
  t.equal(got[0]?.packet.properties, undefined, 'properties are not sent on 3.1.1')
})

t.test('an MQTT 5 broker that refuses the version with 0x84 gets 3.1.1 too', async (t) => {
  const broker = await startBroker(t)
  const peer = await startVersionRefusingPeer(t, broker.addresses.mqtt.port, 0x84)
  const { client, errors } = sdkClient(t, { url: `mqtt://127.0.0.1:${peer.port}` })
  await client.whenOnline()
  t.same(peer.levels, [5, 4])
  t.same(errors, [])
})

t.test('protocolVersion forces a version: 5 closes on a broker without it, 4 never tries 5', async (t) => {
  const broker = await startBroker(t)
  const peer = await startVersionRefusingPeer(t, broker.addresses.mqtt.port)
  const { client, errors } = sdkClient(t, { url: `mqtt://127.0.0.1:${peer.port}`, protocolVersion: 5, token: () => unsignedToken('x', 60, 0) })
  await t.rejects(client.whenOnline(), { code: 'closed' })
  t.same(errors.map((e) => e.message), ['connection refused by the broker: the broker does not accept MQTT 5'], 'closed with the reason, even with a token provider')
  t.same(peer.levels, [5], 'no retries: the version stays refused')

  const second = await startVersionRefusingPeer(t, broker.addresses.mqtt.port)
  const old = sdkClient(t, { url: `mqtt://127.0.0.1:${second.port}`, protocolVersion: 4 }).client
  await old.whenOnline()
  t.same(second.levels, [4])
})

/** A peer that plays an MQTT 5 broker: accepts every CONNECT, answers AUTH with `onAuth`. */
async function reauthPeer (t: Teardown, onAuth: (connection: PeerConnection, packet: IAuthPacket) => void): Promise<{ port: number, connections: PeerConnection[] }> {
  return await startScriptedPeer(t, (connection, packet) => {
    if (packet.cmd === 'connect') connection.send(connackV5())
    else if (packet.cmd === 'auth') onAuth(connection, packet)
  })
}

/** A token provider of unsigned tokens living `ttlS`; `issued` lists them in order. */
function tokenSeries (ttlS: number): { provider: () => string, issued: string[] } {
  const issued: string[] = []
  return { issued, provider: () => { const token = unsignedToken('ann', ttlS, issued.length); issued.push(token); return token } }
}

t.test('MQTT 5 token refresh: AUTH 0x19 with method JWT and the new token on the live connection [MQTT-4.12.1-1]', async (t) => {
  const peer = await reauthPeer(t, (connection) => connection.send({ cmd: 'auth', reasonCode: 0, properties: { authenticationMethod: 'JWT' } }))
  // a 3 s token is renewed after 2 s
  const tokens = tokenSeries(3)
  const { client, states, errors } = sdkClient(t, { url: `mqtt://127.0.0.1:${peer.port}`, token: tokens.provider })
  await client.whenOnline()
  const connect = connectOf(peer.connections[0] as PeerConnection)
  t.equal(connect.protocolVersion, 5)
  t.same(connect.properties, { authenticationMethod: 'JWT', authenticationData: Buffer.from(tokens.issued[0] as string) }, 'the token as Authentication Data under the method JWT')
  t.equal(connect.password, undefined, 'and not as the password')
  t.equal(connect.username, 'ann', 'the user name is the token\'s subject')

  await waitFor(() => (peer.connections[0]?.received.filter((r) => r.packet.cmd === 'auth').length ?? 0) >= 2, 'two refreshes', 8000)
  const auths = (peer.connections[0] as PeerConnection).received.filter((r) => r.packet.cmd === 'auth')
  auths.forEach(({ bytes }, i) => {
    const token = Buffer.from(tokens.issued[i + 1] as string)
    const properties = Buffer.concat([Buffer.from([0x15, 0x00, 0x03]), Buffer.from('JWT'), Buffer.from([0x16, token.length >> 8, token.length & 0xff]), token])
    // AUTH: type 15, reason code 0x19 Re-authenticate, properties: 0x15 method, 0x16 data
    const expected = Buffer.concat([Buffer.from([0xf0, 2 + properties.length, 0x19, properties.length]), properties])
    t.equal(bytes.toString('hex'), expected.toString('hex'), `refresh ${i + 1}: AUTH 0x19, method JWT, token ${i + 1} as data`)
  })
  t.equal(peer.connections.length, 1, 'no reconnect')
  t.same(states, ['online'], 'online throughout')
  t.same(errors, [])
})

t.test('a refused re-authentication (DISCONNECT 0x87) makes the client reconnect with a fresh token [MQTT-4.12.1-2]', async (t) => {
  const peer = await reauthPeer(t, (connection) => {
    connection.send({ cmd: 'disconnect', reasonCode: 0x87 })
    connection.socket.end()
  })
  const tokens = tokenSeries(3)
  const { client, errors } = sdkClient(t, { url: `mqtt://127.0.0.1:${peer.port}`, token: tokens.provider })
  await client.whenOnline()
  await waitFor(() => peer.connections.length === 2 && client.state === 'online', 'the reconnect', 8000)
  const second = connectOf(peer.connections[1] as PeerConnection)
  t.same(tokens.issued.length, 3, 'the refused token was replaced')
  t.same(second.properties?.authenticationData, Buffer.from(tokens.issued[2] as string), 'the reconnect carries the token fetched after the refusal')
  t.same(errors.map((e) => e.message), ['disconnected by the broker: not authorized (0x87)'])
})

t.test('a broker that does not answer AUTH: the refresh reconnects with the new token', async (t) => {
  const peer = await reauthPeer(t, () => {})
  const tokens = tokenSeries(3)
  const { client, states } = sdkClient(t, { url: `mqtt://127.0.0.1:${peer.port}`, token: tokens.provider, connectTimeoutMs: 500 })
  await client.whenOnline()
  await waitFor(() => peer.connections.length === 2 && client.state === 'online', 'the reconnect', 8000)
  const auth = peer.connections[0]?.received.find((r) => r.packet.cmd === 'auth')?.packet as IAuthPacket
  t.same(connectOf(peer.connections[1] as PeerConnection).properties?.authenticationData, auth.properties?.authenticationData, 'with the token the AUTH carried')
  t.same(states, ['online', 'reconnecting', 'online'])
})

t.test('an MQTT 5 broker without the JWT method (CONNACK 0x8C) gets the token as the password, and refreshes by reconnecting [MQTT-4.12.0-1]', async (t) => {
  const peer = await startScriptedPeer(t, (connection, packet) => {
    if (packet.cmd === 'connect') connection.send(connackV5(packet.properties?.authenticationMethod === undefined ? 0 : 0x8c))
    else if (packet.cmd === 'disconnect') connection.socket.end()
  })
  const tokens = tokenSeries(3)
  const { client, errors } = sdkClient(t, { url: `mqtt://127.0.0.1:${peer.port}`, token: tokens.provider })
  await client.whenOnline()
  const [refused, accepted] = peer.connections.map(connectOf)
  t.equal(refused?.properties?.authenticationMethod, 'JWT')
  t.equal(accepted?.protocolVersion, 5, 'still MQTT 5')
  t.equal(accepted?.properties, undefined, 'no authentication method')
  t.equal(accepted?.password?.toString(), tokens.issued[0], 'the same token, as the password')
  await waitFor(() => peer.connections.length === 3 && client.state === 'online', 'the refresh', 8000)
  const refreshed = connectOf(peer.connections[2] as PeerConnection)
  t.equal(refreshed.password?.toString(), tokens.issued[1], 'the refresh reconnects with the new token as the password')
  t.equal(peer.connections[1]?.received.find((r) => r.packet.cmd === 'auth'), undefined, 'no AUTH where the CONNECT had no method')
  t.same(errors, [])
})

t.test('message properties both ways (user properties, response topic, correlation data, content type, expiry); MQTT 5 refusals say why and keep the connection', async (t) => {
  const peer = await startScriptedPeer(t, (connection, packet) => {
    if (packet.cmd === 'connect') connection.send(connackV5())
    if (packet.cmd === 'subscribe') connection.send({ cmd: 'suback', messageId: packet.messageId, granted: [packet.subscriptions[0]?.topic === 'staff/#' ? 0x87 : 1] })
    if (packet.cmd === 'publish' && packet.qos === 1) connection.send({ cmd: 'puback', messageId: packet.messageId, reasonCode: packet.topic === 'denied' ? 0x87 : 0 })
  })
  const { client, errors } = sdkClient(t, { url: `mqtt://127.0.0.1:${peer.port}` })
  await client.whenOnline()
  const connection = peer.connections[0] as PeerConnection
  const properties = {
    userProperties: { trace: 'abc', tag: ['one', 'two'] },
    responseTopic: 'replies/ann',
    correlationData: new Uint8Array([0, 1, 254, 255]),
    contentType: 'application/json',
    messageExpiryInterval: 30,
    payloadFormatIndicator: true
  }
  await client.publish('requests/time', { want: 'time' }, { properties })
  const sent = connection.received.find((r) => r.packet.cmd === 'publish')?.packet as IPublishPacket
  t.same(sent.properties, { ...properties, correlationData: Buffer.from([0, 1, 254, 255]) }, 'every property on the wire')

  const got: Array<{ data: unknown, properties: unknown }> = []
  await client.subscribe('replies/ann', (data, message) => got.push({ data, properties: message.properties }))
  connection.send({ cmd: 'publish', topic: 'replies/ann', payload: '{"time":1}', qos: 0, retain: false, dup: false, properties: { correlationData: Buffer.from([0, 1, 254, 255]), userProperties: { from: 'clock' } } })
  await waitFor(() => got.length === 1, 'the response')
  t.same(got, [{ data: { time: 1 }, properties: { correlationData: Buffer.from([0, 1, 254, 255]), userProperties: { from: 'clock' } } }], 'the handler sees the response\'s properties')

  await t.rejects(client.subscribe('staff/#', () => {}), { code: 'subscription-refused', message: 'subscription to "staff/#" refused by the broker: not authorized (0x87)', reasonCode: 0x87 }, 'a SUBACK says why')
  await t.rejects(client.publish('denied', 1), { code: 'publish-failed', message: 'publish to "denied" refused by the broker: not authorized (0x87)', reasonCode: 0x87 }, 'a PUBACK 0x87 rejects that publish only')
  t.equal(client.state, 'online', 'the connection stays up')
  await t.rejects(client.publish('requests/x', 1, { properties: { responseTopic: 'replies/+' } }), { code: 'publish-failed', message: /not a topic name/ }, '[MQTT-3.3.2-14] a response topic has no wildcards')
  t.same(errors, [])
})

t.test('MQTT 5 token refresh against the real broker re-authenticates without reconnecting', async (t) => {
  const secret = 'web-sdk-v5-test-secret-0123456789abcdef'
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] } })
  const jwt: JwtConfig = { secret, keys: [], algorithms: ['HS256'], requireExp: true, clockToleranceS: 0 }
  let issued = 0
  const { client, states, errors } = sdkClient(t, { url: brokerUrl(broker, 'tcp'), protocolVersion: 5, token: () => { issued++; return signToken(jwt, {}, { user: 'ivy', ttlS: 3 }) } })
  await client.whenOnline()
  const got: unknown[] = []
  await client.subscribe('refresh/#', (data) => got.push(data))
  await new Promise((resolve) => setTimeout(resolve, 4500))
  const publisher = await connectClient(t, broker, 'tcp', { username: '', password: signToken(jwt, {}, { user: 'tcp', ttlS: 60 }) })
  await publisher.publishAsync('refresh/after-expiry', '"still here"', { qos: 1 })
  await waitFor(() => got.length === 1, 'the message after the first token expired')
  t.ok(issued >= 2, 'a new token was fetched')
  t.same(states, ['online'], 'never reconnected')
  t.same(errors, [])
})
