// Webhooks through the Redis outbox: events survive a receiver that is down, a broker killed
// with SIGKILL (another process delivers them), and any node of two sends for both, in order.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import jwt from 'jsonwebtoken'
import t from 'tap'
import { connectClient, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { spawnBroker } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import { startWebhookReceiver, type ReceivedEvent, type WebhookReceiver } from './helpers/webhook-receiver.js'

const hookSecret = 'receiver-signing-secret-0123456789'
const endpoint = (receiver: WebhookReceiver): Record<string, unknown> => ({ name: 'backend', url: receiver.url, secret: hookSecret, events: ['message.published'], topics: ['orders/#'] })

/** The payloads received, each once (ids dedupe), and how many arrived more than once. */
function deduped (events: ReceivedEvent[]): { payloads: string[], duplicates: number } {
  const seen = new Set<string>()
  const payloads: string[] = []
  for (const event of events) {
    if (seen.has(event.id)) continue
    seen.add(event.id)
    payloads.push(String(event.data.payload))
  }
  return { payloads, duplicates: events.length - seen.size }
}

t.test('receiver down, then back: every event delivered once its id dedupes, in order', async (t) => {
  const redis = await startRedis(t)
  const receiver = await startWebhookReceiver(t)
  const webhooks = { endpoints: [endpoint(receiver)], batchDelayMs: 20, retryInitialMs: 100, retryMaxMs: 400 }
  const [a, b] = [await startBroker(t, { redis: { url: redis.url }, webhooks }), await startBroker(t, { redis: { url: redis.url }, webhooks })]
  await receiver.stop()
  const pa = await connectClient(t, a!, 'tcp')
  const pb = await connectClient(t, b!, 'tcp')
  for (let i = 0; i < 300; i++) {
    // one topic per publisher: order is kept per topic
    await (i % 2 === 0 ? pa.publishAsync('orders/a', `a${i}`, { qos: 1 }) : pb.publishAsync('orders/b', `b${i}`, { qos: 1 }))
  }
  // down 3 s (the 30 s scaled down: the retries cap at retryMaxMs either way)
  await sleep(3000)
  await receiver.start()
  await waitFor(() => deduped(receiver.accepted()).payloads.length === 300, 'all 300 events', 15_000)
  const { payloads } = deduped(receiver.accepted())
  t.same(payloads.filter((p) => p.startsWith('a')), Array.from({ length: 150 }, (_, i) => `a${2 * i}`), 'node A\'s topic in order')
  t.same(payloads.filter((p) => p.startsWith('b')), Array.from({ length: 150 }, (_, i) => `b${2 * i + 1}`), 'node B\'s topic in order')
  const nodes = new Set(receiver.accepted().map((e) => e.node))
  t.equal(nodes.size, 2, 'events of both nodes, through one outbox')
})

t.test('a broker killed with SIGKILL: its pending events are delivered by the next process', async (t) => {
  const redis = await startRedis(t)
  const receiver = await startWebhookReceiver(t)
  receiver.status = 503
  const dir = mkdtempSync(join(tmpdir(), 'rb-webhooks-'))
  writeFileSync(join(dir, 'node.yaml'), JSON.stringify({
    auth: { anonymous: true },
    cluster: { heartbeatIntervalMs: 300 },
    presence: { heartbeatMs: 300, nodeTimeoutMs: 900 },
    webhooks: { endpoints: [endpoint(receiver)], batchDelayMs: 20, batchSize: 20, retryInitialMs: 100, retryMaxMs: 300, timeoutMs: 500 }
  }))
  const first = await spawnBroker(t, ['--config', join(dir, 'node.yaml'), '--redis', redis.url], { LOG_LEVEL: 'warn' })
  const { client } = await openUrl(t, `mqtt://127.0.0.1:${first.mqttPort}`)
  for (let i = 0; i < 100; i++) await client.publishAsync('orders/x', String(i), { qos: 1 })
  // the first batch was read and is being retried: it is pending in the group, unacknowledged
  await waitFor(() => receiver.requests.length >= 2, 'failing attempts')
  first.child.kill('SIGKILL')
  await first.exited
  receiver.status = 200
  const before = receiver.accepted().length
  t.equal(before, 0, 'nothing was acknowledged before the kill')
  const second = await spawnBroker(t, ['--config', join(dir, 'node.yaml'), '--redis', redis.url], { LOG_LEVEL: 'warn' })
  await waitFor(() => deduped(receiver.accepted()).payloads.length === 100, 'the dead process\'s 100 events', 15_000).catch((err: Error) => {
    throw new Error(`${err.message}; missing ${JSON.stringify(Array.from({ length: 100 }, (_, i) => String(i)).filter((p) => !deduped(receiver.accepted()).payloads.includes(p)))}; requests ${JSON.stringify(receiver.requests.map((r) => [r.status, (JSON.parse(r.body) as { events: ReceivedEvent[] }).events.map((e) => e.data.payload).join(',')]))}; the new process said:\n${second.output()}`)
  })
  t.same(deduped(receiver.accepted()).payloads, Array.from({ length: 100 }, (_, i) => String(i)), 'every event, in order')
})

t.test('Redis dead letters: listed and replayed through any node\'s admin API', async (t) => {
  const redis = await startRedis(t)
  const receiver = await startWebhookReceiver(t)
  receiver.status = 500
  const secret = 'webhooks-cluster-jwt-secret-0123456789'
  const admin = `Bearer ${jwt.sign({ sub: 'ops' }, secret, { expiresIn: 600 })}`
  const config = {
    redis: { url: redis.url },
    auth: { anonymous: true, jwt: { secret } },
    acl: { users: { ops: { roles: ['admin'] } } },
    webhooks: { endpoints: [endpoint(receiver)], batchDelayMs: 20, retryInitialMs: 50, retryMaxMs: 100, deadLetterAfterMs: 300 }
  }
  const a = await startBroker(t, config)
  const b = await startBroker(t, config)
  const client = await connectClient(t, a, 'tcp')
  for (let i = 0; i < 5; i++) await client.publishAsync('orders/dead', `d${i}`, { qos: 1 })
  const list = async (): Promise<Array<{ id: string, reason: string, event: ReceivedEvent }>> => {
    const answer = await fetch(`http://127.0.0.1:${b.addresses.http.port}/api/v1/admin/webhooks/backend/dead-letters`, { headers: { authorization: admin } })
    return ((await answer.json()) as { deadLetters: Array<{ id: string, reason: string, event: ReceivedEvent }> }).deadLetters
  }
  const deadline = Date.now() + 10_000
  let dead = await list()
  while (dead.length < 5 && Date.now() < deadline) {
    await sleep(100)
    dead = await list()
  }
  t.same(dead.map((d) => d.event.data.payload), ['d0', 'd1', 'd2', 'd3', 'd4'], 'the five events are dead letters in the Redis stream, listed by the other node')
  t.equal(dead[0]?.reason, 'HTTP 500', 'with the last failure')
  const metrics = await Promise.all([a, b].map(async (node) => await (await fetch(`http://127.0.0.1:${node.addresses.http.port}/metrics`)).text()))
  t.ok(metrics.some((text) => /realtime_broker_webhook_events_dead_lettered_total\{endpoint="backend",[^}]*\} 5/.test(text)), 'dead letters counted by the node that sent them')

  receiver.status = 200
  const replay = await fetch(`http://127.0.0.1:${a.addresses.http.port}/api/v1/admin/webhooks/backend/dead-letters/replay`, { method: 'POST', headers: { authorization: admin } })
  t.same(await replay.json(), { endpoint: 'backend', replayed: 5 })
  await waitFor(() => deduped(receiver.accepted()).payloads.length === 5, 'replayed events delivered')
  t.same(deduped(receiver.accepted()).payloads, ['d0', 'd1', 'd2', 'd3', 'd4'], 'in order, with their ids')
  t.ok(dead.every((d) => receiver.accepted().some((e) => e.id === d.event.id)), 'the original event ids')
  t.same(await list(), [], 'none left')
})
