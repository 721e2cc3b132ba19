// A node's link to Redis fails for 10 s under a numbered QoS 1 stream: cut (the connection is
// closed, as when Redis restarts) or blackholed (a silent partition: no close, no RST, nothing
// answered). Every acknowledged message must reach the persistent subscriber on the other node,
// and the node must say it is not ready while it cannot reach Redis.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { openUrl, sleep, waitFor } from './helpers/broker.js'
import { spawnBroker, type BrokerProcess } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import { startTcpProxy } from './helpers/tcp-proxy.js'
import type { Teardown } from './helpers/loopback.js'

// five faults of 6 to 10 s each, with their catch-up: about 110 s on a quiet machine, over .taprc's 120 s on a loaded one
t.setTimeout(300_000)

const url = (node: BrokerProcess): string => `mqtt://127.0.0.1:${node.mqttPort}`

interface Scenario {
  fault: 'cut' | 'blackhole'
  /** Whose Redis link fails: the publisher's node or the subscriber's. */
  side: 'publisher' | 'subscriber'
  ms: number
  /**
   * cluster.heartbeatIntervalMs, when shorter than the default: the other nodes retire a node
   * silent for three beats, so a fault longer than that is one the cluster takes for a death.
   */
  heartbeatMs?: number
}

const scenarios: Scenario[] = [
  { fault: 'blackhole', side: 'subscriber', ms: 10_000 },
  { fault: 'blackhole', side: 'publisher', ms: 10_000 },
  // test/routing.test.ts cuts the subscriber's node for 5 s; this is the 10 s outage
  { fault: 'cut', side: 'publisher', ms: 10_000 },
  // longer than the node timeout (3 s here): the subscriber's node is retired, its clients
  // reconnect once it is back and resume their sessions
  { fault: 'blackhole', side: 'subscriber', ms: 6_000, heartbeatMs: 1_000 }
]

function writeConfig (t: Teardown, yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'rb-partition-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'node.yaml')
  writeFileSync(file, yaml)
  return file
}

