// The cluster-wide admin API: any node answers for every node's clients (two brokers on one
// real Redis, real MQTT.js clients), bans enforced at CONNECT on every node, the audit trail,
// and the drain.
import jwt from 'jsonwebtoken'
import t from 'tap'
import type { BrokerHandle } from '../src/server.js'
import { brokerUrl, collect, connectClient, connectRefused, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'
import { BanMatcher, banOf } from '../src/broker/admin/bans.js'
import { spawnBroker } from './helpers/process.js'
import type { Teardown } from './helpers/loopback.js'

const secret = 'admin-cluster-test-secret-0123456789'
const token = (sub: string): string => jwt.sign({ sub }, secret, { expiresIn: 600 })
const config = {
  auth: { anonymous: false, jwt: { secret } },
  acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, users: { root: { roles: ['admin'] } }, defaultRoles: ['member'] }
}

/** A caller of one node's admin API as `user` (root: an admin). */
function api (broker: BrokerHandle, user = 'root') {
  const base = `http://127.0.0.1:${broker.addresses.http.port}/api/v1/admin`
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked field by field with t.match
  return async (method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token(user)}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    return { status: res.status, body: await res.json() }
  }
}

async function twoNodes (t: Teardown): Promise<[BrokerHandle, BrokerHandle]> {
  const redis = await startRedis(t)
  const a = await startBroker(t, { ...config, nodeId: 'node-a', redis: { url: redis.url } })
  const b = await startBroker(t, { ...config, nodeId: 'node-b', redis: { url: redis.url } })
  return [a, b]
}

const connectAs = (t: Teardown, broker: BrokerHandle, clientId: string, user: string, extra: object = {}) =>
  connectClient(t, broker, 'tcp', { clientId, username: '', password: token(user), ...extra })

t.test('two nodes: any node lists, searches, inspects and disconnects the clients of both', async (t) => {
  const [a, b] = await twoNodes(t)
  const onA = api(a)
  await connectAs(t, a, 'phone-1', 'alice')
  const far = await connectAs(t, b, 'phone-42', 'bob', { protocolVersion: 5 })
  await far.subscribeAsync('fleet/+/pos', { qos: 1 })
  await connectAs(t, b, 'tablet-7', 'alice')

  const all = await onA('GET', '/clients')
  t.equal(all.status, 200)
  t.equal(all.body.total, 3, 'the clients of both nodes')
  t.same(all.body.clients.map((c: { id: string, node: string }) => [c.id, c.node]), [['phone-1', 'node-a'], ['phone-42', 'node-b'], ['tablet-7', 'node-b']], 'merged, ordered by id')
  t.same(all.body.unreachable, [])

  t.same((await onA('GET', '/clients?prefix=phone')).body.clients.map((c: { id: string }) => c.id), ['phone-1', 'phone-42'], 'by client id prefix')
  t.same((await onA('GET', '/clients?user=alice')).body.clients.map((c: { id: string }) => c.id), ['phone-1', 'tablet-7'], 'by user')
  t.same((await onA('GET', '/clients?node=node-b')).body.clients.map((c: { id: string }) => c.id), ['phone-42', 'tablet-7'], 'by node')
  t.equal((await onA('GET', '/clients?transport=ws')).body.total, 0, 'by transport')
  const first = await onA('GET', '/clients?limit=2')
  t.equal(first.body.next, 'phone-42', 'a cursor to the next page')
  t.same((await onA('GET', `/clients?limit=2&after=${first.body.next as string}`)).body.clients.map((c: { id: string }) => c.id), ['tablet-7'], 'the page after the cursor')
  t.same((await onA('GET', '/clients?limit=1&offset=2')).body.clients.map((c: { id: string }) => c.id), ['tablet-7'], 'offset pagination as before')
  t.equal((await onA('GET', '/clients?offset=20000')).status, 400, 'deep offsets page with the cursor')

  const one = await onA('GET', '/clients/phone-42')
  t.equal(one.status, 200)
  t.match(one.body, { id: 'phone-42', user: 'bob', node: 'node-b', protocolVersion: 5, subscriptions: [{ topic: 'fleet/+/pos', qos: 1 }], session: { queued: 0 } })
  t.same((await onA('GET', '/clients/phone-42/subscriptions')).body, { id: 'phone-42', subscriptions: [{ topic: 'fleet/+/pos', qos: 1 }] })
  t.equal((await onA('GET', '/clients/nobody')).status, 404)

  const disconnect = new Promise<number | undefined>((resolve) => far.once('disconnect', (packet) => resolve(packet.reasonCode)))
  const deleted = await onA('DELETE', '/clients/phone-42')
  t.equal(deleted.status, 200)
  t.same(deleted.body.nodes, ['node-b'])
  t.equal(await disconnect, 0x98, 'the v5 client on the other node got DISCONNECT 0x98 (administrative action)')
  await waitFor(() => b.aedes.connectedClients === 1, 'phone-42 gone from node-b')
  t.equal((await onA('DELETE', '/clients/phone-42')).status, 404, 'no longer connected anywhere')

  const nodes = await api(b)('GET', '/nodes')
  t.same(nodes.body.nodes.map((n: { id: string }) => n.id), ['node-a', 'node-b'])
  t.match(nodes.body.nodes[0], { id: 'node-a', connections: 1, draining: false, redis: { persistence: true }, memory: { rss: Number } })
  t.match(nodes.body.nodes[1], { id: 'node-b', connections: 1, messagesInPerS: Number, messagesOutPerS: Number, uptimeS: Number })

  const audit = await api(b)('GET', '/audit')
  t.match(audit.body.entries[0], { event: 'admin.disconnect', admin: 'root', target: 'phone-42', node: 'node-a' }, 'the trail is shared: read through another node')
  t.equal((await api(a, 'alice')('GET', '/audit')).status, 403, 'admins only')
})

