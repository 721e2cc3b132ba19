// Webhooks out, on one node with the memory outbox: every event type reaches a real local HTTP
// receiver, signed, batched, in order, retried through failures, dead-lettered and replayed.
import { request } from 'node:http'
import jwt from 'jsonwebtoken'
import t from 'tap'
import { verifySignature } from '../src/broker/webhooks/signing.js'
import { connectClient, sleep, startBroker, waitFor } from './helpers/broker.js'
import { startWebhookReceiver, type ReceivedEvent, type WebhookReceiver } from './helpers/webhook-receiver.js'
import type { BrokerHandle } from '../src/server.js'
import type { ConfigInput } from '../src/broker/config/config.js'

const secret = 'webhooks-test-secret-0123456789abcdef'
const hookSecret = 'receiver-signing-secret-0123456789'
const token = (sub: string): string => jwt.sign({ sub }, secret, { expiresIn: 600 })
const as = (user: string): { username: string, password: string } => ({ username: '', password: token(user) })
const allEvents = ['client.connected', 'client.disconnected', 'client.subscribed', 'client.unsubscribed', 'presence.online', 'presence.offline', 'session.expired', 'message.published', 'message.dropped']

function brokerConfig (receiver: WebhookReceiver, webhooks: Record<string, unknown> = {}, events = allEvents): ConfigInput {
  return {
    auth: { anonymous: false, jwt: { secret } },
    acl: { roles: { member: { pub: ['chat/#', 'other/#'], sub: ['chat/#', 'other/#'], limits: { maxPayloadSize: 100 } } }, users: { ops: { roles: ['admin'] } }, defaultRoles: ['member'], onLimitExceeded: 'drop' },
    presence: { minUpdateIntervalMs: 0 },
    sessions: { expirySeconds: 1 },
    webhooks: { endpoints: [{ name: 'backend', url: receiver.url, secret: hookSecret, events, topics: ['chat/#'] }], batchDelayMs: 20, retryInitialMs: 50, retryMaxMs: 200, ...webhooks }
  } as ConfigInput
}

const ofType = (events: ReceivedEvent[], type: string): ReceivedEvent[] => events.filter((e) => e.type === type)

