// A fleet at the next order of magnitude: N idle connections (100,000 by default) from a load
// generator of several processes, each on its own loopback source address (127.0.0.2, .3, ...:
// one address has about 28,000 ephemeral ports towards one broker port, one process here at
// most 20,000 open files). Reports the connect rate, RSS per connection over every process of
// the target (workers, primary, Redis), heap per connection (the broker's own metrics, each
// worker's), CPU while idle (keepalive traffic only, 60 s keepalives), then the mixed load: 1%
// of the clients publish a location every second, 5% follow one of them, p50/p99 latency.
import { fileURLToPath } from 'node:url'
import { startCpuMeter } from '../load/cpu-meter.js'
import type { FleetConnectRequest, FleetReply, FleetRequest } from '../load/fleet-process.js'
import { forkGenerator, generatorAddress, stopGenerators, type GeneratorProcess } from '../load/generator-process.js'
import { pause } from '../load/wait.js'
import { valuePerWorker } from '../load/worker-metrics.js'
import { percentiles } from '../load/stats.js'
import { count } from '../format.js'
import { perProcessConnections } from '../options.js'
import { rssKiB } from '../process.js'
import { aedesWorkersTargetName, fleetTargetName, type RunningTarget } from '../targets.js'
import type { Scenario, ScenarioContext } from './types.js'

const fleetProcessPath = fileURLToPath(new URL('../load/fleet-process.js', import.meta.url))
const gcOnSignalPath = fileURLToPath(new URL('../load/gc-on-signal.js', import.meta.url))
// connections per generator process: under its open-files limit, and under the ~28,000
// ephemeral ports of its source address; as few processes as that allows, since every one of
// them shares the two cores with the workers
const perGenerator = Math.min(19_000, perProcessConnections())
const keepaliveS = 60
// CONNECTs in flight per generator process
const connectConcurrency = 100
// Publishing before the mixed load's measured window: the 5% subscribe all at once (5,000 at
// 100,000) just before it, and every worker digests the burst (the other workers' route
// notices; the new subscriptions' state copied and promoted by young-generation collections,
// 100-280 ms of them per second over the workers) for about a second: event loops 270-400 ms
// late then, 15-45 ms after (per-second timelines at 60,000, docs/performance.md). A dashboard
// fleet does not subscribe within one second; the burst's latencies are reported apart.
const mixedWarmUpMs = 3_000

interface Generator extends GeneratorProcess<FleetRequest, FleetReply> {
  localAddress: string
  /** The share of the fleet this process holds. */
  count: number
  first: number
}

function startGenerator (index: number, first: number, share: number): Generator {
  // on every CPU, as the workers of the fleet's target are: pinned with the harness, they all
  // shared one core with half the workers (docs/performance.md)
  return { ...forkGenerator<FleetRequest, FleetReply>(fleetProcessPath, index, { everyCpu: true }), localAddress: generatorAddress(index), count: share, first }
}

/** The V8 heap used by every worker of a node of this project (its metrics); NaN for other brokers. */
async function heapUsedBytes (target: RunningTarget): Promise<number> {
  if (target.httpBase === undefined) return NaN
  const workers = target.workers ?? 1
  const byNode = await valuePerWorker(target.httpBase, 'realtime_broker_nodejs_heap_size_used_bytes', workers)
  return byNode.size < workers ? NaN : [...byNode.values()].reduce((sum, bytes) => sum + bytes, 0)
}

// RSS is read after a full collection in every Node process of the target (gc-on-signal.ts),
// once it stops moving, bounded in time (as in connections.ts): the steady state of the
// connections held, not the garbage of the last CONNECTs, which the GC's timing decides
async function settledRss (target: RunningTarget, signal: AbortSignal): Promise<number> {
  for (const pid of target.pids) process.kill(pid, 'SIGURG')
  await pause(2_000, signal)
  const read = (): number => target.pids.reduce((sum, pid) => sum + rssKiB(pid), 0)
  let previous = read()
  for (let waited = 0; waited < 15_000; waited += 1_000) {
    await pause(1_000, signal)
    const now = read()
    if (Math.abs(now - previous) <= previous * 0.005) return now
    previous = now
  }
  return previous
}

