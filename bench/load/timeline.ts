// Per-second samples of one process for a timeline of a load run (`BENCH_TIMELINE_DIR=dir`):
// its event loop's worst delay, GC pauses by kind, CPU, heap, and whatever the load generator
// counts (pings sent, latencies timed). Loaded into every Node process of a run with
// `NODE_OPTIONS=--import=<this file>` (the workers inherit it), one JSON line a second to
// `<dir>/<role>-<pid>.jsonl`; `bench/load/timeline-report.ts` lines the processes up by second.
// SIGUSR2 starts and stops a CPU profile. Off (nothing loaded, nothing counted) unless the
// variable is set.
import cluster from 'node:cluster'
import { Session } from 'node:inspector'
import { join } from 'node:path'
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
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
  /** The harness only: every CPU's busy time in the second (ms), all processes of the machine. */
  machineBusyMs?: number
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
  const sampleMachine = role() === 'harness'
  let machine = sampleMachine ? machineBusyMs() : 0
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
    if (sampleMachine) {
      const busy = machineBusyMs()
      sample.machineBusyMs = busy - machine
      machine = busy
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

/** Busy time of all CPUs since boot (ms): user, nice, system, irq, softirq, steal of /proc/stat. */
function machineBusyMs (): number {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '').trim().split(/\s+/).slice(1).map(Number)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields
  // USER_HZ is 100 on Linux
  return (user + nice + system + irq + softirq + steal) * 10
}

/**
 * SIGUSR2 starts a V8 CPU profile and a sampling heap profile of what survives collection (the
 * allocations that are promoted, not the garbage) in this process; the next one writes them to
 * `<dir>/<role>-<pid>-<n>.cpuprofile` and `.heapprofile`: one phase of a run, not all of it.
 */
function profileOnSignal (directory: string): void {
  let session: Session | null = null
  let written = 0
  process.on('SIGUSR2', () => {
    if (session === null) {
      const started = new Session()
      started.connect()
      started.post('Profiler.enable', () => started.post('Profiler.start'))
      started.post('HeapProfiler.enable', () => started.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: false, includeObjectsCollectedByMinorGC: false }))
      session = started
      return
    }
    const running = session
    session = null
    const name = join(directory, `${role()}-${process.pid}-${written++}`)
    running.post('Profiler.stop', (err, result) => {
      if (err === null) writeFileSync(`${name}.cpuprofile`, JSON.stringify(result.profile))
      running.post('HeapProfiler.stopSampling', (heapErr, heap) => {
        if (heapErr === null) writeFileSync(`${name}.heapprofile`, JSON.stringify(heap.profile))
        running.disconnect()
      })
    })
  })
}

/**
 * `BENCH_V8_FLAGS="worker:--flag --other;generator:--flag"`: V8 flags set at start in the
 * processes of a role, for experiments (a GC setting tried on the workers only, say).
 */
function applyV8Flags (spec: string | undefined): void {
  for (const part of (spec ?? '').split(';')) {
    const [forRole, flags] = part.split(':', 2)
    if (forRole === role() && flags !== undefined) setFlagsFromString(flags)
  }
}

if (dir !== undefined) {
  applyV8Flags(process.env.BENCH_V8_FLAGS)
  start(dir)
  profileOnSignal(dir)
}
