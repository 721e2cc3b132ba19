// A redis-server for the clustered targets, started by the harness on a free port and
// stopped by PID. It runs on the broker's CPU: on this 2-core machine the load generator
// keeps the other one.
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

export async function startRedisServer (): Promise<{ url: string, handle: ChildHandle }> {
  const port = await freePort()
  const handle = startChild('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { cpu: brokerCpu })
  await handle.waitFor([/Ready to accept connections/], 10_000)
  return { url: `redis://127.0.0.1:${port}`, handle }
}
