// Operations: Prometheus metrics after real traffic, the admin API, audit lines.
import { createConnection } from 'node:net'
import jwt from 'jsonwebtoken'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { brokerUrl, capturingLogger, collect, connectClient, connectRefused, metricValue, openUrl, sleep, startBroker, subscribeGranted, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'
import { resolveConfig } from '../src/broker/config/config.js'

const secret = 'operations-test-secret-0123456789'
const token = (sub: string, extra: object = {}): string => jwt.sign({ sub, ...extra }, secret, { expiresIn: 600 })
const config = {
  auth: { anonymous: false, jwt: { secret } },
  acl: {
    roles: {
      member: { pub: ['#'], sub: ['data/#'] },
      slow: { pub: ['#'], sub: ['#'], limits: { maxPublishRate: 2 } }
    },
    users: { root: { roles: ['admin'] }, throttled: { roles: ['slow'] } },
    defaultRoles: ['member'],
    onLimitExceeded: 'drop' as const
  }
}

t.test('metrics move by the right amounts after real traffic', async (t) => {
  const broker = await startBroker(t, config)
  const scrape = async (): Promise<string> => await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()

  const sub = await connectClient(t, broker, 'tcp', { username: '', password: token('alice') })
  const pub = await connectClient(t, broker, 'ws', { username: '', password: token('bob') })
  await sub.subscribeAsync('data/#', { qos: 1 })
  const got = collect(sub)
  for (let i = 0; i < 3; i++) await pub.publishAsync('data/q0', 'abcd', { qos: 0 })
  for (let i = 0; i < 2; i++) await pub.publishAsync('data/q1', 'abcdefgh', { qos: 1 })
  await pub.publishAsync('data/retained', 'r', { qos: 1, retain: true })
  await waitFor(() => got.length === 6, 'six deliveries')
  t.same(await subscribeGranted(sub, { 'secret/#': { qos: 0 } }), [128])
  t.equal(await connectRefused(t, brokerUrl(broker, 'tcp'), { username: '', password: 'forged.token.here' }), 4)
  // the token picks only the limited role (member, which sets no rate, would lift the limit)
  const throttled = await connectClient(t, broker, 'tcp', { username: '', password: token('throttled', { roles: ['slow'] }) })
  await Promise.all(Array.from({ length: 5 }, () => throttled.publishAsync('data/fast', 'x', { qos: 1 })))

  const text = await scrape()
  t.equal(metricValue(text, 'realtime_broker_clients_connected', { transport: 'tcp' }), 2)
  t.equal(metricValue(text, 'realtime_broker_clients_connected', { transport: 'ws' }), 1)
  t.equal(metricValue(text, 'realtime_broker_messages_in_total', { qos: '0' }), 3)
  t.equal(metricValue(text, 'realtime_broker_bytes_in_total', { qos: '0' }), 12)
  t.equal(metricValue(text, 'realtime_broker_messages_in_total', { qos: '1' }), 2 + 1 + 2, 'two, the retained one, and the two under the rate limit')
  t.ok(metricValue(text, 'realtime_broker_messages_out_total', { qos: '1' }) >= 3)
  t.equal(metricValue(text, 'realtime_broker_acl_denials_total', { action: 'subscribe' }), 1)
  t.equal(metricValue(text, 'realtime_broker_auth_failures_total', { reason: 'bad_token' }), 1)
  t.equal(metricValue(text, 'realtime_broker_dropped_messages_total', { reason: 'rate_limit' }), 3, 'five sent, two per second allowed')
  t.equal(metricValue(text, 'realtime_broker_retained_messages'), 1 + 3, 'data/retained, and the $presence states of alice, bob and throttled')
  const latencyCount = metricValue(text, 'realtime_broker_delivery_latency_seconds_count')
  t.ok(latencyCount >= 6, 'delivery latency observed')
  t.equal(metricValue(text, 'realtime_broker_delivery_latency_seconds_bucket', { le: '+Inf' }), latencyCount, 'buckets are cumulative up to +Inf')
  t.ok(metricValue(text, 'realtime_broker_delivery_latency_seconds_bucket', { le: '1' }) <= latencyCount)
  t.ok(metricValue(text, 'realtime_broker_delivery_latency_seconds_sum') > 0)
  t.ok(metricValue(text, 'realtime_broker_process_resident_memory_bytes') > 0, 'process metrics')
  t.ok(text.includes('realtime_broker_nodejs_eventloop_lag_seconds'), 'event-loop lag')
  t.notOk(/alice|bob|data\/q0/.test(text), 'no client id, user or topic is ever a label')

  await pub.endAsync()
  await waitFor(() => broker.aedes.connectedClients === 2, 'disconnect seen')
  const after = await scrape()
  t.equal(metricValue(after, 'realtime_broker_clients_connected', { transport: 'ws' }), 0)
  t.equal(metricValue(after, 'realtime_broker_disconnects_total', { reason: 'client' }), 1)
})

t.test('the event-loop lag gauges sample at metrics.eventLoopMonitoringPrecisionMs: an idle loop reads about that interval', async (t) => {
  t.equal(resolveConfig({}).metrics.eventLoopMonitoringPrecisionMs, 100, 'coarser than prom-client\'s 10 ms by default: fewer wake-ups of an idle process')
  const fine = await startBroker(t, { metrics: { eventLoopMonitoringPrecisionMs: 10 } })
  const coarse = await startBroker(t, { metrics: { eventLoopMonitoringPrecisionMs: 250 } })
  await sleep(1_200)
  const lagMin = async (broker: typeof fine): Promise<number> => metricValue(await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text(), 'realtime_broker_nodejs_eventloop_lag_min_seconds')
  t.ok(await lagMin(fine) < 0.1, 'sampled every 10 ms')
  const coarseMin = await lagMin(coarse)
  t.ok(coarseMin >= 0.24 && coarseMin < 1, `sampled every 250 ms (shortest interval ${coarseMin} s)`)
  const err = t.throws(() => resolveConfig({ metrics: { eventLoopMonitoringPrecisionMs: 0 } })) as Error
  t.match(err.message, /metrics\.eventLoopMonitoringPrecisionMs .*expected milliseconds \(positive integer\)/)
})

t.test('admin API: 401 without a token, 403 without the admin role, then list, look up, disconnect', async (t) => {
  const { logger, lines } = capturingLogger()
  const broker = await startBroker(t, config, logger)
  const base = `http://127.0.0.1:${broker.addresses.http.port}/api/v1/admin`
  const as = (user: string): RequestInit => ({ headers: { authorization: `Bearer ${token(user)}` } })

  t.equal((await fetch(`${base}/clients`)).status, 401)
  t.equal((await fetch(`${base}/clients`, { headers: { authorization: 'Bearer forged' } })).status, 401)
  t.equal((await fetch(`${base}/clients`, as('alice'))).status, 403)

  const clients = await Promise.all(['c1', 'c2', 'c3'].map((id) => connectClient(t, broker, 'tcp', { clientId: id, username: '', password: token(`user-${id}`) })))
  await (clients[0])?.subscribeAsync('data/x', { qos: 1 })
  const list = await (await fetch(`${base}/clients?limit=2&offset=1`, as('root'))).json() as { total: number, clients: Array<{ id: string, user: string, transport: string }> }
  t.equal(list.total, 3)
  t.same(list.clients.map((c) => c.id), ['c2', 'c3'], 'paginated, ordered by id')
  t.match(list.clients[0], { user: 'user-c2', transport: 'tcp', node: broker.nodeId, subscriptions: 0 })
  const first = await (await fetch(`${base}/clients?limit=1`, as('root'))).json() as { clients: Array<{ id: string, subscriptions: number }> }
  t.same(first.clients, [{ ...first.clients[0], id: 'c1', subscriptions: 1 }], 'the list counts each client\'s subscriptions')

  const one = await (await fetch(`${base}/clients/c1`, as('root'))).json() as { subscriptions: unknown }
  t.same(one.subscriptions, [{ topic: 'data/x', qos: 1 }])
  t.same(await (await fetch(`${base}/clients/c1/subscriptions`, as('root'))).json(), { id: 'c1', subscriptions: [{ topic: 'data/x', qos: 1 }] })
  t.equal((await fetch(`${base}/clients/nobody`, as('root'))).status, 404)

  const closed = new Promise<void>((resolve) => clients[1]?.once('close', () => resolve()))
  const deleted = await fetch(`${base}/clients/c2`, { ...as('root'), method: 'DELETE' })
  t.equal(deleted.status, 200)
  await closed
  t.pass('the client was disconnected')
  const stats = await (await fetch(`${base}/stats`, as('root'))).json() as { clients: number }
  t.equal(stats.clients, 2)

  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(metrics, 'realtime_broker_disconnects_total', { reason: 'admin' }), 1)

  const audit = lines.filter((l) => l.audit === true)
  t.ok(audit.some((l) => l.event === 'admin.denied' && l.reason === 'not an admin'), 'refused admin call audited')
  t.ok(audit.some((l) => l.event === 'admin.disconnect' && l.clientId === 'c2' && l.admin === 'root'), 'admin action audited')
})