export function fleet (id: string): Scenario {
  return {
    id,
    title: 'fleet: idle connections through workers, and a mixed load',
    targets: [fleetTargetName, aedesWorkersTargetName, 'aedes'],
    metrics: (s) => [
      { key: `${id}-count`, label: `fleet: idle connections held (of ${count(s.fleetConnections)}; a single process holds at most ${count(perProcessConnections())})`, better: 'higher', digits: 0 },
      { key: `${id}-rate`, label: 'fleet: connect rate (connections/s)', better: 'higher', digits: 0 },
      { key: `${id}-rss`, label: 'fleet: RSS per idle connection, every process of the target, half → all, after a full GC (KiB)', better: 'lower', digits: 2 },
      { key: `${id}-heap`, label: 'fleet: V8 heap used per idle connection, half → all, after a full GC (KiB)', better: 'lower', digits: 2 },
      { key: `${id}-idle-cpu`, label: `fleet: CPU while idle, ${keepaliveS} s keepalives (% of a core)`, better: 'lower', digits: 1 },
      { key: `${id}-mixed-p50`, label: 'fleet mixed: 1% publish every second, 5% subscribe: p50 (ms)', better: 'lower', digits: 2 },
      { key: `${id}-mixed-p99`, label: 'fleet mixed: p99 (ms)', better: 'lower', digits: 2 }
    ],
    timeoutMs: (s) => 180_000 + s.fleetConnections * 8 + s.fleetIdleMs + mixedWarmUpMs + s.fleetMixedMs,
    nodeArgs: ['--expose-gc', '--import', gcOnSignalPath],
    run: async (context: ScenarioContext) => {
      const { settings, signal, target } = context
      const total = Math.min(settings.fleetConnections, target.connectionCapacity ?? perProcessConnections())
      const generatorCount = Math.ceil(total / perGenerator)
      const generators: Generator[] = []
      for (let i = 0, first = 0; i < generatorCount; i++) {
        const share = Math.floor(total / generatorCount) + (i < total % generatorCount ? 1 : 0)
        generators.push(startGenerator(i, first, share))
        first += share
      }
      const notes: string[] = []
      try {
        const credentials = target.credentials?.('fleet') ?? {}
        const progress = new Map<number, number>()
        // each generator connects [from, to) of its share; resolves with how many connected
        const connectShares = async (from: number, to: number): Promise<number> => {
          const replies = await Promise.all(generators.map((generator, g) => {
            const start = Math.floor(generator.count * from)
            const end = Math.floor(generator.count * to)
            const message: FleetConnectRequest = {
              type: 'connect',
              port: target.publish.mqttPort,
              localAddress: generator.localAddress,
              prefix: 'fleet-',
              first: generator.first + start,
              count: end - start,
              keepaliveS,
              concurrency: connectConcurrency,
              ...credentials
            }
            return generator.ask(message, 'connected', (reply) => {
              if (reply.type !== 'progress') return
              progress.set(g, reply.connected)
              context.status(`${count([...progress.values()].reduce((a, b) => a + b, 0))}/${count(total)} connected`)
            })
          }))
          for (const reply of replies) {
            if (reply.type !== 'connected') continue
            if (reply.failed > 0) notes.push(`${reply.failed} connections failed (first: ${reply.firstError ?? '?'})`)
          }
          return replies.reduce((sum, r) => sum + (r.type === 'connected' ? r.connected : 0), 0)
        }
        const half = 0.5
        const startedAt = performance.now()
        const atHalf = await connectShares(0, half)
        const firstMs = performance.now() - startedAt
        context.status(`${count(atHalf)} connected, waiting for RSS to settle`)
        const rssHalf = await settledRss(target, signal)
        const heapHalf = await heapUsedBytes(target)
        const secondStartedAt = performance.now()
        const connected = atHalf + await connectShares(half, 1)
        const rate = connected / ((firstMs + performance.now() - secondStartedAt) / 1000)
        context.status(`${count(connected)} connected, waiting for RSS to settle`)
        const rssAll = await settledRss(target, signal)
        const heapAll = await heapUsedBytes(target)
        const added = connected - atHalf

        context.status(`${count(connected)} idle: measuring CPU for ${settings.fleetIdleMs / 1000} s`)
        const cpuMeter = startCpuMeter(target)
        await pause(settings.fleetIdleMs, signal)
        const idleCpu = cpuMeter()

        context.status(`mixed load for ${(mixedWarmUpMs + settings.fleetMixedMs) / 1000} s (the first ${mixedWarmUpMs / 1000} not measured)`)
        const mixedCpuMeter = startCpuMeter(target)
        const mixed = await Promise.all(generators.map((generator) => generator.ask({
          type: 'mixed',
          publishers: Math.max(1, Math.round(generator.count * 0.01)),
          subscribers: Math.max(1, Math.round(generator.count * 0.05)),
          warmUpMs: mixedWarmUpMs,
          durationMs: settings.fleetMixedMs
        }, 'mixed-done')))
        const mixedCpu = mixedCpuMeter()
        const done = mixed.flatMap((r) => r.type === 'mixed-done' ? [r] : [])
        notes.push(`mixed load: CPU (% of a core) ${(mixedCpu.processes ?? []).map((p) => `${p.name} ${p.share.toFixed(0)}`).join(', ')}, everything else (the generator processes included) ${mixedCpu.other.toFixed(0)}; the generators' own event-loop delay: p99 ${Math.max(...done.map((r) => r.loopDelayP99Ms)).toFixed(1)} ms, max ${Math.max(...done.map((r) => r.loopDelayMaxMs)).toFixed(1)} ms (worst process)`)
        if (target.httpBase !== undefined) {
          // prom-client's histogram since the heap scrape: the idle window and the mixed load
          const lagMax = await valuePerWorker(target.httpBase, 'realtime_broker_nodejs_eventloop_lag_max_seconds', target.workers ?? 1)
          notes.push(`the workers' event-loop delay since connecting, longest (the monitor's resolution included): ${[...lagMax.values()].map((s) => (s * 1000).toFixed(0)).join(', ')} ms`)
        }
        const latencies = mixed.flatMap((r) => r.type === 'mixed-done' ? r.latenciesMs : [])
        const sent = mixed.reduce((sum, r) => sum + (r.type === 'mixed-done' ? r.sent : 0), 0)
        const closed = mixed.reduce((sum, r) => sum + (r.type === 'mixed-done' ? r.closed : 0), 0)
        const samples = Float64Array.from(latencies)
        const [p50 = NaN, p99 = NaN] = percentiles(samples, samples.length, [50, 99])
        const warmUp = Float64Array.from(mixed.flatMap((r) => r.type === 'mixed-done' ? r.warmUpLatenciesMs : []))
        const [warmUpP50 = NaN, warmUpP99 = NaN] = percentiles(warmUp, warmUp.length, [50, 99])
        notes.push(`mixed load: the ${mixedWarmUpMs / 1000} s after the subscriptions, not measured: p50 ${warmUpP50.toFixed(1)} ms, p99 ${warmUpP99.toFixed(1)} ms, ${count(warmUp.length)} deliveries`)
        notes.push(`mixed load: ${count(sent)} locations published, ${count(latencies.length)} deliveries timed (5 followers each)${closed > 0 ? `; ${closed} connections closed meanwhile` : ''}`)
        const generatorRss = await Promise.all(generators.map((g) => g.ask({ type: 'usage' }, 'usage')))
        notes.push(`${generators.length} load generator processes on 127.0.0.2-${generators.length + 1}, ${count(generatorRss.reduce((sum, r) => sum + (r.type === 'usage' ? r.rssKiB : 0), 0) / 1024)} MiB RSS in all`)
        return {
          values: {
            [`${id}-count`]: connected,
            [`${id}-rate`]: rate,
            [`${id}-rss`]: (rssAll - rssHalf) / added,
            [`${id}-heap`]: (heapAll - heapHalf) / 1024 / added,
            [`${id}-idle-cpu`]: idleCpu.broker,
            [`${id}-mixed-p50`]: p50,
            [`${id}-mixed-p99`]: p99
          },
          notes,
          cpu: idleCpu
        }
      } finally {
        await stopGenerators(generators)
      }
    }
  }
}