t.test('two nodes: a ban of a user disconnects it and refuses its reconnects on both nodes within a second; lifted, it connects again', async (t) => {
  const [a, b] = await twoNodes(t)
  const victim = await connectAs(t, b, 'spammer-1', 'mallory', { protocolVersion: 5 })
  const bystander = await connectAs(t, a, 'good-1', 'alice')
  const closed = new Promise<number | undefined>((resolve) => victim.once('disconnect', (packet) => resolve(packet.reasonCode)))

  const created = await api(a)('POST', '/bans', { user: 'mallory', reason: 'spam', durationS: 3600 })
  t.equal(created.status, 201)
  t.match(created.body, { id: 'user:mallory', kind: 'user', value: 'mallory', reason: 'spam', by: 'root' })
  const bannedAt = Date.now()
  t.equal(await closed, 0x98, 'the live client on the other node is disconnected (0x98)')
  for (const node of [a, b]) {
    t.equal(await connectRefused(t, brokerUrl(node, 'tcp'), { clientId: 'spammer-2', username: '', password: token('mallory') }), 5, `3.1.1: CONNACK 5 on ${node.nodeId}`)
    t.equal(await connectRefused(t, brokerUrl(node, 'tcp'), { clientId: 'spammer-3', username: '', password: token('mallory'), protocolVersion: 5 }), 0x8A, `v5: CONNACK 0x8A (banned) on ${node.nodeId}`)
  }
  t.ok(Date.now() - bannedAt < 1000, 'refused on both nodes within a second of the ban')
  t.ok(bystander.connected, 'other users stay connected')
  const httpPublish = await fetch(`http://127.0.0.1:${b.addresses.http.port}/api/v1/publish`, { method: 'POST', headers: { authorization: `Bearer ${token('mallory')}`, 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'x/y', payload: 1 }) })
  t.equal(httpPublish.status, 401, 'nor publish over HTTP')
  t.match(await httpPublish.json(), { error: 'banned: spam' })
  t.same((await api(b)('GET', '/bans')).body.bans.map((ban: { id: string }) => ban.id), ['user:mallory'], 'listed through any node')

  t.equal((await api(b)('DELETE', '/bans/user%3Amallory')).status, 200)
  await openUrl(t, brokerUrl(a, 'tcp'), { clientId: 'spammer-4', username: '', password: token('mallory') })
  t.pass('lifted: mallory connects again')
  t.equal((await api(b)('DELETE', '/bans/user%3Amallory')).status, 404)
  const trail = (await api(a)('GET', '/audit')).body.entries.map((e: { event: string }) => e.event)
  t.same(trail.slice(0, 2), ['admin.unban', 'admin.ban'], 'both audited')
})