async function readyStatus (node: BrokerProcess): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${node.httpPort}/readyz`, { signal: AbortSignal.timeout(1000) })).status
  } catch {
    return -1
  }
}

for (const { fault, side, ms, heartbeatMs } of scenarios) {
  const retired = heartbeatMs !== undefined
  t.test(`${fault} of the ${side}'s node's Redis link for ${ms / 1000} s${retired ? ', beyond the node timeout' : ''}: every acknowledged QoS 1 message arrives; /readyz says not ready`, async (t) => {
    const redis = await startRedis(t)
    const proxy = await startTcpProxy(t, redis.port)
    const viaProxy = `redis://127.0.0.1:${proxy.port}`
    const tag = `${fault[0] ?? 'x'}${side[0] ?? 'x'}${retired ? 'r' : ''}`
    const config = retired ? ['--config', writeConfig(t, `auth: { anonymous: true }\ncluster: { heartbeatIntervalMs: ${heartbeatMs} }\n`)] : []
    // node a hosts the publisher, node b the subscriber; one of them reaches Redis through the proxy
    const [a, b] = await Promise.all([
      spawnBroker(t, [...config, '--redis', side === 'publisher' ? viaProxy : redis.url], { NODE_ID: `${tag}-a`, LOG_LEVEL: 'warn' }),
      spawnBroker(t, [...config, '--redis', side === 'subscriber' ? viaProxy : redis.url], { NODE_ID: `${tag}-b`, LOG_LEVEL: 'warn' })
    ])
    const partitioned = side === 'publisher' ? a : b

    const got = new Set<number>()
    // a retired node closes its clients: this one reconnects, as devices do, and resumes its session
    const { client: sub } = await openUrl(t, url(b), { clientId: `${tag}-sub`, clean: false, ...(retired ? { reconnectPeriod: 500 } : {}) })
    sub.on('message', (_topic, payload) => got.add(Number(payload.toString())))
    await sub.subscribeAsync('part/#', { qos: 1 })
    const { client: pub } = await openUrl(t, url(a), { clientId: `${tag}-pub` })
    // the subscription's route has reached node a once a probe arrives
    await waitFor(() => got.has(-1), 'the route to node b', 10_000).catch(() => {})
    const probe = setInterval(() => { if (!got.has(-1)) pub.publish('part/n', '-1', { qos: 1 }) }, 100)
    await waitFor(() => got.has(-1), 'the route to node b', 10_000)
    clearInterval(probe)
    got.delete(-1)

    // a stream of numbered QoS 1 messages, up to 20 in flight
    const acked = new Set<number>()
    let sent = 0
    let inFlight = 0
    let streaming = true
    const stream = (async () => {
      while (streaming) {
        if (inFlight >= 20) {
          await sleep(5)
          continue
        }
        const i = sent++
        inFlight++
        pub.publish('part/n', String(i), { qos: 1 }, (err) => {
          inFlight--
          if (err === undefined || err === null) acked.add(i)
        })
        await sleep(2)
      }
    })()

    // /readyz of the partitioned node, sampled throughout
    const samples: Array<{ at: number, status: number }> = []
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const at = Date.now()
        samples.push({ at, status: await readyStatus(partitioned) })
        await sleep(250)
      }
    })()

    await sleep(1000)
    const ackedBefore = acked.size
    const faultAt = Date.now()
    if (fault === 'cut') proxy.cut()
    else proxy.blackhole()
    await sleep(1000)
    // from 1 s in: what the fault lets through (nothing, for a fault that is real)
    const ackedAt1s = acked.size
    const gotAt1s = got.size
    await sleep(ms - 1000)
    const restoredAt = Date.now()
    const ackedDuring = acked.size
    const gotDuring = got.size
    proxy.restore()
    await sleep(3000)
    streaming = false
    await stream
    await waitFor(() => inFlight === 0, 'the last acknowledgements', 20_000).catch(() => {})
    await waitFor(() => [...acked].every((i) => got.has(i)), 'every acknowledged message at the subscriber', 20_000).catch(() => {})
    const caughtUpAfter = Date.now() - restoredAt
    await waitFor(() => samples.at(-1)?.status === 200, 'ready again', 15_000).catch(() => {})
    sampling = false
    await sampler

    const missing = [...acked].filter((i) => !got.has(i))
    t.ok(ackedBefore > 50, `${ackedBefore} messages acknowledged before the fault`)
    // the fault is real: the publisher's node cannot hand a message to node b through Redis, so it
    // acknowledges nothing; the subscriber's node cannot read its inbox, so it delivers nothing
    if (side === 'publisher') t.equal(ackedDuring - ackedAt1s, 0, 'no publish was acknowledged during the fault')
    else t.equal(gotDuring - gotAt1s, 0, 'nothing was delivered during the fault')
    t.ok(acked.size > ackedDuring, `${acked.size - ackedDuring} acknowledged after restore, ${sent - acked.size} never acknowledged`)
    t.same(missing.slice(0, 20), [], `the subscriber missed none of the ${acked.size} acknowledged messages (missing: ${missing.length}; caught up ${caughtUpAfter} ms after restore)`)
    t.equal(inFlight, 0, 'every publish in flight was answered after restore')

    // not ready while Redis is unreachable: allow the node 5 s to notice
    const during = samples.filter((s) => s.at >= faultAt + 5000 && s.at < restoredAt)
    const notReady = during.filter((s) => s.status === 503).length
    t.ok(during.length > 0 && notReady > 0, `/readyz said not ready during the ${fault} (${notReady} of ${during.length} samples 503 between 5 s in and the restore)`)
    t.equal(samples.at(-1)?.status, 200, '/readyz is 200 again after restore')
    t.equal(a.child.exitCode, null, 'node a kept running')
    t.equal(b.child.exitCode, null, 'node b kept running')
    if (retired) t.match(partitioned.output(), /cluster\.retired/, 'the retired node closed its clients once it was back')
    if (missing.length > 0 || notReady === 0) t.comment(`partitioned node output:\n${partitioned.output().slice(-3000)}`)
  })
}