t.test('audit lines for authentication failures and ACL denials, without secrets or payloads', async (t) => {
  const { logger, lines } = capturingLogger()
  const broker = await startBroker(t, config, logger)
  const forged = token('mallory').slice(0, -4) + 'AAAA'
  t.equal(await connectRefused(t, brokerUrl(broker, 'tcp'), { username: '', password: forged }), 4)
  const client = await connectClient(t, broker, 'tcp', { username: '', password: token('eve') })
  t.same(await subscribeGranted(client, { 'admin/#': { qos: 0 } }), [128])
  const audit = lines.filter((l) => l.audit === true)
  t.ok(audit.some((l) => l.event === 'auth.failed' && l.kind === 'bad_token'), 'authentication failure')
  t.ok(audit.some((l) => l.event === 'acl.denied' && l.action === 'subscribe' && l.topic === 'admin/#' && l.user === 'eve'), 'ACL denial')
  t.notOk(JSON.stringify(lines).includes(forged), 'the token is never logged')
})

/** Sends a CONNECT and resets the connection at once, as a phone losing its network mid-login. */
async function abortedConnect (port: number, options: { clientId: string, password?: string, clean?: boolean, delayMs?: number }): Promise<void> {
  const socket = createConnection(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: options.clean ?? true, keepalive: 30, clientId: options.clientId, ...(options.password === undefined ? {} : { username: '', password: Buffer.from(options.password) }) })
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.write(connect)
  // the reset lands while the broker is between authentication and CONNACK
  await sleep(options.delayMs ?? 1)
  socket.resetAndDestroy()
  await closed
}

