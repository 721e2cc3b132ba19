// A persistent session that subscribes, or resumes, on a node without a route for its filter,
// while another node publishes: the messages that node stores for the session before the new
// route reaches it, and routes elsewhere, must still arrive on this connection (docs/cluster.md,
// "A new route and a persistent session"). The publishing node applies route changes late (a
// test-only setting), so that the window holds hundreds of messages: 1.5 s, past the catch-up's
// hold bound (1 s), or 400 ms, within it.
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { metricValue, openUrl, sleep, waitFor } from './helpers/broker.js'
import type { BrokerProcess } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import { startRedisCluster } from './helpers/redis-cluster.js'
import { url, inTimeRouteMs, nodes, publishStream, record, resumeUnderStream, checkStream, checkStrictStream } from './helpers/route-gap.js'

t.setTimeout(120_000)

// On a Redis Cluster a sync and the route changes before it may travel through different nodes,
// and each message's copy is stored on its slot's master (the queue keeps the order published
// all the same: docs/cluster.md).
const setups = [{ on: '', start: startRedis }, { on: ' (Redis Cluster)', start: startRedisCluster }]
for (const { on, start } of setups) {
  t.test(`a persistent session resumed on a node without its route gets every message stored for it, on this connection, in order${on}`, async (t) => {
    const { acked, log } = await resumeUnderStream(t, await nodes(t, start), 'gap-resume', 'gap/resume')
    checkStream(t, acked, log)
  })
}

t.test('a resumed session that subscribes again right after its CONNACK still gets every message once, in order (the last catch-up releases)', async (t) => {
  const { acked, log } = await resumeUnderStream(t, await nodes(t), 'gap-resubscribe', 'gap/resubscribe', true)
  checkStream(t, acked, log)
})

t.test('a live node that never acknowledges (an earlier release) holds the deliveries for the hold bound, and delays the last read by the node timeout, not for ever', async (t) => {
  const cluster = await nodes(t)
  const { redisUrl, subscribing } = cluster
  // beats into the node registry as a node would, and runs no emitter
  const redis = new Redis(redisUrl)
  t.teardown(() => redis.disconnect())
  const beat = async (): Promise<void> => { await redis.zadd('cluster:nodes', Date.now(), 'gap-silent') }
  await beat()
  const beating = setInterval(() => { beat().catch(() => {}) }, 300)
  t.teardown(() => clearInterval(beating))
  const { acked, log } = await resumeUnderStream(t, cluster, 'gap-silent-sub', 'gap/silent')
  checkStream(t, acked, log)
  t.match(subscribing.output(), /"event":"cluster.route-unacknowledged".*gap-silent/, 'the node that did not answer is logged')
})

/**
 * A persistent session subscribes to `topic`/# on the subscribing node while the publishing node
 * sends 1,500 numbered messages: those whose PUBLISH started after the SUBACK (each is queued for
 * the session), and what the session got.
 */
async function subscribeUnderStream (t: Test, { publishing, subscribing }: Awaited<ReturnType<typeof nodes>>, clientId: string, topic: string): Promise<{ expected: Set<number>, log: ReturnType<typeof record> }> {
  const { client: sub } = await openUrl(t, url(subscribing), { clientId, clean: false })
  const log = record(sub)
  const { client: pub } = await openUrl(t, url(publishing))
  let subscribed = false
  const expected = new Set<number>()
  let subscription: Promise<unknown> | null = null
  await publishStream(pub, `${topic}/n`, 1500, (n) => {
    if (n >= 200 && subscription === null) subscription = sub.subscribeAsync(`${topic}/#`, { qos: 1 }).then(() => { subscribed = true })
  }, (n) => { if (subscribed) expected.add(n) })
  await subscription
  t.ok(expected.size > 1000, `${expected.size} messages published after the SUBACK`)
  await waitFor(() => [...expected].every((n) => log.received.includes(n)), 'every message published after the SUBACK', 10_000).catch(() => {})
  // a live copy of a message the second read sent may arrive late: give it time to show up twice
  await sleep(1000)
  return { expected, log }
}

t.test('a persistent session subscribing on a node without the route gets every message published after its SUBACK, on this connection, in order', async (t) => {
  const cluster = await nodes(t)
  const { expected, log } = await subscribeUnderStream(t, cluster, 'gap-subscribe', 'gap/subscribe')
  checkStream(t, expected, log)
  t.ok(await catchUps(cluster.subscribing, 'bound') > 0, 'the catch-up read the queue at the hold bound (route_catch_ups_total{outcome="bound"})')
  t.match(cluster.publishing.output(), /"event":"config.test-only".*testOnly.routeChangeDelayMs/, 'the node with the test-only delay warns at start')
  t.notMatch(cluster.subscribing.output(), /"event":"config.test-only"/, 'the node without it does not')
})

// Every node answers within the hold bound (the route reaches the publishing node 400 ms late,
// the gap still holds about 150 messages): no straggler, the stream strictly in order.
/** The subscribing node's route catch-ups by outcome (realtime_broker_route_catch_ups_total). */
async function catchUps (node: BrokerProcess, outcome: 'in_time' | 'bound'): Promise<number> {
  return metricValue(await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text(), 'realtime_broker_route_catch_ups_total', { outcome })
}

/** The in-time path was taken: every catch-up read the queue once every node had answered. */
async function checkInTime (t: Test, subscribing: BrokerProcess): Promise<void> {
  t.ok(await catchUps(subscribing, 'in_time') > 0, 'a catch-up ran with every node answering in time')
  t.equal(await catchUps(subscribing, 'bound'), 0, 'none at the hold bound')
}

t.test('every node answering within the hold: a session resumed under a stream gets every message once, strictly in order', async (t) => {
  const cluster = await nodes(t, startRedis, inTimeRouteMs)
  const { acked, log } = await resumeUnderStream(t, cluster, 'gap-resume-in-time', 'gap/resume-in-time')
  checkStrictStream(t, acked, log)
  await checkInTime(t, cluster.subscribing)
})

t.test('every node answering within the hold: a session subscribing under a stream gets every message published after its SUBACK once, strictly in order', async (t) => {
  const cluster = await nodes(t, startRedis, inTimeRouteMs)
  const { expected, log } = await subscribeUnderStream(t, cluster, 'gap-subscribe-in-time', 'gap/subscribe-in-time')
  checkStrictStream(t, expected, log)
  await checkInTime(t, cluster.subscribing)
})

// A subscriber under a catch-up that stops reading, or reads slower than its stream, with a
// small output cap: what the catch-up holds and then sends must stay within the cap, and the
// session must not be held for ever: its connection is cut as a slow consumer (the output cap's
// reason and log), and what it was not sent comes on its next connection. The messages are
// published on the subscriber's own node, so they arrive live at once and are held while the
// other node answers late (past the 1 s bound).
