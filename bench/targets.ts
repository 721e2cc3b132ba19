// The brokers the harness measures, one row each. A target starts its processes, says where
// clients connect, and stops them. To add one (single node + Redis, two nodes + Redis,
// `--workers 2`, JWT + ACL), append an entry; startNodeBroker covers Node-based brokers.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import jwt from 'jsonwebtoken'
import type { ProtocolVersion } from './load/bench-client.js'
import { valuePerWorker } from './load/worker-metrics.js'
import { perProcessConnections, type Settings } from './options.js'
import { findMosquitto, mosquittoVersion, startMosquitto } from './mosquitto.js'
import { brokerCpu, childPids, startChild } from './process.js'
import { redisUnavailable, startRedisCluster, startRedisServer } from './redis.js'

/** Where clients connect (always 127.0.0.1). */
export interface Endpoints {
  mqttPort: number
  /** MQTT over WebSocket, when the target has it. */
  wsUrl?: string
}

export interface RunningTarget {
  /** Where publishers connect. */
  publish: Endpoints
  /** Where subscribers connect: the same node, or another node of a cluster. */
  subscribe: Endpoints
  /** Broker processes: their RSS and CPU time are what the harness reports. */
  pids: number[]
  /** The broker processes by name, when there are several: their CPU is reported one by one. */
  processes?: Array<{ name: string, pid: number }>
  /** How many connections it can hold on this machine; one process's open files when absent. */
  connectionCapacity?: number
  /** Its worker processes (`--workers N`), when it has several. */
  workers?: number
  /** The HTTP base URL of a node of this project (metrics), when it has one. */
  httpBase?: string
  /** Each node of a cluster target: where it listens and its process, e.g. to kill one. */
  nodes?: Array<{ mqttPort: number, pid: number }>
  /** Username/password for a client, for targets that authenticate (JWT + ACL). */
  credentials?: (clientId: string) => { username?: string, password?: string }
  stop: () => Promise<void>
}

export interface StartOptions {
  /**
   * Extra node flags for a Node-based broker process (the harness's --cpu-prof sets them);
   * `processName` tells the nodes of a cluster apart, so that each writes its own profile.
   */
  nodeArgs: (processName?: string) => string[]
  settings: Settings
}

export interface Target {
  name: string
  description: string
  /** Why this target cannot run on this machine, or null when it can. */
  unavailable: () => string | null
  start: (options: StartOptions) => Promise<RunningTarget>
  /** The only scenarios this target is for (its point is made by those); all when absent. */
  scenarios?: string[]
  /**
   * When this target is measured on its own rather than interleaved with the others:
   * - 'latency': several processes (nodes, Redis) that, idle between their slices, still
   *   share the broker CPU with whatever is being measured: with a two-node cluster alive
   *   beside them, plain Aedes' p99 went from 0.5 to 3.0 ms;
   * - 'always': a target that reaches its steady state only in a continuous flood: one whose
   *   queues hold more than a slice of messages (a slice would measure its ramp, and its
   *   backlog would run into the others' slices), or one that slices put in a slower regime.
   */
  measuredAlone?: 'latency' | 'always'
  /** The MQTT version of every client of this target: 3.1.1 (4) when absent. */
  protocolVersion?: ProtocolVersion
}

export const projectRoot = fileURLToPath(new URL('../..', import.meta.url))
const cliPath = fileURLToPath(new URL('../src/cli.js', import.meta.url))
const aedesPlainPath = fileURLToPath(new URL('./aedes-plain.js', import.meta.url))
const aedesWorkersPath = fileURLToPath(new URL('./aedes-workers.js', import.meta.url))
const aedesStormPath = fileURLToPath(new URL('./aedes-storm.js', import.meta.url))

const readyLines = {
  tcp: /MQTT over TCP listening on mqtt:\/\/127\.0\.0\.1:(\d+)/,
  ws: /MQTT over WebSocket(?: \(ws\))? listening on (ws:\/\/\S+)/
}