t.test('a connection dropped during CONNECT counts neither a connect nor a disconnect, and takes no user offline', async (t) => {
  const broker = await startBroker(t, { ...config, auth: { ...config.auth, anonymous: true } })
  const scrape = async (): Promise<string> => await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  const watcher = await connectClient(t, broker, 'tcp', { username: '', password: token('root') })
  await watcher.subscribeAsync('$presence/alice', { qos: 1 })
  const states = collect(watcher)
  await connectClient(t, broker, 'tcp', { clientId: 'alice-phone', username: '', password: token('alice') })
  await waitFor(() => states.some((s) => JSON.parse(s.payload).online === true), 'alice online')

  const port = broker.addresses.mqtt.port
  for (let i = 0; i < 100; i++) await abortedConnect(port, { clientId: `alice-web-${i}`, password: token('alice') })
  for (let i = 0; i < 100; i++) await abortedConnect(port, { clientId: `anon-${i}` })
  await waitFor(() => broker.aedes.connectedClients === 2, 'the aborted connections gone')
  await sleep(300)

  const text = await scrape()
  const connected = metricValue(text, 'realtime_broker_clients_connected', { transport: 'tcp' })
  t.equal(connected, 2, 'the gauge counts the two connected clients only')
  const disconnects = ['client', 'error', 'keepalive_timeout', 'protocol_violation'].reduce((sum, reason) => sum + metricValue(text, 'realtime_broker_disconnects_total', { reason }), 0)
  t.equal(metricValue(text, 'realtime_broker_connects_total', { transport: 'tcp' }) - disconnects, connected, 'connects minus disconnects is what is connected')
  t.notOk(states.some((s) => JSON.parse(s.payload).online === false), 'no offline state for alice while she is connected')
})

for (const mode of ['memory', 'redis'] as const) {
  t.test(`${mode}: connections dropped during CONNECT leave no client behind, and never unregister the holder of their id`, async (t) => {
    const redis = mode === 'memory' ? null : await startRedis(t)
    const broker = await startBroker(t, redis === null ? {} : { redis: { url: redis.url } })
    const port = broker.addresses.mqtt.port
    const { client: keeper } = await openUrl(t, brokerUrl(broker, 'tcp'), { clientId: 'keeper', clean: false })
    // resets landing at every step of the connect: authentication, session reads, CONNACK
    for (let i = 0; i < 60; i++) await abortedConnect(port, { clientId: `flaky-${i}`, clean: i % 2 === 0, delayMs: i % 6 })
    for (let i = 0; i < 30; i++) await abortedConnect(port, { clientId: 'keeper', clean: false, delayMs: i % 6 })
    await sleep(500)
    // a reset that came after the broker registered the connection was a takeover: keeper may be gone
    t.equal(broker.aedes.connectedClients, keeper.connected ? 1 : 0, 'only a client still connected is registered')
    const { client: holder } = await openUrl(t, brokerUrl(broker, 'tcp'), { clientId: 'keeper', clean: false })
    let holderClosed = false
    holder.once('close', () => { holderClosed = true })
    await openUrl(t, brokerUrl(broker, 'tcp'), { clientId: 'keeper', clean: false })
    await waitFor(() => holderClosed, 'the takeover closing the holder')
    t.pass('a takeover finds the holder and closes it')
    t.equal(broker.aedes.connectedClients, 1)
  })
}
