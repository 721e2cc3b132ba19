// `workers: N`: N broker processes on one machine sharing the listeners through node:cluster,
// so every core serves clients. They share sessions and messages through Redis (the config
// refuses workers without it). The primary only supervises: it restarts a worker that dies
// and passes SIGTERM/SIGINT on for a graceful shutdown.
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import type { BrokerConfig } from '../config/config-schema.js'
import type { Logger } from '../observability/logger.js'

export function workerCount (config: BrokerConfig): number {
  return config.workers === 'auto' ? availableParallelism() : config.workers
}

/** Runs the primary: forks the workers and resolves when they have all exited. */
export function superviseWorkers (count: number, logger: Logger, announce: (line: string) => void): Promise<number> {
  let stopping = false
  const fork = (): void => { cluster.fork() }
  for (let i = 0; i < count; i++) fork()
  announce(`started ${count} worker processes`)

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return
    logger.error({ event: 'worker.died', pid: worker.process.pid, code, signal }, 'worker died; starting another')
    setTimeout(fork, 500)
  })

  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL')
        return
      }
      stopping = true
      logger.info({ event: 'shutdown.signal', signal }, 'stopping workers')
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal)
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    cluster.on('exit', () => {
      if (stopping && Object.keys(cluster.workers ?? {}).length === 0) resolve(0)
    })
  })
}
