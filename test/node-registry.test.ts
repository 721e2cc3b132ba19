// The node registry (src/broker/cluster/node-registry.ts): one definition of a live node. The
// admin API lists the live nodes of the cluster; a node killed with SIGKILL is handled by
// exactly one survivor (its routes, sessions and users), and drops out of every node's list;
// a node whose entry is gone (claimed, or lost by Redis) rejoins.
import { Redis } from 'ioredis'
import jwt from 'jsonwebtoken'
import { pino } from 'pino'
import t from 'tap'
import { NodeRegistry } from '../src/broker/cluster/node-registry.js'
import { RedisKeys } from '../src/broker/storage/redis-keys.js'
import { startBroker, waitFor, sleep } from './helpers/broker.js'
import { spawnBroker, type BrokerProcess } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'
import { startTcpProxy } from './helpers/tcp-proxy.js'

const secret = 'node-registry-test-secret-0123456789'
const config = {
  auth: { anonymous: false, jwt: { secret } },
  acl: { users: { root: { roles: ['admin'] } } }
}
const asRoot = { headers: { authorization: `Bearer ${jwt.sign({ sub: 'root' }, secret, { expiresIn: 600 })}` } }

interface NodeList { node: string, nodes: Array<{ id: string, lastBeat: string }> }

async function nodesSeenBy (httpPort: number): Promise<NodeList> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/api/v1/admin/nodes`, asRoot)
  if (res.status !== 200) throw new Error(`GET /api/v1/admin/nodes: ${res.status}`)
  return await res.json() as NodeList
}

/** The JSON log lines of a node process with this event. */
function events (node: BrokerProcess, event: string): Array<Record<string, unknown>> {
  return node.output().split('\n')
    .filter((line) => line.includes(`"event":"${event}"`))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

t.test('one node alone lists itself', async (t) => {
  const broker = await startBroker(t, { ...config, nodeId: 'solo' })
  t.equal((await fetch(`http://127.0.0.1:${broker.addresses.http.port}/api/v1/admin/nodes`)).status, 401, 'admins only')
  const list = await nodesSeenBy(broker.addresses.http.port)
  t.equal(list.node, 'solo')
  t.same(list.nodes.map(({ id }) => id), ['solo'])
  t.ok(Math.abs(Date.parse(list.nodes[0]?.lastBeat ?? '') - Date.now()) < 5000, 'its last beat is now')
})

t.test('three nodes on Redis, one killed with SIGKILL: every node lists the live ones, one survivor handles the death', async (t) => {
  const redis = await startRedis(t)
  // a beat every 500 ms, dead after 3 silent beats
  const dir = t.testdir({ 'node.yaml': JSON.stringify({ ...config, cluster: { heartbeatIntervalMs: 500 } }) })
  const ids = ['na', 'nb', 'nc']
  const nodes: BrokerProcess[] = []
  for (const id of ids) nodes.push(await spawnBroker(t, ['--config', `${dir}/node.yaml`, '--redis', redis.url], { NODE_ID: id }))
  const [a, b, c] = nodes as [BrokerProcess, BrokerProcess, BrokerProcess]

  for (const node of nodes) {
    const list = await nodesSeenBy(node.httpPort)
    t.same(list.nodes.map(({ id }) => id), ids, `${list.node} lists the whole cluster`)
  }
  await waitFor(() => events(a, 'cluster.node-joined').some((line) => line.joined === 'nc'), 'the first node saw the last one join')

  c.child.kill('SIGKILL')
  await c.exited
  const survivors = [a, b]
  const listedOnly = async (): Promise<boolean> => (await Promise.all(survivors.map(async (node) => (await nodesSeenBy(node.httpPort)).nodes.map(({ id }) => id).join()))).every((listed) => listed === 'na,nb')
  const deadline = Date.now() + 10_000
  while (!await listedOnly()) {
    if (Date.now() > deadline) throw new Error('the killed node is still listed')
    await sleep(100)
  }
  // every survivor has looked at the dead node more than once by now
  await sleep(2000)
  const deaths = survivors.flatMap((node) => events(node, 'cluster.node-died').filter((line) => line.died === 'nc'))
  t.equal(deaths.length, 1, 'exactly one survivor claimed the death')
  const routes = survivors.flatMap((node) => events(node, 'cluster.node-lost').filter((line) => line.lost === 'nc'))
  t.equal(routes.length, 1, 'its routes were retired once')
  const sessions = survivors.flatMap((node) => events(node, 'session.node-lost').filter((line) => line.node === 'nc'))
  t.equal(sessions.length, 1, 'its sessions were taken offline once')
  t.same(survivors.flatMap((node) => events(node, 'cluster.retired')), [], 'no live node was taken for dead')
})

t.test('a node whose heartbeat entry is gone rejoins: once when its death was claimed (cut off past the timeout), once when Redis lost the entry', async (t) => {
  const redis = await startRedis(t)
  const proxy = await startTcpProxy(t, redis.port)
  // beats of 250 ms, dead after 1 s of silence
  const timing = { beatMs: 250, timeoutMs: 1000 }
  const keys = new RedisKeys('', false)
  const connect = (port: number): Redis => {
    const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: null, retryStrategy: () => 50 })
    t.teardown(() => client.disconnect())
    return client
  }
  const direct = connect(redis.port)
  const survivor = new NodeRegistry('survivor', direct, timing, keys, pino({ level: 'silent' }))
  const cutOff = new NodeRegistry('cut-off', connect(proxy.port), timing, keys, pino({ level: 'silent' }))
  const died: string[] = []
  let retired = 0
  survivor.on('died', (node) => { died.push(node) })
  cutOff.on('retired', () => { retired++ })
  await survivor.start()
  await cutOff.start()
  t.teardown(async () => { await survivor.close(); await cutOff.close() })

  proxy.cut()
  await waitFor(() => died.includes('cut-off'), 'the survivor claims the cut-off node\'s death', 5000)
  proxy.restore()
  await waitFor(() => retired > 0, 'the node learns it was retired', 5000)
  await sleep(600)
  t.equal(retired, 1, 'retired once: its next beats update its entry')
  t.same(died, ['cut-off'], 'its death was claimed once')

  // a write Redis lost (a failover to a replica that had not synced): nobody claimed a death,
  // and the node cannot tell; rejoining (routes announced again, clients resuming their
  // sessions) heals what else the loss took
  await direct.zrem('cluster:nodes', 'cut-off')
  await waitFor(() => retired > 1, 'the node rejoins', 5000)
  t.ok(await direct.zscore('cluster:nodes', 'cut-off') !== null, 'its entry is back')
  t.same(died, ['cut-off'], 'no death claimed for it')
})
