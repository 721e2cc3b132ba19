// Child processes of the harness: started pinned to a CPU (taskset), watched for their
// "listening" lines, measured through /proc, and stopped by PID in the end, whatever happens.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createWriteStream, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus } from 'node:os'
import { join } from 'node:path'

/** The CPUs of the plan: broker on CPU 0, load generator (this process) on CPU 1. */
export const brokerCpu = 0
export const generatorCpu = 1

let tasksetWorks: boolean | undefined
let pinningOff = false

/** `--no-pin`: no process of the run is pinned, brokers included. */
export function disablePinning (): void {
  pinningOff = true
}

/** Whether pinning is on, `taskset` exists and this machine has the CPUs the plan pins to. */
export function canPin (): boolean {
  if (pinningOff) return false
  tasksetWorks ??= spawnSync('taskset', ['-c', String(generatorCpu), 'true']).status === 0
  return tasksetWorks
}

/** Pins every thread of this process (the load generator) to the generator CPU. */
export function pinThisProcess (): boolean {
  if (!canPin()) return false
  return spawnSync('taskset', ['-a', '-p', '-c', String(generatorCpu), String(process.pid)]).status === 0
}

export interface ChildHandle {
  readonly child: ChildProcess
  readonly pid: number
  /** Everything it printed so far, stdout and stderr. */
  output: () => string
  running: () => boolean
  /** Resolves when each pattern has matched the output; returns the matches in order. */
  waitFor: (patterns: RegExp[], timeoutMs: number) => Promise<RegExpExecArray[]>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop: (graceMs?: number) => Promise<void>
}

const live = new Set<ChildHandle>()

/**
 * Starts `command` pinned to `cpu`, or free to use every CPU with null (when taskset works);
 * taskset execs, so the PID is the command's.
 */
export function startChild (command: string, args: string[], options: { cpu: number | null, env?: NodeJS.ProcessEnv, cwd?: string }): ChildHandle {
  // A child inherits this process's affinity: once the generator has pinned itself, an
  // "unpinned" child would share the generator's one CPU unless given every CPU explicitly.
  const cpuList = options.cpu === null ? `0-${cpus().length - 1}` : String(options.cpu)
  const [file, argv] = canPin() ? ['taskset', ['-c', cpuList, command, ...args]] : [command, args]
  const child = spawn(file, argv, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  if (child.pid === undefined) throw new Error(`could not start ${command}`)
  const pid = child.pid
  let output = ''
  const append = (chunk: Buffer): void => {
    // Keep the tail only: a chatty broker must not grow the harness without bound.
    output = (output + chunk.toString()).slice(-64 * 1024)
  }
  // with a timeline (bench/load/timeline.ts), all of it to a file too: GC traces, say
  const timeline = process.env.BENCH_TIMELINE_DIR
  if (timeline !== undefined) {
    const copy = createWriteStream(join(timeline, `output-${pid}.log`))
    child.stdout?.pipe(copy)
    child.stderr?.pipe(copy)
  }
  child.stdout?.on('data', append)
  child.stderr?.on('data', append)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const hasExited = (): boolean => child.exitCode !== null || child.signalCode !== null

  const handle: ChildHandle = {
    child,
    pid,
    output: () => output,
    running: () => !hasExited(),
    waitFor: async (patterns, timeoutMs) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const matches = patterns.map((p) => p.exec(output))
        if (matches.every((m) => m !== null)) return matches as RegExpExecArray[]
        if (hasExited()) throw new Error(`${command} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output.trim()}`)
        if (Date.now() > deadline) throw new Error(`${command} was not ready within ${timeoutMs} ms:\n${output.trim()}`)
        await sleep(20)
      }
    },
    stop: async (graceMs = 5_000) => {
      live.delete(handle)
      if (hasExited()) return
      signal(pid, 'SIGTERM')
      const timer = setTimeout(() => { if (!hasExited()) signal(pid, 'SIGKILL') }, graceMs)
      await exited
      clearTimeout(timer)
    }
  }
  live.add(handle)
  return handle
}

/** Last resort on Ctrl-C or a crash of the harness: SIGKILL what is still running, by PID. */
export function killLiveChildren (): void {
  for (const handle of live) signal(handle.pid, 'SIGKILL')
  live.clear()
}

function signal (pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch {
    // ESRCH: it exited meanwhile
  }
}

/** A port free on 127.0.0.1 right now, for servers that cannot take port 0 (Mosquitto). */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Resident set size of a process in KiB (VmRSS in /proc/PID/status). */
/** The processes `pid` started (e.g. the workers of `--workers N`), from /proc. */
export function childPids (pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((s) => s !== '').map(Number)
  } catch {
    return []
  }
}

export function rssKiB (pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match === null ? NaN : Number(match[1])
}

// USER_HZ: the unit of utime/stime in /proc/PID/stat; 100 on every mainstream Linux build.
const clockTicksPerSecond = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100

/** CPU time a process has used so far (user + system), in milliseconds. */
export function cpuTimeMs (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) may contain spaces; the fields after its ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ticksToMs(Number(fields[11]) + Number(fields[12])) // utime, stime: fields 14 and 15
}

/** Converts the clock ticks of /proc/PID/stat and /proc/stat to milliseconds. */
export function ticksToMs (ticks: number): number {
  return (ticks * 1000) / clockTicksPerSecond
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
