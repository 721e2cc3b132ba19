// Lines up the per-second samples of a run's processes (bench/load/timeline.ts) by second:
// `node dist/bench/load/timeline-report.js <dir> [--from unix-second] [--to unix-second]`.
// One row a second: the latencies timed in it (all generators), and per role the CPU (% of a
// core, summed), the worst event-loop delay and GC pauses (ms), the generators' pings sent.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { TimelineSample } from './timeline.js'

const { positionals, values } = parseArgs({ allowPositionals: true, options: { from: { type: 'string' }, to: { type: 'string' }, latency: { type: 'boolean', default: false } } })
const dir = positionals[0]
if (dir === undefined) throw new Error('usage: timeline-report <dir> [--from s] [--to s] [--latency: only seconds with latencies]')

const samples: TimelineSample[] = readdirSync(dir).filter((f) => f.endsWith('.jsonl'))
  .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as TimelineSample))
const bySecond = new Map<number, TimelineSample[]>()
for (const sample of samples) {
  const list = bySecond.get(sample.t) ?? []
  list.push(sample)
  bySecond.set(sample.t, list)
}
// the broker processes: a fleet's workers, or the storm's nodes (each a primary of its own)
const brokerRole = samples.some((s) => s.role === 'worker') ? 'worker' : 'primary'
const seconds = [...bySecond.keys()].sort((a, b) => a - b)
  .filter((t) => (values.from === undefined || t >= Number(values.from)) && (values.to === undefined || t <= Number(values.to)))
  .filter((t) => !values.latency || (bySecond.get(t) ?? []).some((s) => s.latency !== undefined))

const fixed = (n: number, digits = 0): string => n.toFixed(digits)
const header = ['t', 'lat n', 'p50', 'p99', 'max', 'W cpu%', 'W loop', 'W major', 'W minor(max)', 'W incr', 'W heap', 'G cpu%', 'G loop', 'G minor(max)', 'pings', 'H loop', 'other%']
console.log(header.join('\t'))
for (const t of seconds) {
  const list = bySecond.get(t) ?? []
  const of = (role: string): TimelineSample[] => list.filter((s) => s.role === role)
  const workers = of(brokerRole)
  const generators = of('generator')
  const timed = generators.flatMap((s) => s.latency === undefined ? [] : [s.latency])
  const n = timed.reduce((sum, l) => sum + l[0], 0)
  // per-generator percentiles, weighted by count: close enough to spot a bad second
  const weighted = (i: 1 | 2): number => n === 0 ? NaN : timed.reduce((sum, l) => sum + l[i] * l[0], 0) / n
  const sum = (xs: TimelineSample[], pick: (s: TimelineSample) => number): number => xs.reduce((a, s) => a + pick(s), 0)
  const max = (xs: TimelineSample[], pick: (s: TimelineSample) => number): number => xs.reduce((a, s) => Math.max(a, pick(s)), 0)
  console.log([
    t, n, fixed(weighted(1), 1), fixed(weighted(2), 1), fixed(Math.max(0, ...timed.map((l) => l[3])), 1),
    fixed(sum(workers, (s) => s.cpuMs) / 10), fixed(max(workers, (s) => s.loopMaxMs)),
    `${fixed(sum(workers, (s) => s.gc.major[0]))}/${fixed(max(workers, (s) => s.gc.major[2]))}`,
    `${fixed(sum(workers, (s) => s.gc.minor[0]))}(${fixed(max(workers, (s) => s.gc.minor[2]))})`,
    fixed(sum(workers, (s) => s.gc.incremental[0])),
    fixed(sum(workers, (s) => s.heapUsedMiB)),
    fixed(sum(generators, (s) => s.cpuMs) / 10), fixed(max(generators, (s) => s.loopMaxMs)),
    `${fixed(sum(generators, (s) => s.gc.minor[0]))}(${fixed(max(generators, (s) => s.gc.minor[2]))})`,
    sum(generators, (s) => s.counters.pings ?? 0),
    fixed(max(of('harness'), (s) => s.loopMaxMs)),
    // the machine's busy time less every sampled process's: other engineers' work, Redis, the kernel
    fixed((sum(of('harness'), (s) => s.machineBusyMs ?? 0) - sum(list, (s) => s.cpuMs)) / 10)
  ].join('\t'))
}
