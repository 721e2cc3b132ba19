// Per-second samples of one process for a timeline of a load run (`BENCH_TIMELINE_DIR=dir`):
// its event loop's worst delay, GC pauses by kind, CPU, heap, and whatever the load generator
// counts (pings sent, latencies timed). Loaded into every Node process of a run with
// `NODE_OPTIONS=--import=<this file>` (the workers inherit it), one JSON line a second to
// `<dir>/<role>-<pid>.jsonl`; `bench/load/timeline-report.ts` lines the processes up by second.
// SIGUSR2 starts and stops a CPU profile. Off (nothing loaded, nothing counted) unless the
// variable is set.
import cluster from 'node:cluster'
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { join } from 'node:path'
import { monitorEventLoopDelay, PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks'

export interface TimelineSample {
  /** Unix second the sample covers. */
  t: number
  role: string
  pid: number
  /** CPU used in the second (ms, user + system). */
  cpuMs: number
  /** The event loop's worst delay in the second (ms, beyond its 10 ms ticks). */
  loopMaxMs: number
  /** GC pauses in the second by kind: total ms, count, longest ms. */
  gc: Record<'minor' | 'major' | 'incremental' | 'weak', [number, number, number]>
  heapUsedMiB: number
  counters: Record<string, number>
  /** Latencies timed in the second: count, p50, p99, max (ms). */
  latency?: [number, number, number, number]
}

const dir = process.env.BENCH_TIMELINE_DIR
const counters: Record<string, number> = {}
let latencies: number[] = []

/** Adds to a per-second counter of this process (nothing when no timeline is kept). */
export function countInTimeline (name: string, n = 1): void {
  if (dir !== undefined) counters[name] = (counters[name] ?? 0) + n
}

/** Records a latency timed in this second (nothing when no timeline is kept). */
export function latencyInTimeline (ms: number): void {
  if (dir !== undefined) latencies.push(ms)
}

function role (): string {
  if (cluster.isWorker) return 'worker'
  const script = process.argv[1] ?? ''
  if (script.endsWith('fleet-process.js') || script.endsWith('storm-process.js')) return 'generator'
  if (script.endsWith('run.js')) return 'harness'
  return 'primary'
}

const gcKinds: Array<[number, keyof TimelineSample['gc']]> = [
  [constants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [constants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, 'weak']
]

function emptyGc (): TimelineSample['gc'] {
  return { minor: [0, 0, 0], major: [0, 0, 0], incremental: [0, 0, 0], weak: [0, 0, 0] }
}

function start (directory: string): void {
  mkdirSync(directory, { recursive: true })
  const file = join(directory, `${role()}-${process.pid}.jsonl`)
  let gc = emptyGc()
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // Node 20's types leave out a GC entry's detail
      const flags = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
      const kind = gcKinds.find(([flag]) => flag === flags)?.[1]
      if (kind === undefined) continue
      const slot = gc[kind]
      slot[0] += entry.duration
      slot[1]++
      slot[2] = Math.max(slot[2], entry.duration)
    }
  }).observe({ entryTypes: ['gc'] })
  const loop = monitorEventLoopDelay({ resolution: 10 })
  loop.enable()
  let cpu = process.cpuUsage()
  // aligned to the wall clock's seconds, so that every process's samples cover the same second
  const tick = (): void => {
    const now = Date.now()
    const used = process.cpuUsage(cpu)
    cpu = process.cpuUsage()
    const sample: TimelineSample = {
      t: Math.floor(now / 1000) - 1,
      role: role(),
      pid: process.pid,
      cpuMs: Math.round((used.user + used.system) / 1000),
      loopMaxMs: Math.max(0, loop.max / 1e6 - 10),
      gc,
      heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 1048576),
      counters: { ...counters }
    }
    if (latencies.length > 0) {
      const sorted = Float64Array.from(latencies).sort()
      const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number
      sample.latency = [sorted.length, at(50), at(99), sorted[sorted.length - 1] as number]
    }
    appendFileSync(file, `${JSON.stringify(sample)}\n`)
    loop.reset()
    gc = emptyGc()
    latencies = []
    for (const name of Object.keys(counters)) counters[name] = 0
    setTimeout(tick, 1000 - (Date.now() % 1000)).unref()
  }
  setTimeout(tick, 1000 - (Date.now() % 1000)).unref()
}

/**
 * SIGUSR2 starts a V8 CPU profile of this process, the next one writes it to
 * `<dir>/<role>-<pid>-<n>.cpuprofile`: a profile of one phase of a run, not of all of it.
 */
function profileOnSignal (directory: string): void {
  let session: Session | null = null
  let written = 0
  process.on('SIGUSR2', () => {
    if (session === null) {
      const started = new Session()
      started.connect()
      started.post('Profiler.enable', () => started.post('Profiler.start'))
      session = started
      return
    }
    const running = session
    session = null
    running.post('Profiler.stop', (err, result) => {
      if (err === null) writeFileSync(join(directory, `${role()}-${process.pid}-${written++}.cpuprofile`), JSON.stringify(result.profile))
      running.disconnect()
    })
  })
}

if (dir !== undefined) {
  start(dir)
  profileOnSignal(dir)
}
