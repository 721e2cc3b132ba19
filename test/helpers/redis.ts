// A real redis-server for the tests: started on a free loopback port, stopped by PID.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { diesWithTest } from './children.js'
import { freePort, type Teardown } from './loopback.js'

export interface RedisServer {
  url: string
  port: number
  /** Stops the server (SIGKILL when `crash`, else SIGTERM). */
  stop: (crash?: boolean) => Promise<void>
  /** Starts it again on the same port and data directory. */
  start: () => Promise<void>
}

/** Starts redis-server; `durable` keeps data across restarts (AOF, fsync every write). */
export async function startRedis (t: Teardown, { durable = false } = {}): Promise<RedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'rb-redis-'))
  let child: ChildProcess | null = null
  const start = async (): Promise<void> => {
    child = diesWithTest(spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
      '--appendonly', durable ? 'yes' : 'no', '--appendfsync', 'always', '--daemonize', 'no', '--loglevel', 'warning'
    ], { stdio: 'ignore' }))
    await waitForPort(port, 10_000)
  }
  const stop = async (crash = false): Promise<void> => {
    const running = child
    if (running === null || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise((resolve) => running.once('exit', resolve))
    running.kill(crash ? 'SIGKILL' : 'SIGTERM')
    await exited
    child = null
  }
  await start()
  t.teardown(() => stop(true))
  return { url: `redis://127.0.0.1:${port}`, port, stop, start }
}

/** Waits until a redis-server answers PING on `port`. */
export async function waitForPort (port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.write('PING\r\n')
        socket.once('data', (data) => { socket.destroy(); resolve(data.toString().startsWith('+PONG')) })
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
