// What an idle connection keeps (issue 22: RSS per idle connection): the CONNECT packet is let
// go once answered, token expiries share one timer, Aedes' inbound maps, subscriptions map and
// last-matched record are made on first use, listeners are kept in fixed-shape objects, and
// what replaced per-client closures (listeners, the keepalive timer's) still does its job; the
// output cap's watch and listeners are made only for a connection over the cap, a protocol
// violation is reported through Aedes' client error, and identities share their role lists.
import { createConnection } from 'node:net'
import jwt from 'jsonwebtoken'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { resolveRoles, type AclConfig } from '../src/acl/authorize.js'
import { clientById } from '../src/broker/aedes-adapter.js'
import { DeadlineBuckets } from '../src/broker/deadline-buckets.js'
import { capturingLogger, collect, connectClient, metricValue, sleep, startBroker, waitFor } from './helpers/broker.js'

const secret = 'test-secret-that-is-long-enough-0123456789'
const sign = (payload: object, expiresIn = 600): string => jwt.sign(payload, secret, { algorithm: 'HS256', expiresIn })

t.test('the CONNECT packet, password and all, is let go once answered; MQTT 3.1.1 and 5 clients keep working', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] } })
  for (const protocolVersion of [4, 5] as const) {
    const clientId = `idle-v${protocolVersion}`
    const client = await connectClient(t, broker, 'tcp', { clientId, protocolVersion, username: '', password: sign({ sub: 'alice' }) })
    const held = clientById(broker.aedes, clientId) as unknown as { _parser: { settings: Record<string, unknown> }, _inboundInflight: unknown, _topicAliases: unknown }
    t.ok(held !== undefined, `v${protocolVersion}: connected`)
    const { settings } = held._parser
    t.equal(settings.password, undefined, `v${protocolVersion}: the parser keeps no password`)
    t.equal(settings.username, undefined, `v${protocolVersion}: nor the user name`)
    t.equal(settings.protocolVersion, protocolVersion, `v${protocolVersion}: it still parses as its protocol version`)
    t.ok(Object.isFrozen(settings), 'shared settings cannot be changed through one parser')
    // a v5 PUBLISH with properties is parsed as v5: the settings still say so
    const got = collect(client)
    await client.subscribeAsync(`echo/${clientId}`, { qos: 1 })
    await client.publishAsync(`echo/${clientId}`, 'hello', { qos: 1, ...(protocolVersion === 5 ? { properties: { userProperties: { k: 'v' }, contentType: 'text/plain' } } : {}) })
    await waitFor(() => got.length === 1, `v${protocolVersion}: own message back`)
    // the Aedes patch: no QoS 2 and no topic alias yet, no map for them
    t.equal(held._inboundInflight, null, `v${protocolVersion}: no inbound QoS 2 map before the first QoS 2`)
    t.equal(held._topicAliases, null, `v${protocolVersion}: no topic alias map before the first alias`)
    await client.publishAsync(`echo/${clientId}`, 'exactly once', { qos: 2 })
    await waitFor(() => got.length === 2, `v${protocolVersion}: the QoS 2 message back`)
    if (protocolVersion === 5) t.equal(got[0]?.packet.properties?.contentType, 'text/plain', 'v5 properties read and forwarded')
    await client.endAsync()
  }
})

t.test('a connection\'s end is watched by shared listeners, not stream.finished(), and a reset connection still closes its client', async (t) => {
  const broker = await startBroker(t)
  const watcher = await connectClient(t, broker, 'tcp', { clientId: 'watcher' })
  await watcher.subscribeAsync('gone/#', { qos: 1 })
  const got = collect(watcher)
  const client = await connectClient(t, broker, 'tcp', { clientId: 'to-reset', will: { topic: 'gone/to-reset', payload: Buffer.from('reset'), qos: 1, retain: false } })
  const held = clientById(broker.aedes, 'to-reset') as unknown as { conn: NodeJS.EventEmitter }
  // the Aedes patch: finished() listened for 'finish' (and kept its closures); nothing does now
  t.equal(held.conn.listenerCount('finish'), 0, 'no finish listener on the socket')
  ;(client.stream as import('node:net').Socket).resetAndDestroy()
  await waitFor(() => clientById(broker.aedes, 'to-reset') === undefined, 'the reset client closed')
  await waitFor(() => got.length === 1, 'its will')
  t.equal(got[0]?.payload, 'reset')
})