/** Starts `node <args>` on the broker CPU and waits for its TCP and WebSocket listener lines. */
export async function startNodeBroker (args: string[], env: NodeJS.ProcessEnv, options: Pick<StartOptions, 'nodeArgs'>, pinned = true, processName?: string, readyTimeoutMs = 15_000): Promise<RunningTarget> {
  const child = startChild(process.execPath, [...options.nodeArgs(processName), ...args], { cpu: pinned ? brokerCpu : null, cwd: projectRoot, env })
  try {
    const [tcp, ws] = await child.waitFor([readyLines.tcp, readyLines.ws], readyTimeoutMs)
    const wsUrl = ws?.[1]
    const endpoints: Endpoints = { mqttPort: Number(tcp?.[1]), ...(wsUrl === undefined ? {} : { wsUrl }) }
    return { publish: endpoints, subscribe: endpoints, pids: [child.pid], stop: () => child.stop() }
  } catch (err) {
    await child.stop()
    throw err
  }
}

/** The environment without variables that would change what a target is (Redis, config). */
function baseEnv (): NodeJS.ProcessEnv {
  const { REDIS_URL: _redis, BROKER_CONFIG: _config, ...rest } = process.env
  return rest
}

export const projectTargetName = 'realtime-broker'
/** The same broker with MQTT 5 clients: reported as a ratio to `projectTargetName`. */
export const projectV5TargetName = 'realtime-broker-v5'
/**
 * The same node built from another checkout, listed when BENCH_BASELINE names that checkout's
 * root (e.g. the commit before a change): reported as a ratio too.
 */
export const projectBaselineTargetName = 'realtime-broker@baseline'

const projectEnv = (): NodeJS.ProcessEnv => ({ ...baseEnv(), MQTT_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'warn', ALLOW_ANONYMOUS: 'true', HOST: '127.0.0.1' })

/**
 * N project nodes on a fresh Redis; publishers use the first node, subscribers the last, or
 * the first too with `local` (traffic that concerns one node only).
 */
async function startProjectCluster (nodes: number, args: string[], options: StartOptions, cluster: { local?: boolean, env?: NodeJS.ProcessEnv, unpinned?: boolean, redisEveryCpu?: boolean, redisMasters?: number, readyTimeoutMs?: number } = {}): Promise<RunningTarget> {
  // redisEveryCpu: pinned to one CPU beside nodes that run on both, every message that crosses
  // nodes waits there for a turn, twice (XADD, XREAD; docs/performance.md)
  const redis = cluster.redisMasters === undefined ? await startRedisServer(cluster.redisEveryCpu === true ? null : brokerCpu) : await startRedisCluster(cluster.redisMasters)
  const started: RunningTarget[] = []
  try {
    for (let i = 0; i < nodes; i++) {
      started.push(await startNodeBroker([cliPath, 'start', '--redis', redis.url, ...args], { ...projectEnv(), ...cluster.env, NODE_ID: `bench-${i}` }, options, cluster.unpinned !== true, nodes > 1 ? `node${i}` : undefined, cluster.readyTimeoutMs))
    }
  } catch (err) {
    await Promise.all(started.map((n) => n.stop()))
    await redis.stop()
    throw err
  }
  const first = started[0] as RunningTarget
  const last = started[started.length - 1] as RunningTarget
  // with --workers, the workers (children of each node's primary) do the work: count them too
  const nodePids = started.flatMap((n) => n.pids.flatMap((pid) => [pid, ...childPids(pid)]))
  return {
    publish: first.publish,
    subscribe: cluster.local === true ? first.subscribe : last.subscribe,
    pids: [...nodePids, ...redis.handles.map((handle) => handle.pid)],
    nodes: started.map((n) => ({ mqttPort: n.publish.mqttPort, pid: n.pids[0] as number })),
    ...(nodePids.length > 1 ? { processes: [...nodePids.map((pid, i) => ({ name: nodes > 1 ? `node ${i}` : `process ${i}`, pid })), ...redis.handles.map((handle, i) => ({ name: redis.handles.length > 1 ? `redis ${i}` : 'redis', pid: handle.pid }))] } : {}),
    stop: async () => {
      await Promise.all(started.map((n) => n.stop()))
      await redis.stop()
    }
  }
}