t.test('bans by client id and by address range; invalid bans are refused with the reason', async (t) => {
  const broker = await startBroker(t, config)
  const call = api(broker)
  t.equal((await call('POST', '/bans', { clientId: 'x', user: 'y' })).status, 400, 'exactly one of clientId, user, address')
  const bad = await call('POST', '/bans', { address: '10.0.0.0/99' })
  t.equal(bad.status, 400)
  t.match(bad.body.issues[0], { path: 'address', message: /CIDR/ })
  t.equal((await call('POST', '/bans', { clientId: 'bot-1', durationS: 1 })).status, 201)
  t.equal(await connectRefused(t, brokerUrl(broker, 'tcp'), { clientId: 'bot-1', username: '', password: token('carol') }), 5, 'banned client id')
  await sleep(1100)
  await connectAs(t, broker, 'bot-1', 'carol')
  t.pass('the ban expired')

  const local = await connectAs(t, broker, 'local-1', 'dave')
  const closed = new Promise<void>((resolve) => local.once('close', () => resolve()))
  t.equal((await call('POST', '/bans', { address: '127.0.0.0/8', reason: 'loopback' })).status, 201)
  await closed
  t.pass('the client in the banned range is disconnected')
  t.equal(await connectRefused(t, brokerUrl(broker, 'tcp'), { clientId: 'local-2', username: '', password: token('dave') }), 5, 'a CONNECT from the range is refused')
})

t.test('a drained node refuses new clients, disconnects its clients, reports not ready, and takes clients again when lifted', async (t) => {
  const broker = await startBroker(t, { ...config, nodeId: 'solo' })
  const client = await connectAs(t, broker, 'd-1', 'erin', { protocolVersion: 5 })
  const closed = new Promise<number | undefined>((resolve) => client.once('disconnect', (packet) => resolve(packet.reasonCode)))
  const drained = await api(broker)('POST', '/nodes/solo/drain')
  t.equal(drained.status, 200)
  t.equal(drained.body.draining, true)
  t.equal(await closed, 0x8B, 'v5: server shutting down, as SIGTERM\'s drain')
  t.equal((await fetch(`http://127.0.0.1:${broker.addresses.http.port}/readyz`)).status, 503, 'not ready: a load balancer sends no one')
  t.equal(await connectRefused(t, brokerUrl(broker, 'tcp'), { clientId: 'd-2', username: '', password: token('erin') }), 3, 'CONNACK 3, server unavailable')
  t.equal((await api(broker)('POST', '/nodes/ghost/drain')).status, 404)
  t.equal((await api(broker)('DELETE', '/nodes/solo/drain')).body.draining, false)
  t.equal((await fetch(`http://127.0.0.1:${broker.addresses.http.port}/readyz`)).status, 200)
  await connectAs(t, broker, 'd-3', 'erin')
  t.pass('accepting again')
})

for (const mode of ['memory', 'redis'] as const) {
  t.test(`${mode}: persistent sessions online and offline, with subscriptions and queued messages; deleting one takes its queue`, async (t) => {
    const redis = mode === 'redis' ? await startRedis(t) : null
    const withRedis = redis === null ? {} : { redis: { url: redis.url } }
    const a = await startBroker(t, { ...config, nodeId: 'node-a', ...withRedis })
    const b = redis === null ? a : await startBroker(t, { ...config, nodeId: 'node-b', ...withRedis })
    const away = await connectAs(t, a, 'sleeper', 'sam', { clean: false })
    await away.subscribeAsync('inbox/sam', { qos: 1 })
    await new Promise<void>((resolve) => away.end(false, {}, () => resolve()))
    const online = await connectAs(t, b, 'worker', 'wes', { clean: false })
    await online.subscribeAsync('jobs/#', { qos: 1 })
    await connectAs(t, b, 'passer-by', 'pat') // a clean session: not listed
    const pub = await connectAs(t, b, 'pub', 'pat')
    for (let i = 0; i < 3; i++) await pub.publishAsync('inbox/sam', `m${i}`, { qos: 1 })

    const call = api(b)
    let listed: Array<{ clientId: string }> = []
    // the session store records a connect and a disconnect asynchronously
    for (let i = 0; i < 50 && listed.length !== 2; i++) {
      listed = (await call('GET', '/sessions')).body.sessions
      if (listed.length !== 2) await sleep(50)
    }
    t.same(listed.map((s: { clientId: string }) => s.clientId).sort(), ['sleeper', 'worker'], 'the persistent sessions, not the clean ones')
    const offline = (await call('GET', '/sessions?state=offline')).body.sessions
    t.equal(offline.length, 1)
    t.match(offline[0], { clientId: 'sleeper', user: 'sam', online: false, node: null, subscriptions: [{ topic: 'inbox/sam', qos: 1 }], queued: 3 })
    t.ok(Date.parse(offline[0].expiresAt) > Date.now(), 'with its expiry')
    t.match((await call('GET', '/sessions?state=online')).body.sessions, [{ clientId: 'worker', user: 'wes', online: true, node: b.nodeId, subscriptions: [{ topic: 'jobs/#', qos: 1 }] }])
    t.match((await call('GET', '/sessions/sleeper')).body, { clientId: 'sleeper', queued: 3 })

    const deleted = await api(a)('DELETE', '/sessions/sleeper')
    t.equal(deleted.status, 200)
    t.equal((await call('GET', '/sessions/sleeper')).status, 404)
    const { client: back, connack } = await openUrl(t, brokerUrl(a, 'tcp'), { clientId: 'sleeper', clean: false, username: '', password: token('sam') })
    t.equal(connack.sessionPresent, false, 'the session is gone: no session present')
    const redelivered = collect(back)
    await back.subscribeAsync('nothing/here', { qos: 1 })
    await sleep(200)
    t.same(redelivered, [], 'and its queued messages with it')
    const closed = new Promise<void>((resolve) => online.once('close', () => resolve()))
    t.equal((await api(a)('DELETE', '/sessions/worker')).body.disconnected[0], b.nodeId, 'an online session: its client is disconnected first')
    await closed
    t.equal((await call('DELETE', '/sessions/nobody')).status, 404)
  })
}