t.test('an idle socket has no listener of the output cap and one error listener, Aedes\'; a protocol violation is still logged and counted as one', async (t) => {
  const { logger, lines } = capturingLogger()
  const broker = await startBroker(t, {}, logger)
  await connectClient(t, broker, 'tcp', { clientId: 'idle' })
  const conn = (clientById(broker.aedes, 'idle') as unknown as { conn: NodeJS.EventEmitter }).conn
  t.equal(conn.listenerCount('drain'), 0, 'no drain listener before the output goes over the cap')
  t.equal(conn.listenerCount('error'), 1, 'Aedes\' error listener only')
  // the connect gate's listener gone, the two that stay keep their order (in an array of their own)
  t.same(conn.rawListeners('close').map((listener) => listener.name), ['closeClient', 'releaseOnClose'], 'Aedes\' close listener, then the client-id claim\'s')
  const socket = createConnection({ host: '127.0.0.1', port: broker.addresses.mqtt.port })
  socket.on('error', () => {})
  socket.resume()
  const closed = new Promise((resolve) => socket.once('close', resolve))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'violator' }))
  await waitFor(() => clientById(broker.aedes, 'violator') !== undefined, 'the violator connected')
  // type 15 is reserved in MQTT 3.1.1 [MQTT-2.2.1]
  socket.write(Buffer.from([0xf0, 0x00]))
  await closed
  await waitFor(() => lines.some((l) => l.event === 'protocol.violation'), 'the violation logged')
  t.match(lines.find((l) => l.event === 'protocol.violation'), { transport: 'tcp', reason: /reserved control packet type 15/ })
  const text = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(text, 'realtime_broker_disconnects_total', { reason: 'protocol_violation' }), 1, 'counted as a protocol violation')
  t.equal(metricValue(text, 'realtime_broker_disconnects_total', { reason: 'error' }), 0, 'not as an error')
})

t.test('identities with the same roles share one frozen list', async (t) => {
  const acl: AclConfig = { roles: { member: { pub: ['#'], sub: ['#'] }, viewer: { pub: [], sub: ['#'] } }, users: { carol: { roles: ['viewer'] } }, defaultRoles: ['member'] }
  const alice = resolveRoles('alice', null, acl)
  t.same(alice, ['member'])
  t.equal(resolveRoles('bob', null, acl), alice, 'one list for both users')
  t.ok(Object.isFrozen(alice), 'which no identity can change')
  t.same(resolveRoles('carol', null, acl), ['viewer', 'member'], 'configured roles first, then the default ones')
  t.same(resolveRoles('carol', ['member', 'admin'], acl), ['member'], 'a token only narrows')
  t.equal(resolveRoles('carol', ['member'], acl), alice, 'the same list, from a token, is the same array')
  t.equal(resolveRoles(null, null, acl), resolveRoles(null, ['member'], acl), 'anonymous identities share theirs')
  t.not(resolveRoles('carol', null, { ...acl }), resolveRoles('carol', null, acl), 'a new config starts afresh')
})

t.test('an idle client shares an empty subscriptions map; its first subscription gets its own, prototype-less', async (t) => {
  const broker = await startBroker(t)
  const idle = await connectClient(t, broker, 'tcp', { clientId: 'idle' })
  const busy = await connectClient(t, broker, 'tcp', { clientId: 'busy' })
  type Held = { subscriptions: Record<string, unknown>, lastMatched: unknown, _pendingDrains: unknown, _events: object, _parser: { _events: object, _states: string[], _list: { length: number } } }
  const held = (id: string): Held => clientById(broker.aedes, id) as unknown as Held
  t.equal(held('idle').subscriptions, held('busy').subscriptions, 'one shared empty map')
  t.ok(Object.isFrozen(held('idle').subscriptions), 'which no client can write to')
  t.equal(held('idle').lastMatched, null, 'no last-matched record before a first delivery')
  t.equal(held('idle')._pendingDrains, null, 'no drain queue before a first wait')
  // fixed-shape listener objects (EventEmitter's own are prototype-less dictionaries)
  t.equal(Object.getPrototypeOf(held('idle')._events), Object.prototype, 'the client\'s listeners in a plain object')
  t.equal(Object.getPrototypeOf(held('idle')._parser._events), Object.prototype, 'the parser\'s too')
  // the mqtt-packet patch: one list of parsing steps for every parser
  t.equal(held('idle')._parser._states, held('busy')._parser._states, 'the parsers share their list of steps')
  t.ok(Object.isFrozen(held('idle')._parser._states), 'which none can change')
  t.equal(held('idle')._parser._list.length, 0, 'nothing left unparsed between packets')
  // GHSA-52qw-whmv-87c5: a filter named like an inherited property is no subscription until made one
  const got = collect(busy)
  await busy.subscribeAsync('constructor', { qos: 1 })
  t.not(held('busy').subscriptions, held('idle').subscriptions, 'the first subscription made the client its own map')
  t.equal(Object.getPrototypeOf(held('busy').subscriptions), null, 'prototype-less')
  t.equal(held('idle').subscriptions.constructor, undefined, 'the shared one is still empty')
  await idle.publishAsync('constructor', 'once', { qos: 1 })
  await busy.subscribeAsync('#', { qos: 0 })
  await idle.publishAsync('constructor', 'twice matched, once delivered', { qos: 1 })
  await waitFor(() => got.length === 2, 'both messages')
  await sleep(100)
  t.same(got.map((m) => m.payload), ['once', 'twice matched, once delivered'], 'one copy per message for overlapping subscriptions [MQTT-3.3.5-1]')
  t.same(Object.keys(held('busy').subscriptions).sort(), ['#', 'constructor'])
  await busy.unsubscribeAsync('constructor')
  t.same(Object.keys(held('busy').subscriptions), ['#'])
})

