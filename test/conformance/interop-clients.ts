// What the interop tests (interop.test.ts for MQTT 3.1.1, interop-mqtt5.test.ts for MQTT 5)
// share: the client programs they run, and bounded waits on those processes' output.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Tap } from './targets.js'

export const pahoScript = fileURLToPath(new URL('paho_client.py', import.meta.url))
// Debian's python3-paho-mqtt is installed for the system interpreter, which a pyenv or venv
// python3 earlier on the PATH would not see
export const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
// mosquitto_sub's debug lines (-d) sit in its stdout buffer unless it is line-buffered
export const mosquittoSub = (args: string[]): [string, string[]] => existsSync('/usr/bin/stdbuf') ? ['/usr/bin/stdbuf', ['-oL', 'mosquitto_sub', ...args]] : ['mosquitto_sub', args]
export const waitMs = 5000

export interface Subscription<M> {
  /** Resolves once the client is subscribed (or, for mosquitto_sub, got its first message). */
  ready: Promise<void>
  /** Resolves with the messages once `count` arrived. */
  messages: Promise<M[]>
  /** Ends the client without DISCONNECT (for wills), or politely. */
  stop: () => Promise<void>
}

/** A client process: its stdout lines, and bounded waits on them. */
export function run (t: Tap, command: string, args: string[]): { lines: string[], line: (predicate: (line: string) => boolean) => Promise<string>, exited: Promise<number | null>, kill: () => void } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let stderr = ''
  const waiters = new Set<() => void>()
  let buffered = ''
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const parts = buffered.split('\n')
    buffered = parts.pop() ?? ''
    lines.push(...parts)
    for (const wake of waiters) wake()
  })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  // 'close', not 'exit': 'exit' may come before the last of stdout was read, and a client's
  // last line (its message, with -C 1) would be missing
  let closed = false
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => {
    closed = true
    if (buffered !== '') lines.push(buffered)
    for (const wake of waiters) wake()
    resolve(code)
  }))
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  t.teardown(kill)
  const line = async (predicate: (line: string) => boolean): Promise<string> => {
    const deadline = Date.now() + waitMs
    for (;;) {
      const found = lines.find(predicate)
      if (found !== undefined) return found
      if (closed) throw new Error(`${command} exited with ${String(child.exitCode)}: ${stderr}`)
      if (Date.now() > deadline) throw new Error(`${command}: no such line within ${waitMs} ms; got ${JSON.stringify(lines)} ${stderr}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50)
        waiters.add(() => { clearTimeout(timer); resolve() })
      })
    }
  }
  return { lines, line, exited, kill }
}

/** Marks the promises of a subscription handled: a test awaits them, maybe after one failed. */
export function handled<M> (subscription: Subscription<M>): Subscription<M> {
  subscription.ready.catch(() => {})
  subscription.messages.catch(() => {})
  return subscription
}

export async function exitedOk (what: string, exited: Promise<number | null>): Promise<void> {
  const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), waitMs))])
  if (code !== 0) throw new Error(`${what} exited with ${String(code)}`)
}