t.test('two nodes: subscriptions with their subscribers, and retained messages listed, read and deleted through either node', async (t) => {
  const [a, b] = await twoNodes(t)
  const s1 = await connectAs(t, a, 's1', 'u1')
  const s2 = await connectAs(t, b, 's2', 'u2')
  await s1.subscribeAsync({ 'fleet/+/pos': { qos: 0 }, 'chat/#': { qos: 1 } })
  await s2.subscribeAsync('fleet/+/pos', { qos: 1 })
  const subs = await api(b)('GET', '/subscriptions')
  t.same(subs.body.filters, [{ filter: 'chat/#', subscribers: 1 }, { filter: 'fleet/+/pos', subscribers: 2 }], 'counted across both nodes')
  t.same((await api(b)('GET', '/subscriptions?prefix=fleet')).body.filters, [{ filter: 'fleet/+/pos', subscribers: 2 }])

  const pub = await connectAs(t, a, 'pub', 'u3')
  await pub.publishAsync('cfg/theme', 'dark', { qos: 1, retain: true })
  await pub.publishAsync('cfg/lang', 'en', { qos: 0, retain: true })
  await pub.publishAsync('cfg/blob', Buffer.from([0xff, 0x00, 0xfe]), { qos: 1, retain: true })
  await pub.publishAsync('other/x', 'x', { qos: 1, retain: true })
  const listed = await api(b)('GET', '/retained?filter=cfg/%23')
  t.same(listed.body.messages.map((m: { topic: string }) => m.topic).sort(), ['cfg/blob', 'cfg/lang', 'cfg/theme'])
  t.match(listed.body.messages.find((m: { topic: string }) => m.topic === 'cfg/blob'), { encoding: 'base64', preview: '/wD+', bytes: 3 })
  t.equal((await api(b)('GET', '/retained?filter=cfg/%23&limit=2')).body.more, true, 'bounded pages')
  t.equal((await api(b)('GET', '/retained?filter=cfg/%23%23')).status, 400, 'an invalid filter')
  t.match((await api(b)('GET', '/retained/cfg%2Ftheme')).body, { topic: 'cfg/theme', payload: 'dark', encoding: 'utf8', qos: 1 })
  t.equal((await api(b)('DELETE', '/retained/cfg/theme')).status, 200, 'deleted through the other node')
  t.equal((await api(a)('GET', '/retained/cfg/theme')).status, 404)
  const late = await connectAs(t, a, 'late', 'u4')
  const got: string[] = []
  late.on('message', (topic) => got.push(topic))
  await late.subscribeAsync('cfg/#', { qos: 1 })
  await sleep(300)
  t.same(got.sort(), ['cfg/blob', 'cfg/lang'], 'a new subscriber no longer gets the deleted one')
  const cleared = await api(a)('DELETE', '/retained?filter=cfg/%23')
  t.same(cleared.body, { filter: 'cfg/#', deleted: 2, more: false })
  t.same((await api(b)('GET', '/retained')).body.messages.map((m: { topic: string }) => m.topic).filter((topic: string) => !topic.startsWith('$')), ['other/x'])
  t.equal((await api(b)('DELETE', '/retained')).status, 400, 'deleting everything takes an explicit filter')
})