async function admin (broker: BrokerHandle, method: string, path: string, body?: string): Promise<{ status: number, body: Record<string, unknown> }> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: broker.addresses.http.port, method, path, headers: { authorization: `Bearer ${token('ops')}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown> }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('every event type reaches the receiver, signed, each with its own id', async (t) => {
  const receiver = await startWebhookReceiver(t)
  const broker = await startBroker(t, brokerConfig(receiver))
  const alice = await connectClient(t, broker, 'tcp', { ...as('alice'), clientId: 'alice-1', clean: false })
  await alice.subscribeAsync('chat/room1', { qos: 1 })
  await alice.publishAsync('chat/room1', 'hello', { qos: 1 })
  await alice.publishAsync('other/topic', 'not wanted', { qos: 1 })
  await alice.publishAsync('chat/room1', Buffer.from([0xff, 0x00]), { qos: 1 })
  await alice.publishAsync('chat/room1', 'x'.repeat(200), { qos: 1 }) // over the role's maxPayloadSize: dropped
  await alice.unsubscribeAsync('chat/room1')
  await alice.endAsync()
  // the session (clean: false) expires a second after its client left
  await waitFor(() => ofType(receiver.accepted(), 'session.expired').length === 1, 'session.expired', 8000)
  await waitFor(() => ofType(receiver.accepted(), 'presence.offline').length === 1, 'presence.offline')

  const events = receiver.accepted()
  const connected = ofType(events, 'client.connected')[0]
  t.match(connected?.data, { clientId: 'alice-1', user: 'alice', transport: 'tcp', protocolVersion: 4 }, 'client.connected')
  t.match(ofType(events, 'client.disconnected')[0]?.data, { clientId: 'alice-1', user: 'alice', reason: 'client' }, 'client.disconnected with its reason')
  t.same(ofType(events, 'client.subscribed')[0]?.data, { clientId: 'alice-1', user: 'alice', subscriptions: [{ topic: 'chat/room1', qos: 1 }] }, 'client.subscribed')
  t.same(ofType(events, 'client.unsubscribed')[0]?.data, { clientId: 'alice-1', user: 'alice', topics: ['chat/room1'] }, 'client.unsubscribed')
  t.match(ofType(events, 'presence.online')[0]?.data, { user: 'alice', online: true, connections: 1 }, 'presence.online')
  t.match(ofType(events, 'presence.offline')[0]?.data, { user: 'alice', online: false, connections: 0 }, 'presence.offline')
  t.same(ofType(events, 'session.expired')[0]?.data, { clientId: 'alice-1' }, 'session.expired')
  const messages = ofType(events, 'message.published').map((e) => e.data)
  t.same(messages, [
    { topic: 'chat/room1', qos: 1, retain: false, clientId: 'alice-1', user: 'alice', payload: 'hello', encoding: 'utf8' },
    { topic: 'chat/room1', qos: 1, retain: false, clientId: 'alice-1', user: 'alice', payload: Buffer.from([0xff, 0x00]).toString('base64'), encoding: 'base64' }
  ], 'message.published: only topics the filters match, binary payloads in base64, the dropped one not')
  t.same(ofType(events, 'message.dropped')[0]?.data, { reason: 'size', count: 1 }, 'message.dropped with its reason')
  t.equal(new Set(events.map((e) => e.id)).size, events.length, 'every event has its own id')
  t.ok(events.every((e) => e.node === broker.nodeId && !Number.isNaN(Date.parse(e.at))), 'node and time on each')

  const now = Math.floor(Date.now() / 1000)
  for (const req of receiver.requests) {
    t.ok(verifySignature(hookSecret, String(req.headers['broker-signature']), req.body, now), 'the signature verifies')
    t.notOk(verifySignature('another-secret-0123456789abcdef', String(req.headers['broker-signature']), req.body, now), 'not with another secret')
    t.notOk(verifySignature(hookSecret, String(req.headers['broker-signature']), req.body.replace('alice', 'mallo'), now), 'not over a changed body')
  }
  t.notOk(verifySignature(hookSecret, String(receiver.requests[0]?.headers['broker-signature']), receiver.requests[0]?.body ?? '', now + 3600), 'a request replayed an hour later is refused')
})

t.test('batches, in order through failures, retried with backoff, no event lost', async (t) => {
  const receiver = await startWebhookReceiver(t)
  const broker = await startBroker(t, brokerConfig(receiver, { batchSize: 50 }, ['message.published']))
  const client = await connectClient(t, broker, 'tcp', as('bob'))
  receiver.status = 503
  for (let i = 0; i < 100; i++) client.publish('chat/seq', String(i), { qos: 0 })
  await waitFor(() => receiver.requests.length >= 3, 'failed attempts')
  await receiver.stop() // down: connection refused
  for (let i = 100; i < 200; i++) client.publish('chat/seq', String(i), { qos: 0 })
  await sleep(300)
  receiver.status = 200
  await receiver.start()
  await waitFor(() => receiver.accepted().length >= 200, 'every event after the receiver came back')
  const payloads = receiver.accepted().map((e) => Number(e.data.payload))
  t.same(payloads, Array.from({ length: 200 }, (_, i) => i), 'each event once, in publish order')
  t.ok(receiver.requests.filter((r) => r.status === 200).every((r) => (JSON.parse(r.body) as { events: unknown[] }).events.length <= 50), 'batches of at most batchSize')
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.match(metrics, /realtime_broker_webhook_events_sent_total\{endpoint="backend",node="[^"]+"\} 200/, 'sent counted')
  t.match(metrics, /realtime_broker_webhook_retries_total\{endpoint="backend",[^}]*\} [1-9]/, 'retries counted')
  t.match(metrics, /realtime_broker_webhook_requests_failed_total\{endpoint="backend",[^}]*\} [1-9]/, 'failures counted')
  t.match(metrics, /realtime_broker_webhook_events_pending\{endpoint="backend",[^}]*\} 0/, 'nothing pending')
})

t.test('a receiver that never answers in time: dead letters, listed and replayed by the admin API', async (t) => {
  const receiver = await startWebhookReceiver(t)
  const broker = await startBroker(t, brokerConfig(receiver, { deadLetterAfterMs: 400, timeoutMs: 100 }, ['message.published']))
  const client = await connectClient(t, broker, 'tcp', as('carol'))
  receiver.delayMs = 300
  for (let i = 0; i < 3; i++) await client.publishAsync('chat/dl', `dead ${i}`, { qos: 1 })
  // past deadLetterAfterMs and one more attempt
  await sleep(1200)
  const list = await admin(broker, 'GET', '/api/v1/admin/webhooks/backend/dead-letters')
  t.equal(list.status, 200)
  const listed = list.body.deadLetters as Array<{ id: string, reason: string, event: ReceivedEvent }>
  t.same(listed.map((d) => d.event.data.payload), ['dead 0', 'dead 1', 'dead 2'], 'the three events are dead letters, in order')
  t.equal(listed[0]?.reason, 'timeout', 'with the last failure')
  t.equal((await admin(broker, 'GET', '/api/v1/admin/webhooks/nope/dead-letters')).status, 404, 'unknown endpoint: 404')

  receiver.delayMs = 0
  const before = receiver.accepted().length
  const replay = await admin(broker, 'POST', '/api/v1/admin/webhooks/backend/dead-letters/replay', JSON.stringify({ ids: [listed[1]?.id] }))
  t.same(replay.body, { endpoint: 'backend', replayed: 1 })
  await waitFor(() => receiver.accepted().length > before && receiver.accepted().some((e) => e.id === listed[1]?.event.id), 'replayed event delivered')
  const rest = await admin(broker, 'POST', '/api/v1/admin/webhooks/backend/dead-letters/replay')
  t.same(rest.body, { endpoint: 'backend', replayed: 2 }, 'no body: the rest')
  await waitFor(() => listed.every((d) => receiver.accepted().some((e) => e.id === d.event.id)), 'every dead letter delivered with its original id')
  t.same((await admin(broker, 'GET', '/api/v1/admin/webhooks/backend/dead-letters')).body.deadLetters, [], 'none left')
})

t.test('no endpoint: no webhook metrics, nothing listened to', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: true } })
  t.equal(broker.aedes.listenerCount('publish'), 0, 'no publish listener')
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.notMatch(metrics, /webhook/, 'no webhook metric')
})