t.test('the keepalive timer, shared by every client, closes a silent client after 1.5 keepalives and no pinging one [MQTT-3.1.2-24]', async (t) => {
  const broker = await startBroker(t)
  const connect = (clientId: string): import('node:net').Socket => {
    const socket = createConnection({ host: '127.0.0.1', port: broker.addresses.mqtt.port })
    socket.on('error', () => {})
    // read (and drop) what the broker sends: a paused socket never sees its end
    socket.resume()
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 1, clientId }))
    return socket
  }
  const closedAt = (socket: import('node:net').Socket): Promise<number> => new Promise((resolve) => socket.once('close', () => resolve(Date.now())))
  const startedAt = Date.now()
  const silent = connect('silent')
  const pinging = connect('pinging')
  const silentClosed = closedAt(silent)
  let pingingClosed = false
  pinging.once('close', () => { pingingClosed = true })
  const pings = setInterval(() => pinging.write(Buffer.from([0xc0, 0x00])), 500)
  t.teardown(() => { clearInterval(pings); pinging.destroy() })
  const after = await silentClosed - startedAt
  t.ok(after >= 1_400 && after < 3_000, `the silent client closed after ${after} ms`)
  await sleep(2_500 - (Date.now() - startedAt))
  t.notOk(pingingClosed, 'the pinging one is still connected after 2.5 keepalives')
  const text = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(text, 'realtime_broker_disconnects_total', { reason: 'keepalive_timeout' }), 1)
})

t.test('token expiries share one timer: each client is disconnected at its own expiry, a closed one is forgotten', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret, clockToleranceS: 0, expiryGraceS: 0 } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] } })
  const startedAt = Date.now()
  const closedAfter = async (expiresIn: number, clientId: string): Promise<number> => {
    const client = await connectClient(t, broker, 'tcp', { clientId, username: '', password: sign({ sub: clientId }, expiresIn), reconnectPeriod: 0 })
    return await new Promise<number>((resolve) => client.once('close', () => resolve(Date.now() - startedAt)))
  }
  // one leaves before its token expires: its deadline must not disconnect anyone
  const early = await connectClient(t, broker, 'tcp', { clientId: 'early', username: '', password: sign({ sub: 'early' }, 2), reconnectPeriod: 0 })
  await early.endAsync()
  const [first, second] = await Promise.all([closedAfter(2, 'two'), closedAfter(3, 'three')])
  // exp is whole seconds: due between (n - 1) and n seconds after the start, at most 250 ms late
  t.ok(first >= 900 && first < 2_500, `the 2 s token's client closed after ${first} ms`)
  t.ok(second >= 1_900 && second < 3_500 && second > first, `the 3 s token's client closed after ${second} ms`)
})

t.test('DeadlineBuckets: due at or after the deadline, in order, never twice, removable', async (t) => {
  const due: Array<{ item: string, late: number }> = []
  const deadlines = new Map<string, number>()
  const buckets = new DeadlineBuckets<string>(50, (item) => due.push({ item, late: Date.now() - (deadlines.get(item) as number) }))
  const now = Date.now()
  for (const [item, after] of [['c', 300], ['a', 100], ['b', 200], ['gone', 150], ['a2', 100]] as const) {
    deadlines.set(item, now + after)
    buckets.add(item, now + after)
  }
  buckets.remove('gone', now + 150)
  t.equal(buckets.size, 4)
  await sleep(500)
  t.same(due.map((d) => d.item).sort(), ['a', 'a2', 'b', 'c'], 'each due once, the removed one never')
  t.same(due.map((d) => d.item).slice(2), ['b', 'c'], 'in deadline order')
  for (const { item, late } of due) t.ok(late >= 0 && late < 200, `${item}: ${late} ms after its deadline`)
  t.equal(buckets.size, 0)
  // a deadline past already: due at once
  buckets.add('past', Date.now() - 1_000)
  await sleep(20)
  t.equal(due.at(-1)?.item, 'past')
})