t.test('the console is served at /console unless http.console is false, with or without the demos', async (t) => {
  const status = async (broker: BrokerHandle, path: string): Promise<number> => (await fetch(`http://127.0.0.1:${broker.addresses.http.port}${path}`)).status
  const both = await startBroker(t, config)
  t.equal(await status(both, '/console'), 200)
  t.equal(await status(both, '/demos/console.js'), 200)
  const noConsole = await startBroker(t, { ...config, http: { port: 0, console: false } })
  t.equal(await status(noConsole, '/console'), 404, 'off')
  t.equal(await status(noConsole, '/demos/console.js'), 404)
  t.equal(await status(noConsole, '/'), 200, 'the demos stay')
  const consoleOnly = await startBroker(t, { ...config, http: { port: 0, demos: false } })
  t.equal(await status(consoleOnly, '/console'), 200, 'the console without the demos')
  t.equal(await status(consoleOnly, '/sdk/realtime.js'), 200, 'with the SDK it runs on')
  t.equal(await status(consoleOnly, '/chat.html'), 404, 'and no demo page')
})

t.test('a node that does not answer is listed as unreachable beside a partial answer, within the request timeout', async (t) => {
  const redis = await startRedis(t)
  const a = await startBroker(t, { ...config, nodeId: 'node-a', redis: { url: redis.url }, admin: { requestTimeoutMs: 500, auditEntries: 10 } })
  const dir = t.testdir({ 'node.yaml': JSON.stringify(config) })
  const frozen = await spawnBroker(t, ['--config', `${dir}/node.yaml`, '--redis', redis.url], { NODE_ID: 'node-frozen', LOG_LEVEL: 'warn' })
  await connectAs(t, a, 'here-1', 'alice')
  // stopped, not dead: it still counts as live until the node timeout, and answers nothing
  frozen.child.kill('SIGSTOP')
  t.teardown(() => { frozen.child.kill('SIGCONT') })
  const started = Date.now()
  const list = await api(a)('GET', '/clients')
  t.ok(Date.now() - started < 2000, 'answered after the request timeout, not held')
  t.equal(list.status, 200)
  t.same(list.body.clients.map((c: { id: string }) => c.id), ['here-1'], 'the answering nodes\' clients')
  t.match(list.body.unreachable, [{ node: 'node-frozen', reason: /no answer within 500 ms/ }])
  t.match((await api(a)('GET', '/nodes')).body, { nodes: [{ id: 'node-a' }], unreachable: [{ node: 'node-frozen' }] })
})

t.test('ban matching: ranges of both address families, IPv4-mapped peers, expiry', async (t) => {
  const ban = (request: Parameters<typeof banOf>[0]) => banOf(request, 'root', Date.parse('2026-01-01T00:00:00Z'))
  const matcher = new BanMatcher([
    ban({ address: '10.1.0.0/16', reason: 'range' }),
    ban({ address: '2001:db8::/32', reason: 'v6' }),
    ban({ address: '192.0.2.7', reason: 'one' }),
    ban({ user: 'eve', reason: 'short', durationS: 60 })
  ])
  const at = Date.parse('2026-01-01T00:00:30Z')
  const who = (address: string | undefined, user: string | null = null) => matcher.match({ clientId: 'c', user, address }, at)?.reason
  t.equal(who('10.1.200.3'), 'range')
  t.equal(who('::ffff:10.1.0.9'), 'range', 'an IPv4-mapped IPv6 peer')
  t.equal(who('10.2.0.1'), undefined)
  t.equal(who('2001:db8:ffff::1'), 'v6')
  t.equal(who('2001:db9::1'), undefined)
  t.equal(who('192.0.2.7'), 'one', 'a single address')
  t.equal(who('192.0.2.8'), undefined)
  t.equal(who(undefined, 'eve'), 'short')
  t.equal(matcher.match({ clientId: 'c', user: 'eve', address: undefined }, at + 60_000), undefined, 'expired')
  t.equal(ban({ address: '10.1.2.3/32', reason: '' }).id, 'address:10.1.2.3', 'a /32 is its address')
})
