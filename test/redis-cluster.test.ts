// Broker nodes on a real Redis Cluster (3 masters, 3 replicas): a master failover under a QoS 1
// stream loses no acknowledged message, and every key the broker writes is placed as
// docs/cluster.md's key map says, so no multi-key operation spans slots.
import t from 'tap'
import { collect, openUrl, sleep, waitFor, within } from './helpers/broker.js'
import { spawnBroker, type BrokerProcess } from './helpers/process.js'
import { inspectRedis, startRedisCluster } from './helpers/redis-cluster.js'

const url = (node: BrokerProcess): string => `mqtt://127.0.0.1:${node.mqttPort}`

// A publish left unacknowledged fails its test with what the nodes logged, not at tap's timeout
// (a clean-clone CI run under load once waited 120 s for one after the last failover).
const acknowledgement = async (publish: Promise<unknown>, topic: string, nodes: BrokerProcess[]): Promise<void> => {
  await within(publish, 30_000, () => `${topic} unacknowledged after 30 s; the nodes logged:\n${nodes.map((node) => node.output().slice(-3000)).join('\n---\n')}`)
}

t.test('Redis Cluster: every master fails over under a QoS 1 stream between two nodes, no acknowledged message lost', async (t) => {
  const cluster = await startRedisCluster(t)
  // with a key prefix, which goes before the hash tags
  const [a, b] = await Promise.all(['fo-a', 'fo-b'].map((id) => spawnBroker(t, ['--redis', cluster.url], { NODE_ID: id, LOG_LEVEL: 'warn', REDIS_KEY_PREFIX: 'rb:' }))) as [BrokerProcess, BrokerProcess]
  // both reconnect, as devices do: a node the others retired under load closes its clients,
  // which resume their sessions; MQTT.js then sends its unacknowledged publish again
  const { client: sub } = await openUrl(t, url(b), { clientId: 'fo-sub', clean: false, reconnectPeriod: 250 })
  await sub.subscribeAsync('fo/#', { qos: 1 })
  const got = collect(sub)
  const { client: pub } = await openUrl(t, url(a), { clientId: 'fo-pub', clean: false, reconnectPeriod: 250 })
  // a retained message and a will: the retained store, its quota and the wills on the Cluster too
  await pub.publishAsync('fo/retained', 'kept', { qos: 1, retain: true })
  await sleep(300) // the subscription reaches node A

  const acknowledged: number[] = []
  let publishing = true
  const stream = (async () => {
    for (let i = 0; publishing; i++) {
      await acknowledgement(pub.publishAsync(`fo/${i}`, String(i), { qos: 1 }), `fo/${i}`, [a, b])
      acknowledged.push(i)
    }
  })()
  // the master of node B's inbox first: the hand-off between the nodes moves under way
  const inboxMaster = await cluster.masterOf('inbox:{fo-b}')
  const masters = (await cluster.nodes()).filter((node) => node.role === 'master').map((node) => node.port)
  for (const port of [inboxMaster.port, ...masters.filter((port) => port !== inboxMaster.port)]) {
    await sleep(300)
    const promoted = await cluster.failover(port)
    t.not(promoted.port, port, `the master on ${port} handed over to its replica on ${promoted.port}`)
  }
  t.not((await cluster.masterOf('inbox:{fo-b}')).port, inboxMaster.port, 'node B\'s inbox is on another master now')
  await sleep(300)
  publishing = false
  await stream

  const numbers = (): Set<number> => new Set(got.filter((m) => m.topic !== 'fo/retained').map((m) => Number(m.payload)))
  await waitFor(() => acknowledged.every((i) => numbers().has(i)), 'every acknowledged message at the subscriber', 15_000)
  const received = got.filter((m) => m.topic !== 'fo/retained').length
  t.ok(acknowledged.length > 20, `messages flowed through the failovers (${acknowledged.length} acknowledged)`)
  t.equal(acknowledged.filter((i) => !numbers().has(i)).length, 0, 'no acknowledged message lost')
  t.comment(`${acknowledged.length} acknowledged, ${received - numbers().size} duplicates (QoS 1 allows them)`)
  const logged = (event: string): number => [a, b].reduce((n, node) => n + node.output().split(`"event":"${event}"`).length - 1, 0)
  t.comment(`nodes retired (their heartbeat entry gone): ${logged('cluster.retired')}`)

  // a message published after the failovers still crosses the nodes
  await acknowledgement(pub.publishAsync('fo/after', 'after', { qos: 1 }), 'fo/after', [a, b])
  await waitFor(() => got.some((m) => m.topic === 'fo/after'), 'a message after the failovers')

  t.test('every key is hash-tagged as docs/cluster.md says; no cross-slot command was refused', async (t) => {
    const { keysMatching } = inspectRedis(t, cluster.url)
    const all = await keysMatching('*')
    t.same(all.filter((key) => !key.startsWith('rb:')), [], 'every key carries the prefix')
    const keys = all.map((key) => key.slice('rb:'.length))
    // aedes-persistence-redis' keys are single-key operations only (our patch): they need no tag
    const persistence = /^(clients|client:|outgoing:|outgoing-id:|incoming:|packet:|retained$|will$|will:)/
    const untagged = keys.filter((key) => !persistence.test(key) && !/\{[^}]+\}/.test(key))
    t.same(untagged, [], 'the broker\'s own keys all carry a hash tag')
    for (const expected of ['{cluster}:nodes', 'routes:{fo-a}', 'routes:{fo-b}', 'inbox:{fo-b}', '{sessions}:online', '{retained-quota}:topics']) {
      t.ok(keys.includes(expected), `${expected} is there`)
    }
    for (const node of [a, b]) t.notMatch(node.output(), /CROSSSLOT|cross.?slot|All keys in the pipeline/i, 'no cross-slot refusal logged')
  })
})

