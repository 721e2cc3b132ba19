// A node restarted with the same id (`nodeId`, e.g. a StatefulSet's pod name) numbers its
// messages anew: Aedes keys a stored message by its broker's id and counter, so a counter
// starting again at 0 would overwrite the messages the node stored before it went down that
// offline sessions still have queued.
import t from 'tap'
import { closeClient, collect, openUrl, sleep, waitFor } from './helpers/broker.js'
import { spawnBroker, type BrokerProcess } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import type { Teardown } from './helpers/loopback.js'

type T = Teardown & { testdir: (fixture: Record<string, string>) => string }
const url = (node: BrokerProcess): string => `mqtt://127.0.0.1:${node.mqttPort}`

async function node (t: T, redisUrl: string): Promise<BrokerProcess> {
  const dir = t.testdir({ 'node.yaml': 'auth:\n  anonymous: true\n' })
  return await spawnBroker(t, ['--config', `${dir}/node.yaml`, '--redis', redisUrl], { NODE_ID: 'stable-node', LOG_LEVEL: 'warn' })
}

async function publish (node: BrokerProcess, payloads: string[]): Promise<void> {
  const { client } = await openUrl(t, url(node), { clientId: 'publisher' })
  for (const payload of payloads) await client.publishAsync('feed/a', payload, { qos: 1 })
  await closeClient(client, false)
}

t.test('messages queued for an offline session before a restart with the same node id are not overwritten by new ones', async (t) => {
  const redis = await startRedis(t)
  const first = await node(t, redis.url)
  const { client: subscriber } = await openUrl(t, url(first), { clientId: 'reader', clean: false })
  await subscriber.subscribeAsync('feed/#', { qos: 1 })
  await closeClient(subscriber, false)
  const before = Array.from({ length: 5 }, (_, i) => `before ${i}`)
  await publish(first, before)
  first.child.kill('SIGKILL')
  await first.exited

  const again = await node(t, redis.url)
  const after = Array.from({ length: 30 }, (_, i) => `after ${i}`)
  await publish(again, after)
  let received: ReturnType<typeof collect> = []
  const { client: resumed } = await openUrl(t, url(again), { clientId: 'reader', clean: false }, (client) => { received = collect(client) })
  await waitFor(() => received.length >= before.length + after.length, 'the queued messages', 10_000)
  // a message sent twice (or one overwritten and another sent in its place) would come late
  await sleep(300)
  t.same(received.map(({ payload }) => payload), [...before, ...after], 'every message once, in order')
  await closeClient(resumed)
})
