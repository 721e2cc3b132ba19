// The wills a node keeps in Redis for the other nodes: a CONNECT replaces or removes the
// stored will of its client id, so a will a client no longer has never fires.
import t from 'tap'
import { closeClient, collect, openUrl, sleep, waitFor } from './helpers/broker.js'
import { spawnBroker, type BrokerProcess } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import type { Teardown } from './helpers/loopback.js'

type T = Teardown & { testdir: (fixture: Record<string, string>) => string }
const url = (node: BrokerProcess): string => `mqtt://127.0.0.1:${node.mqttPort}`
const will = (payload: string): { topic: string, payload: Buffer, qos: 1, retain: false } => ({ topic: 'status/dev', payload: Buffer.from(payload), qos: 1, retain: false })

async function node (t: T, redisUrl: string, id: string): Promise<BrokerProcess> {
  const dir = t.testdir({ 'node.yaml': 'auth:\n  anonymous: true\ncluster:\n  heartbeatIntervalMs: 500\n' })
  return await spawnBroker(t, ['--config', `${dir}/node.yaml`, '--redis', redisUrl], { NODE_ID: id, LOG_LEVEL: 'warn' })
}

async function crash (node: BrokerProcess): Promise<void> {
  node.child.kill('SIGKILL')
  await node.exited
}

t.test('a will left by a crashed node is replaced or removed when its client connects again to that node', async (t) => {
  const redis = await startRedis(t)
  // a node with a stable id (`nodeId`) crashes while two clients with wills are connected
  const first = await node(t, redis.url, 'will-node')
  await openUrl(t, url(first), { clientId: 'dev-a', will: will('a: first will') })
  await openUrl(t, url(first), { clientId: 'dev-b', will: will('b: first will') })
  await crash(first)
  // it is back (same id) before any other node fired its wills; dev-a comes back without a
  // will and leaves cleanly, dev-b comes back with a new will and stays
  const again = await node(t, redis.url, 'will-node')
  const { client: a } = await openUrl(t, url(again), { clientId: 'dev-a' })
  await closeClient(a, false)
  await openUrl(t, url(again), { clientId: 'dev-b', will: will('b: second will') })

  // another node watches, and fires the wills of the node when it dies again
  const survivor = await node(t, redis.url, 'will-survivor')
  const { client: watcher } = await openUrl(t, url(survivor))
  await watcher.subscribeAsync('status/#', { qos: 1 })
  const got = collect(watcher)
  await sleep(300)
  await crash(again)
  await waitFor(() => got.length >= 1, 'the will of dev-b', 15_000)
  await sleep(3000) // a will the survivor still held would fire in the same sweep
  t.same(got.map((m) => m.payload), ['b: second will'], 'only the will dev-b holds now; dev-a has none')
})
