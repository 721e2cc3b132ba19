// A redis-server for the clustered targets, or a Redis Cluster of several masters, started by
// the harness on free ports and stopped by PID. It runs on the broker's CPU: on this 2-core
// machine the load generator keeps the other one.
import { createServer } from 'node:net'
import { spawnSync } from 'node:child_process'
import { brokerCpu, startChild, type ChildHandle } from './process.js'

export function redisUnavailable (): string | null {
  return spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status === 0 ? null : 'no `redis-server` binary (Debian: apt-get install redis-server)'
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no free port')
  return address.port
}

/** The Redis a clustered target runs on: one server, or the masters of a Redis Cluster. */
export interface BenchRedis {
  url: string
  handles: ChildHandle[]
  stop: () => Promise<void>
}

const stopAll = (handles: ChildHandle[]) => async (): Promise<void> => { await Promise.all(handles.map(async (handle) => await handle.stop())) }

/** A Redis on the broker CPU, or on every CPU (null) beside brokers that are unpinned too. */
export async function startRedisServer (cpu: number | null = brokerCpu): Promise<BenchRedis> {
  const port = await freePort()
  const handle = startChild('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { cpu })
  await handle.waitFor([/Ready to accept connections/], 10_000)
  return { url: `redis://127.0.0.1:${port}`, handles: [handle], stop: stopAll([handle]) }
}

/** A Redis Cluster of `masters` masters and no replicas (replication would cost the same CPU). */
export async function startRedisCluster (masters: number): Promise<BenchRedis> {
  const dir = spawnSync('mktemp', ['-d']).stdout.toString().trim()
  const handles: ChildHandle[] = []
  const ports: number[] = []
  try {
    for (let i = 0; i < masters; i++) {
      const [port, busPort] = [await freePort(), await freePort()]
      ports.push(port)
      handles.push(startChild('redis-server', ['--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1', '--dir', dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--save', '', '--appendonly', 'no'], { cpu: brokerCpu }))
    }
    await Promise.all(handles.map(async (handle) => await handle.waitFor([/Ready to accept connections/], 10_000)))
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'])
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout.toString()}`)
    for (let tries = 0; !ports.every((port) => spawnSync('redis-cli', ['-p', String(port), 'CLUSTER', 'INFO']).stdout.toString().includes('cluster_state:ok')); tries++) {
      if (tries > 100) throw new Error('the Redis Cluster did not reach cluster_state:ok')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  } catch (err) {
    await stopAll(handles)()
    throw err
  }
  return { url: `redis+cluster://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`, handles, stop: stopAll(handles) }
}