const benchSecret = 'bench-secret-0123456789abcdef0123456789'
const benchToken = (): string => jwt.sign({ sub: 'bench' }, benchSecret, { expiresIn: 3600 })

/** The target of the storm scenario: three nodes, one to be killed. */
export const stormTargetName = 'rb+redis×3 storm'

/** The storm's lower bound: three plain Aedes nodes on one Redis (bench/aedes-storm.ts). */
export const aedesStormTargetName = 'aedes×3 storm'

/** Three plain Aedes nodes on a fresh Redis, as the storm target's (unpinned, Redis on every CPU). */
async function startAedesStorm (options: StartOptions): Promise<RunningTarget> {
  const redis = await startRedisServer(null)
  const started: Array<ReturnType<typeof startChild>> = []
  try {
    const nodes: NonNullable<RunningTarget['nodes']> = []
    for (let i = 0; i < 3; i++) {
      const child = startChild(process.execPath, [...options.nodeArgs(`node${i}`), aedesStormPath], { cpu: null, cwd: projectRoot, env: { ...baseEnv(), REDIS_URL: redis.url, NODE_ID: `bench-aedes-${i}` } })
      started.push(child)
      const [tcp] = await child.waitFor([readyLines.tcp], 60_000)
      nodes.push({ mqttPort: Number(tcp?.[1]), pid: child.pid })
    }
    const endpoints: Endpoints = { mqttPort: (nodes[0] as (typeof nodes)[number]).mqttPort }
    return {
      publish: endpoints,
      subscribe: endpoints,
      pids: [...nodes.map((n) => n.pid), ...redis.handles.map((handle) => handle.pid)],
      nodes,
      stop: async () => {
        await Promise.all(started.map((child) => child.stop()))
        await redis.stop()
      }
    }
  } catch (err) {
    await Promise.all(started.map((child) => child.stop()))
    await redis.stop()
    throw err
  }
}

/** The target of the fleet scenario: more connections than one process may hold. */
export const fleetTargetName = 'rb+jwt workers'
// connections per worker: under its open-files limit, with room for an uneven round robin;
// as few workers as that allows, since each costs its own timers, Redis connections and GC
const fleetConnectionsPerWorker = 18_000

/**
 * One node of this project with enough `--workers` for the fleet, JWT and ACL on, on Redis;
 * ready once every worker answers (a worker not yet listening gets no connections, and the
 * others would get more than their share).
 */
const fleetWorkers = (settings: StartOptions['settings']): number => Math.max(2, Math.ceil(settings.fleetConnections / fleetConnectionsPerWorker))

