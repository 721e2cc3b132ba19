// One publish limiter per user, whatever the transport (issue #24, item 7): a user's MQTT
// connections and HTTP publishes take from the same buckets, and HTTP publish applies every
// role limit (maxPublishRate, maxPublishBytesRate, maxQos, maxPayloadSize).
import jwt from 'jsonwebtoken'
import t from 'tap'
import { PublishRateLimiter } from '../src/acl/rate-limit.js'
import { collect, connectClient, metricValue, sleep, startBroker } from './helpers/broker.js'

const secret = 'publish-rate-per-user-secret-0123456789'
const token = (sub: string): string => jwt.sign({ sub }, secret, { expiresIn: 600 })
const rate = 10
const config = {
  auth: { anonymous: false, jwt: { secret } },
  acl: {
    roles: {
      slow: { pub: ['data/#'], sub: ['data/#'], limits: { maxPublishRate: rate, maxQos: 1 as const, maxPayloadSize: 100 } },
      bulky: { pub: ['data/#'], sub: [], limits: { maxPublishBytesRate: 1000 } }
    },
    users: { root: { roles: ['admin'] }, throttled: { roles: ['slow'] }, loader: { roles: ['bulky'] } },
    onLimitExceeded: 'drop' as const
  }
}

/** POST /api/v1/publish as `user`: the status and the error the broker answered. */
async function httpPublish (base: string, user: string, body: unknown): Promise<{ status: number, error: string }> {
  const res = await fetch(`${base}/api/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token(user)}` }, body: JSON.stringify(body) })
  return { status: res.status, error: String((await res.json() as { error?: unknown }).error ?? '') }
}

t.test('a user\'s MQTT connections and HTTP publishes share one rate limit', async (t) => {
  const broker = await startBroker(t, config)
  const base = `http://127.0.0.1:${broker.addresses.http.port}`
  const post = (user: string, body: unknown): Promise<{ status: number, error: string }> => httpPublish(base, user, body)
  const watcher = await connectClient(t, broker, 'tcp', { username: '', password: token('root') })
  await watcher.subscribeAsync('data/#', { qos: 1 })
  const delivered = collect(watcher)
  const phone = await connectClient(t, broker, 'tcp', { username: '', password: token('throttled') })
  const laptop = await connectClient(t, broker, 'ws', { username: '', password: token('throttled') })

  const started = performance.now()
  const statuses: number[] = []
  for (let i = 0; i < 3 * rate; i++) statuses.push((await post('throttled', { topic: 'data/http', payload: i })).status)
  await Promise.all(Array.from({ length: 3 * rate }, (_, i) => phone.publishAsync('data/phone', String(i), { qos: 1 })))
  await Promise.all(Array.from({ length: 3 * rate }, (_, i) => laptop.publishAsync('data/laptop', String(i), { qos: 1 })))
  const elapsedS = (performance.now() - started) / 1000
  await sleep(300)
  // one second of burst, then `rate` a second
  const bound = Math.floor(rate * (1 + elapsedS)) + 1
  t.ok(delivered.length <= bound, `${delivered.length} of ${9 * rate} delivered in ${elapsedS.toFixed(2)} s: at most ${bound} for the user across HTTP, TCP and WebSocket`)
  t.ok(statuses.includes(429), 'HTTP publishes over the limit are answered 429')
  const accepted = statuses.filter((s) => s === 200).length
  const text = await (await fetch(`${base}/metrics`)).text()
  t.equal(metricValue(text, 'realtime_broker_dropped_messages_total', { reason: 'rate_limit' }), 9 * rate - delivered.length, 'every message over the limit counted, whichever transport')
  t.ok(accepted <= bound, 'HTTP accepted no more than the limit')
})

t.test('HTTP publish applies maxQos, maxPayloadSize and maxPublishBytesRate', async (t) => {
  const broker = await startBroker(t, config)
  const base = `http://127.0.0.1:${broker.addresses.http.port}`
  const post = (user: string, body: unknown): Promise<{ status: number, error: string }> => httpPublish(base, user, body)
  t.match(await post('throttled', { topic: 'data/q', payload: 1, qos: 2 }), { status: 400, error: /QoS over 1/ }, 'QoS over maxQos: 400')
  t.match(await post('throttled', { topic: 'data/big', payload: 'x'.repeat(200) }), { status: 400, error: /payload over 100 bytes/ }, 'payload over maxPayloadSize: 400')
  t.match(await post('loader', { topic: 'data/b', payloadBase64: Buffer.alloc(600).toString('base64') }), { status: 200 })
  t.match(await post('loader', { topic: 'data/b', payloadBase64: Buffer.alloc(600).toString('base64') }), { status: 429, error: /over 1000 bytes per second/ }, 'bytes over maxPublishBytesRate: 429')
  const text = await (await fetch(`${base}/metrics`)).text()
  t.equal(metricValue(text, 'realtime_broker_dropped_messages_total', { reason: 'qos_limit' }), 1, 'counted like an MQTT publish over maxQos')
  t.equal(metricValue(text, 'realtime_broker_dropped_messages_total', { reason: 'size' }), 1)
  t.equal(metricValue(text, 'realtime_broker_dropped_messages_total', { reason: 'rate_limit' }), 1)
})

t.test('the buckets are bounded: those full again (no publish for a second) are dropped', async (t) => {
  const limiter = new PublishRateLimiter()
  const limits = { maxPublishRate: 5, maxPublishBytesRate: 500 }
  const t0 = Date.now()
  // ten seconds, a thousand new users publishing each second
  for (let second = 0; second < 10; second++) {
    for (let i = 0; i < 1000; i++) limiter.take(limiter.keys(`user-${second}-${i}`, '', limits), 1, 10, t0 + second * 1000 + i / 10)
  }
  t.ok(limiter.size <= 2 * 2 * 1000 + 2048, `${limiter.size} buckets held for 20,000 ever used (two per user)`)
  // a user publishing from several connections is limited as one
  const keys = limiter.keys('busy', '', limits)
  const allowed = Array.from({ length: 20 }, () => limiter.take(keys, 1, 1, t0 + 20_000)).filter((ok) => ok === null).length
  t.equal(allowed, 5)
})
