// The single-process targets of the probes (bench/idle-floor.ts, bench/connect-probe.ts): a
// raw node:net server, Mosquitto, plain Aedes, and one process of this broker as a fleet worker
// runs it (bench/fleet.yaml: JWT, ACL, Redis), each started alone on the broker CPU.
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import jwt from 'jsonwebtoken'
import { brokerCpu, startChild, type ChildHandle } from './process.js'
import { findMosquitto, startMosquitto } from './mosquitto.js'
import { startRedisServer, type BenchRedis } from './redis.js'
import { projectRoot } from './targets.js'

const path = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url))
const benchSecret = 'bench-secret-0123456789abcdef0123456789'

/** A target started, and how its clients authenticate. */
export interface Started {
  broker: Pick<ChildHandle, 'pid' | 'stop' | 'output'>
  /** Whether it answers SIGUSR2 with a heap report (a Node process). */
  reportsHeap: boolean
  redis: BenchRedis | null
  credentials: { username?: string, password?: string }
}

const brokerReady = /MQTT over TCP listening on mqtt:\/\/127\.0\.0\.1:(\d+)/

/**
 * Starts target `name` (see bench/idle-floor.ts) pinned to the broker CPU; `baseline` is the
 * checkout `rb-base` and `aedes-base` run from, `heapFile` where it writes its SIGUSR2 heap report.
 */
export async function startTarget (name: string, nodeArgs: string[], heapFile: string, baseline: string, snapshotDir: string): Promise<Started & { port: number }> {
  const preload = ['--expose-gc', '--import', path('./load/heap-report.js'), ...nodeArgs]
  const { REDIS_URL: _redis, BROKER_CONFIG: _config, ...inherited } = process.env
  const env: NodeJS.ProcessEnv = { ...inherited, HEAP_REPORT_FILE: heapFile, ...(snapshotDir === '' ? {} : { HEAP_SNAPSHOT_DIR: snapshotDir }) }
  let redis: BenchRedis | null = null
  let args: string[]
  let credentials = {}
  if (name === 'mosquitto') {
    const binary = findMosquitto()
    if (binary === null) throw new Error('mosquitto not installed')
    const running = await startMosquitto(binary)
    const pid = running.pids[0] as number
    return { broker: { pid, stop: running.stop, output: () => '' }, reportsHeap: false, redis: null, credentials, port: running.publish.mqttPort }
  }
  if (name === 'ping') args = [path('./ping-server.js')]
  else if (name === 'aedes') args = [path('./aedes-plain.js')]
  else if (name === 'aedes-base') args = [join(baseline, 'dist/bench/aedes-plain.js')]
  else if (name === 'rb' || name === 'rb-memory' || name === 'rb-base') {
    if (name !== 'rb-memory') redis = await startRedisServer()
    const root = name === 'rb-base' ? baseline : projectRoot
    args = [join(root, 'dist/src/cli.js'), 'start', '--config', join(root, 'bench/fleet.yaml'), ...(redis === null ? [] : ['--redis', redis.url])]
    Object.assign(env, { MQTT_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'warn', HOST: '127.0.0.1', ALLOW_ANONYMOUS: 'false', JWT_SECRET: benchSecret, NODE_ID: 'idle-floor' })
    credentials = { username: 'bench', password: jwt.sign({ sub: 'bench' }, benchSecret, { expiresIn: 3600 }) }
  } else throw new Error(`unknown target ${name} (ping, mosquitto, aedes, aedes-base, rb, rb-memory, rb-base)`)
  const broker = startChild(process.execPath, [...preload, ...args], { cpu: brokerCpu, cwd: projectRoot, env })
  try {
    const [ready] = await broker.waitFor([brokerReady], 30_000)
    return { broker, reportsHeap: true, redis, credentials, port: Number(ready?.[1]) }
  } catch (err) {
    await broker.stop()
    await redis?.stop()
    throw err
  }
}
