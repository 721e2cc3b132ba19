// A real Redis Cluster for the tests: 3 masters and 3 replicas of Debian's redis-server on free
// loopback ports, joined by `redis-cli --cluster create`, stopped by PID.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster, Redis } from 'ioredis'
import { clusterNodes, redisKeys, type RedisClient } from '../../src/broker/storage/redis-clients.js'
import type { RedisKeys } from '../../src/broker/storage/redis-keys.js'
import { diesWithTest } from './children.js'
import { freePort, type Teardown } from './loopback.js'
import { waitForPort } from './redis.js'

const run = promisify(execFile)

export interface RedisClusterNode {
  port: number
  id: string
  role: 'master' | 'slave'
  /** A replica's master (node id). */
  masterId: string | null
}

export interface RedisCluster {
  /** `redis+cluster://127.0.0.1:<port>,...` of the three masters the cluster started with. */
  url: string
  /** The nodes as the cluster sees them now. */
  nodes: () => Promise<RedisClusterNode[]>
  /** redis-cli against one node; its output, trimmed. */
  cli: (port: number, ...args: string[]) => Promise<string>
  /** The master serving `key` now. */
  masterOf: (key: string) => Promise<RedisClusterNode>
  /** Promotes a replica of the master on `port` (CLUSTER FAILOVER) and waits until every node sees it. */
  failover: (port: number) => Promise<RedisClusterNode>
  /** Kills the master on `port` (SIGKILL, by PID); its replica takes over by election. Last in a file: the cluster keeps one master fewer with a replica. */
  kill: (port: number) => Promise<void>
}

const cli = async (port: number, ...args: string[]): Promise<string> =>
  (await run('redis-cli', ['-p', String(port), ...args])).stdout.trim()

let shared: Promise<RedisCluster> | null = null

/**
 * A 3-master, 3-replica Redis Cluster, emptied for this test: one per test file (a cluster
 * takes seconds to form), started by the first test that asks, killed when the file's process
 * ends. The brokers of the tests before are gone by then (each test's teardown stops them).
 */
// takes a test like startRedis, so that tests can take either
export async function startRedisCluster (_t: Teardown): Promise<RedisCluster> {
  shared ??= createRedisCluster()
  const cluster = await shared
  const masters = (await cluster.nodes()).filter((node) => node.role === 'master')
  await Promise.all(masters.map(async (node) => await cluster.cli(node.port, 'FLUSHALL')))
  return cluster
}