// last in the file: the cluster keeps a master without a replica after it
t.test('Redis Cluster: a master killed with SIGKILL under a QoS 1 stream: publishes wait for the election, no acknowledged message lost', async (t) => {
  const cluster = await startRedisCluster(t)
  const [a, b] = await Promise.all(['kill-a', 'kill-b'].map((id) => spawnBroker(t, ['--redis', cluster.url], { NODE_ID: id, LOG_LEVEL: 'warn' }))) as [BrokerProcess, BrokerProcess]
  // reconnecting, as in the failover test above
  const { client: sub } = await openUrl(t, url(b), { clientId: 'kill-sub', clean: false, reconnectPeriod: 250 })
  await sub.subscribeAsync('kill/#', { qos: 1 })
  const got = collect(sub)
  const { client: pub } = await openUrl(t, url(a), { clientId: 'kill-pub', clean: false, reconnectPeriod: 250 })
  await sleep(300)
  const acknowledged: number[] = []
  let publishing = true
  const stream = (async () => {
    for (let i = 0; publishing; i++) {
      await acknowledgement(pub.publishAsync(`kill/${i}`, String(i), { qos: 1 }), `kill/${i}`, [a, b])
      acknowledged.push(i)
    }
  })()
  await sleep(300)
  // the master of node B's inbox: every hand-off to node B waits for its replica's election
  const master = await cluster.masterOf('inbox:{kill-b}')
  const killedAt = Date.now()
  const before = acknowledged.length
  await cluster.kill(master.port)
  await waitFor(() => acknowledged.length > before + 20, 'publishes acknowledged again', 30_000)
  t.comment(`publishes acknowledged again ${Date.now() - killedAt} ms after the kill (cluster-node-timeout 2000 ms, then the election)`)
  await sleep(300)
  publishing = false
  await stream
  const missing = (): number[] => {
    const received = new Set(got.map((m) => Number(m.payload)))
    return acknowledged.filter((i) => !received.has(i))
  }
  await waitFor(() => missing().length === 0, 'every acknowledged message at the subscriber', 15_000).catch(() => {})
  t.same(missing(), [], `no acknowledged message lost (${acknowledged.length} acknowledged)`)
  t.equal(a.child.exitCode, null, 'node A kept running')
  t.equal(b.child.exitCode, null, 'node B kept running')
})
