// The authorization hook against a real local backend: allow, deny, narrowing, cache, ttl,
// timeout, a slow answer that stalls no other client, and revocation on one node and two.
import { request } from 'node:http'
import jwt from 'jsonwebtoken'
import type { MqttClient } from 'mqtt'
import t from 'tap'
import { verifySignature } from '../src/broker/webhooks/signing.js'
import type { ConfigInput } from '../src/broker/config/config.js'
import type { BrokerHandle } from '../src/server.js'
import { startAuthzBackend, type AuthzBackend, type Question } from './helpers/authz-backend.js'
import { collect, connectClient, connectRefused, brokerUrl, metricValue, sleep, startBroker, subscribeGranted, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'

const secret = 'authz-hook-test-secret-0123456789abcdef'
const hookSecret = 'authz-hook-signing-secret-0123456789'
const token = (sub: string, claims: object = {}): string => jwt.sign({ sub, ...claims }, secret, { expiresIn: 600 })
const as = (user: string, claims: object = {}): { username: string, password: string } => ({ username: '', password: token(user, claims) })

function config (backend: AuthzBackend, hook: Record<string, unknown> = {}, extra: ConfigInput = {}): ConfigInput {
  return {
    auth: { anonymous: false, jwt: { secret } },
    acl: { roles: { member: { pub: ['chat/#', 'slow/#', 'fast/#'], sub: ['chat/#', 'slow/#', 'fast/#'] }, guest: { pub: [], sub: ['chat/#'] } }, users: { ops: { roles: ['admin'] } }, defaultRoles: ['member', 'guest'], onPublishDenied: 'drop' },
    authorizationHook: { url: backend.url, connect: true, subscribe: true, publish: true, timeoutMs: 300, secret: hookSecret, ...hook },
    ...extra
  } as ConfigInput
}

const asked = (backend: AuthzBackend, action: string, topic?: string): Question[] =>
  backend.questions.filter((q) => q.action === action && (topic === undefined || q.topic === topic))

/** Publishes at QoS 1 from an MQTT 5 client; resolves with the PUBACK's reason code. */
async function pubackCode (client: MqttClient, topic: string, payload = 'x'): Promise<number> {
  return await new Promise((resolve) => {
    client.publish(topic, payload, { qos: 1 }, (err, packet) => {
      const code = (err as { code?: number } | undefined)?.code ?? (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0
      resolve(code)
    })
  })
}

async function revoke (broker: BrokerHandle, body: object): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: broker.addresses.http.port, method: 'POST', path: '/api/v1/admin/authz/revoke', headers: { authorization: `Bearer ${token('ops')}`, 'content-type': 'application/json' } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

t.test('connect: refused, allowed, narrowed by the answer; the question is signed', async (t) => {
  const backend = await startAuthzBackend(t)
  backend.decide = (q) => {
    if (q.user === 'mallory') return { allow: false }
    if (q.user === 'guest' && q.action === 'connect') return { allow: true, roles: ['guest'] }
    if (q.user === 'narrow' && q.action === 'connect') return { allow: true, acl: { pub: ['chat/r1'], sub: ['chat/r1'] } }
    return { allow: true }
  }
  const broker = await startBroker(t, config(backend))
  t.equal(await connectRefused(t, brokerUrl(broker, 'tcp'), as('mallory')), 5, 'refused: CONNACK 5')
  const alice = await connectClient(t, broker, 'tcp', as('alice'))
  t.match(asked(backend, 'connect').find((q) => q.user === 'alice'), { user: 'alice', roles: ['member', 'guest'] }, 'asked with the user and roles')
  t.ok(backend.questions.every((q) => verifySignature(hookSecret, q.signature, q.body, Math.floor(Date.now() / 1000))), 'every question is signed')
  t.same(await subscribeGranted(alice, { 'chat/r2': { qos: 0 } }), [0], 'alice keeps her grants')

  const guest = await connectClient(t, broker, 'tcp', as('guest'))
  t.same(await subscribeGranted(guest, { 'chat/r2': { qos: 0 }, 'fast/x': { qos: 0 } }), [0, 128], 'roles narrowed to guest: no fast/#')
  const narrow = await connectClient(t, broker, 'tcp', as('narrow'))
  t.same(await subscribeGranted(narrow, { 'chat/r1': { qos: 0 }, 'chat/r2': { qos: 0 } }), [0, 128], 'grants narrowed to the answer\'s acl')

  // the answer never widens: a token acl claim still bounds what the hook grants
  backend.decide = (q) => q.action === 'connect' ? { allow: true, acl: { pub: ['#'], sub: ['#'] } } : { allow: true }
  const claimed = await connectClient(t, broker, 'tcp', as('claimed', { acl: { pub: [], sub: ['chat/only'] } }))
  t.same(await subscribeGranted(claimed, { 'chat/only': { qos: 0 }, 'chat/other': { qos: 0 }, '$SYS/#': { qos: 0 } }), [0, 128, 128], 'token claim and roles still bound the answer')
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.ok(metricValue(metrics, 'realtime_broker_auth_failures_total', { reason: 'hook_denied' }) >= 1, 'refusals counted')
  t.ok(metricValue(metrics, 'realtime_broker_authz_hook_requests_total', { action: 'connect', result: 'deny' }) >= 1, 'hook results counted')
})

t.test('subscribe and publish: allowed, denied, cached per user, action and topic with the answer\'s ttl', async (t) => {
  const backend = await startAuthzBackend(t)
  backend.decide = (q) => {
    if (q.action === 'connect') return { allow: true }
    if (q.topic === 'chat/secret') return { allow: false, ttl: 60 }
    if (q.topic === 'chat/short') return { allow: true, ttl: 0.5 }
    return { allow: true, ttl: 60 }
  }
  const broker = await startBroker(t, config(backend))
  const alice = await connectClient(t, broker, 'tcp', { ...as('alice'), protocolVersion: 5 })
  const bob = await connectClient(t, broker, 'tcp', as('bob'))
  t.same(await subscribeGranted(bob, { 'chat/room': { qos: 1 }, 'chat/secret': { qos: 1 } }), [1, 128], 'subscribe: allowed and denied per filter')
  t.same(await subscribeGranted(bob, { 'chat/room': { qos: 1 } }), [1], 'again')
  t.equal(asked(backend, 'subscribe', 'chat/room').length, 1, 'the second subscribe was answered from the cache')
  const got = collect(bob)

  for (let i = 0; i < 50; i++) t.equal(await pubackCode(alice, 'chat/room', String(i)), 0)
  t.equal(asked(backend, 'publish', 'chat/room').length, 1, '50 publishes, one question')
  t.equal(await pubackCode(alice, 'chat/secret'), 0x87, 'denied publish: PUBACK 0x87 Not authorized (MQTT 5)')
  await waitFor(() => got.length === 50, '50 messages')
  t.ok(got.every((m) => m.topic === 'chat/room'), 'the denied message was not delivered')

  await pubackCode(alice, 'chat/short')
  await pubackCode(alice, 'chat/short')
  t.equal(asked(backend, 'publish', 'chat/short').length, 1, 'cached within its ttl')
  await sleep(600)
  await pubackCode(alice, 'chat/short')
  t.equal(asked(backend, 'publish', 'chat/short').length, 2, 'asked again after its ttl')

  // cached per user: carol's first publish on the topic is her own question
  const carol = await connectClient(t, broker, 'tcp', { ...as('carol'), protocolVersion: 5 })
  await pubackCode(carol, 'chat/room')
  t.equal(asked(backend, 'publish', 'chat/room').length, 2, 'another user asks for herself')
})

t.test('a backend that does not answer in time: denied by default, allowed if configured; other clients are not held', async (t) => {
  const backend = await startAuthzBackend(t)
  backend.delayMs = (q) => q.topic?.startsWith('slow/') === true ? 1000 : 0
  const broker = await startBroker(t, config(backend, { connect: false, subscribe: false, timeoutMs: 300 }))
  const slow = await connectClient(t, broker, 'tcp', { ...as('slow'), protocolVersion: 5 })
  const fast = await connectClient(t, broker, 'tcp', { ...as('fast'), protocolVersion: 5 })
  const reader = await connectClient(t, broker, 'tcp', as('reader'))
  await reader.subscribeAsync(['slow/#', 'fast/#'], { qos: 1 })
  const got = collect(reader)
  await pubackCode(fast, 'fast/warm') // warms fast's cache

  const started = Date.now()
  const slowAnswer = pubackCode(slow, 'slow/x')
  await sleep(20)
  t.equal(await pubackCode(fast, 'fast/warm', 'meanwhile'), 0)
  await waitFor(() => got.some((m) => m.payload === 'meanwhile'), 'the other client\'s message')
  t.ok(Date.now() - started < 250, `another client's publish went through while the slow question waited (${Date.now() - started} ms)`)
  t.equal(await slowAnswer, 0x87, 'timed out: denied (onFailure: deny)')
  t.notOk(got.some((m) => m.topic === 'slow/x'), 'and not delivered')
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(metrics, 'realtime_broker_authz_hook_requests_total', { action: 'publish', result: 'timeout' }), 1, 'the timeout counted')
  t.ok(metricValue(metrics, 'realtime_broker_authz_hook_duration_seconds_count', { action: 'publish' }) >= 2, 'latency observed')

  const lenient = await startBroker(t, config(backend, { connect: false, subscribe: false, timeoutMs: 300, onFailure: 'allow' }))
  const client = await connectClient(t, lenient, 'tcp', { ...as('slow'), protocolVersion: 5 })
  t.equal(await pubackCode(client, 'slow/y'), 0, 'onFailure: allow lets it through')
})

t.test('revocation through the admin API: cached answers dropped, clients unsubscribed or disconnected', async (t) => {
  const backend = await startAuthzBackend(t)
  let member = true
  backend.decide = (q) => q.action === 'connect' || q.user !== 'alice' ? { allow: true } : { allow: member, ttl: 3600 }
  const broker = await startBroker(t, config(backend))
  const alice = await connectClient(t, broker, 'tcp', { ...as('alice'), protocolVersion: 5 })
  const bob = await connectClient(t, broker, 'tcp', { ...as('bob'), protocolVersion: 5 })
  await alice.subscribeAsync('chat/g42', { qos: 1 })
  const got = collect(alice)
  t.equal(await pubackCode(alice, 'chat/g42', 'one'), 0)
  await waitFor(() => got.length === 1, 'her own message')

  member = false // she left group 42 in the app's database
  t.equal(await pubackCode(alice, 'chat/g42', 'cached'), 0, 'still allowed from the cache')
  t.equal(await revoke(broker, { user: 'alice', unsubscribe: true }), 202)
  await sleep(100)
  t.equal(await pubackCode(alice, 'chat/g42', 'after'), 0x87, 'asked again after the revocation: denied')
  t.equal(await pubackCode(bob, 'chat/g42', 'from bob'), 0)
  await sleep(200)
  t.notOk(got.some((m) => m.payload === 'from bob'), 'her subscription is gone: bob\'s message does not reach her')
  t.same(await subscribeGranted(alice, { 'chat/g42': { qos: 1 } }), [0x87], 'subscribing again is denied (SUBACK 0x87 Not authorized)')

  const closed = new Promise<void>((resolve) => alice.once('close', () => resolve()))
  t.equal(await revoke(broker, { user: 'alice', disconnect: true }), 202)
  await closed
  t.pass('disconnect: true closes her connection')
  t.equal(await revoke(broker, { disconnect: true }), 400, 'a revocation names a user')
})

t.test('two nodes: a revocation on one applies on the other; an admin client may publish it', async (t) => {
  const redis = await startRedis(t)
  const backend = await startAuthzBackend(t)
  let allowed = true
  backend.decide = (q) => q.action === 'connect' ? { allow: true } : { allow: allowed, ttl: 3600 }
  const a = await startBroker(t, config(backend, {}, { redis: { url: redis.url } }))
  const b = await startBroker(t, config(backend, {}, { redis: { url: redis.url } }))
  const onB = await connectClient(t, b, 'tcp', { ...as('dave'), protocolVersion: 5 })
  t.equal(await pubackCode(onB, 'chat/x'), 0, 'allowed and cached on B')
  allowed = false
  t.equal(await pubackCode(onB, 'chat/x'), 0, 'from B\'s cache')
  t.equal(await revoke(a, { user: 'dave' }), 202, 'revoked through node A')
  await sleep(300)
  t.equal(await pubackCode(onB, 'chat/x'), 0x87, 'B asked again: denied')

  allowed = true
  t.equal(await pubackCode(onB, 'chat/y'), 0, 'cached again')
  const closed = new Promise<void>((resolve) => onB.once('close', () => resolve()))
  const admin = await connectClient(t, a, 'tcp', as('ops'))
  await admin.publishAsync('$authz/revoke', JSON.stringify({ user: 'dave', disconnect: true }), { qos: 1 })
  await closed
  t.pass('an admin\'s MQTT message on $authz/revoke disconnects dave on the other node')
  const member = await connectClient(t, a, 'tcp', as('erin'))
  await member.publishAsync('$authz/revoke', JSON.stringify({ user: 'ops', disconnect: true }), { qos: 1 })
  await sleep(200)
  t.ok(admin.connected, 'a non-admin\'s revocation is dropped')
})