async function createRedisCluster (): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'rb-redis-cluster-'))
  const ports: number[] = []
  const children: ChildProcess[] = []
  while (ports.length < 6) {
    const port = await freePort()
    // the cluster bus needs a port of its own (by default port + 10000, which may be taken or out of range)
    const busPort = await freePort()
    if (ports.includes(port) || ports.includes(busPort) || port === busPort) continue
    ports.push(port)
    children.push(diesWithTest(spawn('redis-server', [
      '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1', '--dir', dir,
      '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000',
      '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning',
      // a master sends a replica its data at once, not after 5 s waiting for more replicas
      '--repl-diskless-sync-delay', '0'
    ], { stdio: 'ignore' })))
    // the file's process may end with the cluster up: diesWithTest kills it then
    children.at(-1)?.unref()
  }
  await Promise.all(ports.map(async (port) => await waitForPort(port, 10_000)))
  await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '1', '--cluster-yes'])
  await waitUntil(async () => (await Promise.all(ports.map(async (port) => await cli(port, 'CLUSTER', 'INFO')))).every((info) => info.includes('cluster_state:ok')), 'cluster_state:ok on every node')
  // cluster_state:ok comes before the replicas hold their masters' data: a test's failover
  // would wait for that sync, writes paused, up to the manual failover's own timeout under load
  await waitUntil(async () => (await Promise.all(ports.map(async (port) => await cli(port, 'INFO', 'replication'))))
    .filter((info) => info.includes('role:slave')).filter((info) => info.includes('master_link_status:up')).length === 3, 'every replica in sync with its master')

  const killed = new Set<number>()
  const alive = (): number => ports.find((port) => !killed.has(port)) as number
  // a killed node stays listed, flagged `fail`, until forgotten
  const nodes = async (): Promise<RedisClusterNode[]> => (await cli(alive(), 'CLUSTER', 'NODES')).split('\n').flatMap((line) => {
    const [id, address, flags, master] = line.split(' ') as [string, string, string, string]
    if (flags.includes('fail')) return []
    return [{ id, port: Number(/:(\d+)@/.exec(address)?.[1]), role: flags.includes('master') ? 'master' : 'slave', masterId: master === '-' ? null : master }]
  })
  const masters = (await nodes()).filter((node) => node.role === 'master').map((node) => node.port)
  const masterOf = async (key: string): Promise<RedisClusterNode> => {
    const slot = Number(await cli(alive(), 'CLUSTER', 'KEYSLOT', key))
    const port = (await slotRanges(alive())).find(([from, to]) => slot >= from && slot <= to)?.[2]
    const node = (await nodes()).find((n) => n.port === port)
    if (node === undefined) throw new Error(`no master for ${key}`)
    return node
  }
  const failover = async (port: number): Promise<RedisClusterNode> => {
    const master = (await nodes()).find((node) => node.port === port)
    const replica = (await nodes()).find((node) => node.masterId === master?.id)
    if (replica === undefined) throw new Error(`no replica of the master on ${port}`)
    await cli(replica.port, 'CLUSTER', 'FAILOVER')
    await waitUntil(async () => {
      const views = await Promise.all(ports.map(async (p) => await cli(p, 'CLUSTER', 'NODES')))
      return views.every((view) => view.split('\n').some((line) => line.startsWith(replica.id) && line.includes('master')))
    }, `the replica on ${replica.port} promoted`)
    return { ...replica, role: 'master', masterId: null }
  }
  const kill = async (port: number): Promise<void> => {
    const before = await nodes()
    const replica = before.find((node) => node.masterId === before.find((n) => n.port === port)?.id)
    const child = children[ports.indexOf(port)] as ChildProcess
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    killed.add(port)
    await waitUntil(async () => (await cli(alive(), 'CLUSTER', 'INFO')).includes('cluster_state:ok') &&
      (await nodes()).some((node) => node.id === replica?.id && node.role === 'master'), `the replica of ${port} elected`)
  }
  return { url: `redis+cluster://${masters.map((port) => `127.0.0.1:${port}`).join(',')}`, nodes, cli, masterOf, failover, kill }
}

/** [first slot, last slot, master port] of each slot range (CLUSTER NODES). */
async function slotRanges (port: number): Promise<Array<[number, number, number]>> {
  const lines = (await cli(port, 'CLUSTER', 'NODES')).split('\n')
  const ranges: Array<[number, number, number]> = []
  for (const line of lines) {
    const fields = line.split(' ')
    if (!(fields[2] ?? '').includes('master')) continue
    const nodePort = Number(/:(\d+)@/.exec(fields[1] ?? '')?.[1])
    for (const range of fields.slice(8)) {
      const [from, to] = range.split('-').map(Number) as [number, number | undefined]
      if (Number.isInteger(from)) ranges.push([from, to ?? from, nodePort])
    }
  }
  return ranges
}

async function waitUntil (check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export interface RedisInspector {
  /** A client of the Redis (or Redis Cluster) at the URL. */
  db: RedisClient
  /** The broker's key names there (hash-tagged on a Cluster). */
  keys: RedisKeys
  /** KEYS `pattern` on every master (a test's look at a small keyspace). */
  keysMatching: (pattern: string) => Promise<string[]>
  /** Calls of a command so far, on every master together (INFO commandstats). */
  commandCalls: (command: string) => Promise<number>
}

/** Looks into the Redis a broker uses, one Redis or a Cluster alike; disconnects with the test. */
export function inspectRedis (t: Teardown, url: string): RedisInspector {
  const nodes = clusterNodes({ url })
  const db = nodes === null ? new Redis(url) : new Cluster(nodes)
  t.teardown(() => db.disconnect())
  const masters = async (): Promise<Redis[]> => {
    if (!(db instanceof Cluster)) return [db]
    // the masters are known once the Cluster client has read the slots
    if (db.status !== 'ready') await new Promise((resolve) => db.once('ready', resolve))
    return db.nodes('master')
  }
  const keysMatching = async (pattern: string): Promise<string[]> => (await Promise.all((await masters()).map(async (node) => await node.keys(pattern)))).flat()
  const commandCalls = async (command: string): Promise<number> => (await Promise.all((await masters()).map(async (node) => {
    const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(await node.info('commandstats'))
    return match === null ? 0 : Number(match[1])
  }))).reduce((sum, calls) => sum + calls, 0)
  return { db, keys: redisKeys({ url }, ''), keysMatching, commandCalls }
}
