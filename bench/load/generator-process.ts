// The processes of a multi-process load generator (fleet, storm): forked from dist/, driven
// over IPC with request/reply messages, each on its own loopback source address.
import { fork, spawnSync, type ChildProcess } from 'node:child_process'
import { cpus } from 'node:os'

/** What every generator process is told about its share of the clients. */
export interface GeneratorShare {
  /** Its own loopback source address: 127.0.0.2, .3, ... */
  localAddress: string
  /** Client ids are `${prefix}${first + i}`. */
  prefix: string
  first: number
  count: number
  keepaliveS: number
  /** CONNECTs in flight at once. */
  concurrency: number
}

export interface GeneratorProcess<Request, Reply extends { type: string }> {
  child: ChildProcess
  /** Sends `message`; resolves with the first reply of type `until`, handing the others to `onOther`. */
  ask: (message: Request, until: Reply['type'], onOther?: (reply: Reply) => void) => Promise<Reply>
  /** Sends `message` with no reply expected. */
  tell: (message: Request) => void
}

/** The source address of generator process `index`. */
export function generatorAddress (index: number): string {
  return `127.0.0.${index + 2}`
}

export function forkGenerator<Request, Reply extends { type: string }> (path: string, index: number, options: { everyCpu?: boolean } = {}): GeneratorProcess<Request, Reply> {
  const child = fork(path, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  // a forked child inherits the harness's pinning to the generator's CPU
  if (options.everyCpu === true && child.pid !== undefined) spawnSync('taskset', ['-a', '-p', '-c', `0-${cpus().length - 1}`, String(child.pid)], { stdio: 'ignore' })
  return {
    child,
    tell: (message) => { child.send(message as object) },
    ask: (message, until, onOther) => new Promise((resolve, reject) => {
      const onMessage = (reply: Reply): void => {
        if (reply.type !== until) return onOther?.(reply)
        child.off('message', onMessage)
        child.off('exit', onExit)
        resolve(reply)
      }
      const onExit = (code: number | null): void => reject(new Error(`load generator process ${index} exited (${String(code)})`))
      child.on('message', onMessage)
      child.once('exit', onExit)
      child.send(message as object)
    })
  }
}

/** Tells each generator process to exit, and kills one that has not within 5 s. */
export async function stopGenerators (generators: Array<{ child: ChildProcess }>): Promise<void> {
  await Promise.all(generators.map(async ({ child }) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    if (child.connected) child.send({ type: 'exit' })
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
    await exited
    clearTimeout(timer)
  }))
}
