// The proof at its own scale: a receiver down for 30 s while messages keep coming, then
// back. Through the Redis outbox (two nodes) and the memory outbox (one embedded node) at
// once: zero events lost, each event's id the same on every copy (the receiver dedupes by it),
// per topic in publish order, and the backlog back to 0. Its own file: its 30 s run beside the
// other test files.
import t from 'tap'
import { connectClient, sleep, startBroker, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'
import { startWebhookReceiver, type ReceivedEvent, type WebhookReceiver } from './helpers/webhook-receiver.js'
import type { BrokerHandle } from '../src/server.js'

const hookSecret = 'receiver-signing-secret-0123456789'
const outageMs = 30_000
// the retries back off up to 5 s: the receiver is found again within 5 s of coming back
const webhooks = (receiver: WebhookReceiver): Record<string, unknown> => ({
  endpoints: [{ name: 'backend', url: receiver.url, secret: hookSecret, events: ['message.published'], topics: ['orders/#'] }],
  batchDelayMs: 20,
  batchSize: 50,
  retryInitialMs: 200,
  retryMaxMs: 5000,
  timeoutMs: 1000
})

interface Delivered {
  /** Payloads in arrival order, each event once (the first copy of its id). */
  payloads: string[]
  duplicates: number
  /** Ids that arrived with two different payloads: would break the receiver's dedupe. */
  conflicting: number
}

function dedupe (events: ReceivedEvent[]): Delivered {
  const byId = new Map<string, string>()
  const payloads: string[] = []
  let conflicting = 0
  for (const event of events) {
    const payload = String(event.data.payload)
    const seen = byId.get(event.id)
    if (seen !== undefined) {
      if (seen !== payload) conflicting++
      continue
    }
    byId.set(event.id, payload)
    payloads.push(payload)
  }
  return { payloads, duplicates: events.length - byId.size, conflicting }
}

const pending = async (broker: BrokerHandle): Promise<number> => {
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  return Number(/realtime_broker_webhook_events_pending\{endpoint="backend",[^}]*\} (\d+)/.exec(metrics)?.[1] ?? NaN)
}

t.test('receiver down for 30 s, then back: zero events lost, ids dedupe, per topic in order (Redis, two nodes; memory)', async (t) => {
  const redis = await startRedis(t)
  const clustered = await startWebhookReceiver(t)
  const embedded = await startWebhookReceiver(t)
  const [a, b] = [await startBroker(t, { redis: { url: redis.url }, webhooks: webhooks(clustered) }), await startBroker(t, { redis: { url: redis.url }, webhooks: webhooks(clustered) })] as [BrokerHandle, BrokerHandle]
  const alone = await startBroker(t, { webhooks: webhooks(embedded) })
  const publishers = [await connectClient(t, a, 'tcp'), await connectClient(t, b, 'tcp'), await connectClient(t, alone, 'tcp')]
  const topics = ['orders/a', 'orders/b', 'orders/m']
  const published: string[][] = [[], [], []]
  const publishRound = async (round: number): Promise<void> => {
    await Promise.all(publishers.map(async (client, at) => {
      const payload = `${round}`
      published[at]?.push(payload)
      await client.publishAsync(topics[at] as string, payload, { qos: 1 })
    }))
  }

  // a few events delivered before the outage
  for (let round = 0; round < 10; round++) await publishRound(round)
  await waitFor(() => dedupe(clustered.accepted()).payloads.length === 20 && dedupe(embedded.accepted()).payloads.length === 10, 'the events before the outage')
  await Promise.all([clustered.stop(), embedded.stop()])
  // messages keep coming during the outage: 10 rounds a second for 30 s
  const downSince = Date.now()
  for (let round = 10; Date.now() - downSince < outageMs; round++) {
    await publishRound(round)
    await sleep(100)
  }
  const backlog = await Promise.all([a, alone].map(pending))
  await Promise.all([clustered.start(), embedded.start()])
  const total = published[0]?.length ?? 0
  t.ok(total > 200, `${total} rounds published`)
  t.ok((backlog[0] ?? 0) > 2 * (total - 10) * 0.9 && (backlog[1] ?? 0) > (total - 10) * 0.9, `the outage's events waited in the outboxes (Redis ${backlog[0] ?? 0}, memory ${backlog[1] ?? 0})`)

  await waitFor(() => dedupe(clustered.accepted()).payloads.length >= 2 * total && dedupe(embedded.accepted()).payloads.length >= total, 'every event after the receivers came back', 15_000)
  const fromCluster = dedupe(clustered.accepted())
  const fromEmbedded = dedupe(embedded.accepted())
  const ofTopic = (events: ReceivedEvent[], topic: string): string[] => dedupe(events.filter((e) => e.data.topic === topic)).payloads
  t.same(ofTopic(clustered.accepted(), 'orders/a'), published[0], 'node A\'s topic: every event once, in publish order')
  t.same(ofTopic(clustered.accepted(), 'orders/b'), published[1], 'node B\'s topic: every event once, in publish order')
  t.same(ofTopic(embedded.accepted(), 'orders/m'), published[2], 'the embedded node\'s topic: every event once, in publish order')
  t.equal(fromCluster.payloads.length, 2 * total, 'nothing else arrived (Redis)')
  t.equal(fromEmbedded.payloads.length, total, 'nothing else arrived (memory)')
  t.equal(fromCluster.conflicting + fromEmbedded.conflicting, 0, 'a copy of an event carries its id: dedupe by id is exact')
  t.comment(`duplicates (at least once): Redis ${fromCluster.duplicates}, memory ${fromEmbedded.duplicates}`)
  const drained = Date.now() + 5000
  let left = await Promise.all([a, b, alone].map(pending))
  while (left.some((n) => n !== 0) && Date.now() < drained) {
    await sleep(200)
    left = await Promise.all([a, b, alone].map(pending))
  }
  t.same(left, [0, 0, 0], 'no backlog left on any node')
})