async function startFleetNode (options: StartOptions): Promise<RunningTarget> {
  const workers = fleetWorkers(options.settings)
  const config = fileURLToPath(new URL('../../bench/fleet.yaml', import.meta.url))
  const running = await startProjectCluster(1, ['--workers', String(workers), '--config', config], options, { unpinned: true, redisEveryCpu: true, env: { ALLOW_ANONYMOUS: 'false', JWT_SECRET: benchSecret }, readyTimeoutMs: 120_000 })
  const httpBase = running.publish.wsUrl?.replace(/^ws:/, 'http:').replace(/\/mqtt$/, '')
  try {
    if (httpBase === undefined) throw new Error('no HTTP listener')
    const deadline = Date.now() + 120_000
    while ((await valuePerWorker(httpBase, 'realtime_broker_clients_connected', workers)).size < workers) {
      if (Date.now() > deadline) throw new Error(`not all ${workers} workers answered within 120 s`)
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
  } catch (err) {
    await running.stop()
    throw err
  }
  const [primary, redis] = [running.pids[0] as number, running.pids[running.pids.length - 1] as number]
  // the workers, all of them by now
  const pids = [primary, ...childPids(primary), redis]
  const token = benchToken()
  return {
    ...running,
    pids,
    processes: pids.map((pid, i) => ({ name: i === 0 ? 'primary' : i === pids.length - 1 ? 'redis' : `worker ${i}`, pid })),
    workers,
    connectionCapacity: workers * Math.min(fleetConnectionsPerWorker, perProcessConnections()),
    httpBase,
    credentials: () => ({ username: 'bench', password: token })
  }
}

/** The fleet's lower bound: plain Aedes on as many workers, mqemitter-redis between them. */
export const aedesWorkersTargetName = 'aedes workers'

async function startAedesWorkers (options: StartOptions): Promise<RunningTarget> {
  const workers = fleetWorkers(options.settings)
  const redis = await startRedisServer(null)
  const child = startChild(process.execPath, [...options.nodeArgs(aedesWorkersTargetName), aedesWorkersPath], { cpu: null, cwd: projectRoot, env: { ...baseEnv(), REDIS_URL: redis.url, AEDES_WORKERS: String(workers) } })
  try {
    const [tcp] = await child.waitFor([readyLines.tcp], 120_000)
    const endpoints: Endpoints = { mqttPort: Number(tcp?.[1]) }
    const pids = [child.pid, ...childPids(child.pid), ...redis.handles.map((handle) => handle.pid)]
    return {
      publish: endpoints,
      subscribe: endpoints,
      pids,
      processes: pids.map((pid, i) => ({ name: i === 0 ? 'primary' : i === pids.length - 1 ? 'redis' : `worker ${i}`, pid })),
      workers,
      connectionCapacity: workers * Math.min(fleetConnectionsPerWorker, perProcessConnections()),
      stop: async () => {
        await child.stop()
        await redis.stop()
      }
    }
  } catch (err) {
    await child.stop()
    await redis.stop()
    throw err
  }
}

export const targets: Target[] = [
  {
    name: projectTargetName,
    description: 'this project, one node, in-memory (`node dist/src/cli.js start`)',
    unavailable: () => null,
    start: (options) => startNodeBroker([cliPath, 'start'], projectEnv(), options)
  },
  {
    name: projectV5TargetName,
    description: 'the same node, every client on MQTT 5 (CONNECT, PUBLISH and SUBSCRIBE without properties: a v5 client that uses no v5 feature)',
    unavailable: () => null,
    protocolVersion: 5,
    start: (options) => startNodeBroker([cliPath, 'start'], projectEnv(), options)
  },
  ...baselineTargets(process.env.BENCH_BASELINE),
  {
    name: 'rb+jwt',
    description: 'this project, one node, in-memory, every client authenticated by JWT and checked by the ACL (a role granting `bench/#`)',
    unavailable: () => null,
    start: async (options) => {
      const running = await startNodeBroker([cliPath, 'start', '--config', fileURLToPath(new URL('../../bench/jwt-acl.yaml', import.meta.url))], { ...projectEnv(), ALLOW_ANONYMOUS: 'false', JWT_SECRET: benchSecret }, options)
      const token = benchToken()
      return { ...running, credentials: () => ({ username: 'bench', password: token }) }
    }
  },
  {
    name: 'rb+authz',
    description: 'this project, one node, JWT and ACL as rb+jwt, per-user connection limits off (`bench/authz.yaml`): the reference of rb+authz+hook',
    unavailable: () => null,
    scenarios: ['fanin-qos1', 'connections'],
    start: async (options) => await startAuthzTarget(options, false)
  },
  {
    name: 'rb+authz+hook',
    description: 'rb+authz with the authorization hook asked on connect, subscribe and publish (a local backend answering allow, ttl 1 h): the cost of a warm cache',
    unavailable: () => null,
    scenarios: ['fanin-qos1', 'connections'],
    start: async (options) => await startAuthzTarget(options, true)
  },
  {
    name: 'rb+redis',
    measuredAlone: 'latency',
    description: 'this project, one node with Redis (routed emitter); Redis shares the broker CPU',
    unavailable: redisUnavailable,
    start: (options) => startProjectCluster(1, [], options)
  },
  {
    name: 'rb+redis+history',
    measuredAlone: 'latency',
    description: 'rb+redis with every fan-in topic keeping history (`bench/history.yaml`: a Redis stream per topic, size 1,000): compare its fan-in QoS 1 with rb+redis in the same run',
    unavailable: redisUnavailable,
    scenarios: ['fanin-qos0', 'fanin-qos1', 'history-recovery'],
    start: (options) => startProjectCluster(1, ['--config', fileURLToPath(new URL('../../bench/history.yaml', import.meta.url))], options)
  },
  {
    name: 'rb+history',
    description: 'this project, one node, in-memory, every fan-in topic keeping history in the memory store (`bench/history.yaml`): with realtime-broker in the same run, the cost of history without a Redis round trip',
    unavailable: () => null,
    scenarios: ['fanin-qos0', 'fanin-qos1', 'history-recovery'],
    start: (options) => startNodeBroker([cliPath, 'start', '--config', fileURLToPath(new URL('../../bench/history.yaml', import.meta.url))], projectEnv(), options)
  },
  {
    name: 'rb+redis×2',
    measuredAlone: 'latency',
    description: 'this project, two nodes on one Redis: publishers on one node, subscribers on the other',
    unavailable: redisUnavailable,
    start: (options) => startProjectCluster(2, [], options)
  },
  {
    name: 'rb+redis-cluster×2',
    measuredAlone: 'latency',
    description: 'the same two nodes on a Redis Cluster of 3 masters (no replicas), all on the broker CPU: publishers on one node, subscribers on the other',
    unavailable: redisUnavailable,
    scenarios: ['fanin-qos0', 'fanin-qos1'],
    start: (options) => startProjectCluster(2, [], options, { redisMasters: 3 })
  },
  {
    name: 'rb+redis×4 local',
    measuredAlone: 'latency',
    description: 'this project, four nodes on one Redis, publishers and subscribers all on node 0: the other nodes should stay idle (routed emitter; CPU per process below)',
    unavailable: redisUnavailable,
    scenarios: ['fanin-qos0', 'fanin-qos1'],
    start: (options) => startProjectCluster(4, [], options, { local: true })
  },
  {
    name: 'rb+mqemitter-redis×4 local',
    // a fan-in burst puts seconds of messages in its Redis round trip
    measuredAlone: 'always',
    description: 'the same four nodes with `redis.emitter: mqemitter-redis`, which sends every message through Redis, even to a subscriber on the publishing node, for comparison',
    unavailable: redisUnavailable,
    scenarios: ['fanin-qos0', 'fanin-qos1'],
    start: (options) => startProjectCluster(4, [], options, { local: true, env: { REDIS_EMITTER: 'mqemitter-redis' } })
  },
  {
    name: 'rb workers=2',
    measuredAlone: 'latency',
    description: 'this project, `--workers 2` with Redis: two worker processes share the listeners, unpinned (they use both CPUs, the generator and Redis too)',
    unavailable: redisUnavailable,
    start: (options) => startProjectCluster(1, ['--workers', '2'], options, { unpinned: true })
  },
  {
    name: stormTargetName,
    measuredAlone: 'always',
    description: 'this project, three nodes on one Redis, unpinned, default limits (`limits.maxConcurrentConnects` 10; `BENCH_STORM_CONFIG`: a config file for its nodes): for the storm scenario, which kills one',
    unavailable: redisUnavailable,
    scenarios: ['storm'],
    // BENCH_STORM_CONFIG: a config file for the three nodes (another limits.maxConcurrentConnects, say)
    start: (options) => startProjectCluster(3, process.env.BENCH_STORM_CONFIG === undefined ? [] : ['--config', process.env.BENCH_STORM_CONFIG], options, { unpinned: true, redisEveryCpu: true, readyTimeoutMs: 60_000 })
  },
  {
    name: aedesStormTargetName,
    measuredAlone: 'always',
    description: 'plain Aedes, three nodes on one Redis (aedes-persistence-redis, mqemitter-redis), no authentication, no CONNECT cap, unpinned (`bench/aedes-storm.ts`): the storm\'s lower bound',
    unavailable: redisUnavailable,
    scenarios: ['storm'],
    start: startAedesStorm
  },
  {
    name: fleetTargetName,
    measuredAlone: 'always',
    description: 'this project, one node with `--workers N` (N = fleet connections / 18,000, at least 2) on Redis, JWT and ACL on, unpinned: for the fleet scenario',
    unavailable: redisUnavailable,
    scenarios: ['fleet'],
    start: startFleetNode
  },
  {
    name: aedesWorkersTargetName,
    measuredAlone: 'always',
    description: 'plain Aedes on as many `node:cluster` workers as `rb+jwt workers`, in memory, mqemitter-redis between them, no authentication (`bench/aedes-workers.ts`): the lower bound of the fleet\'s mixed load',
    unavailable: redisUnavailable,
    scenarios: ['fleet'],
    start: startAedesWorkers
  },
  {
    name: 'aedes',
    description: 'plain Aedes, in-memory, no options (`bench/aedes-plain.ts`)',
    unavailable: () => null,
    start: (options) => startNodeBroker([aedesPlainPath], baseEnv(), options)
  },
  {
    name: 'mosquitto',
    // fan-in QoS 0: 204k msg/s in one window, 113k in 500 ms slices (with a 400 ms ramp too):
    // restarted from idle, it sends its subscriber one small write per message
    measuredAlone: 'always',
    description: 'Mosquitto from the distribution package, default settings but for `max_queued_messages`',
    unavailable: () => findMosquitto() === null ? 'no `mosquitto` binary (Debian: apt-get install mosquitto)' : null,
    start: () => {
      const binary = findMosquitto()
      if (binary === null) throw new Error('mosquitto not found')
      return startMosquitto(binary)
    }
  }
]

/** rb+authz, with the hook pointing at a backend in this process when `hook` (it answers allow, cached an hour). */
async function startAuthzTarget (options: StartOptions, hook: boolean): Promise<RunningTarget> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-authz-'))
  const config = join(dir, 'authz.yaml')
  let backend: Server | null = null
  let hookConfig = ''
  if (hook) {
    const server = createServer((req, res) => {
      req.resume()
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":true,"ttl":3600}'))
    })
    backend = server
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    hookConfig = `\nauthorizationHook:\n  url: http://127.0.0.1:${(server.address() as AddressInfo).port}/authz\n  connect: true\n  subscribe: true\n  publish: true\n`
  }
  writeFileSync(config, readFileSync(fileURLToPath(new URL('../../bench/authz.yaml', import.meta.url)), 'utf8') + hookConfig)
  const running = await startNodeBroker([cliPath, 'start', '--config', config], { ...projectEnv(), ALLOW_ANONYMOUS: 'false', JWT_SECRET: benchSecret }, options)
  const token = jwt.sign({ sub: 'bench' }, benchSecret, { expiresIn: 3600 })
  return {
    ...running,
    credentials: () => ({ username: 'bench', password: token }),
    stop: async () => {
      await running.stop()
      backend?.closeAllConnections()
      backend?.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

function baselineTargets (checkout: string | undefined): Target[] {
  if (checkout === undefined || checkout === '') return []
  const baselineCliPath = join(checkout, 'dist', 'src', 'cli.js')
  return [{
    name: projectBaselineTargetName,
    description: `this project, one node, built from the checkout ${checkout} (BENCH_BASELINE), measured in the same run`,
    unavailable: () => existsSync(baselineCliPath) ? null : `no ${baselineCliPath} (build that checkout first)`,
    start: (options) => startNodeBroker([baselineCliPath, 'start'], projectEnv(), options)
  }]
}

/** Versions of the reference brokers, for the report header. */
export function referenceVersions (): string[] {
  const binary = findMosquitto()
  return binary === null ? [] : [`mosquitto ${mosquittoVersion(binary)}`]
}
