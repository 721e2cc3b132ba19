// A reconnect storm: three nodes on Redis hold N persistent-session clients (30,000 by
// default, --storm), each with a QoS 1 subscription, while QoS 1 messages flow to them; one
// node is killed (SIGKILL) and its clients come back to the two others at once, with jittered
// backoff. Reports the time until every session is resumed, the survivors' and Redis' CPU
// meanwhile, acknowledged QoS 1 messages lost (must be 0), sessions resumed twice or without
// their session, CONNECTs refused as server busy (limits.maxConcurrentConnects), and the p99
// of the clients that stayed connected, during the storm.
import { fileURLToPath } from 'node:url'
import { startCpuMeter } from '../load/cpu-meter.js'
import { percentiles } from '../load/stats.js'
import { forkGenerator, generatorAddress, stopGenerators, type GeneratorProcess } from '../load/generator-process.js'
import type { StormReply, StormReport, StormRequest } from '../load/storm-process.js'
import { pause } from '../load/wait.js'
import { count } from '../format.js'
import { aedesStormTargetName, stormTargetName } from '../targets.js'
import type { Scenario, ScenarioContext } from './types.js'

const stormProcessPath = fileURLToPath(new URL('../load/storm-process.js', import.meta.url))
// sessions per generator process (one open file each, under the 20,000 here)
const perGenerator = 10_000
const keepaliveS = 60
const connectConcurrency = 100
// QoS 1 messages per second to the sessions, in all
const publishRatePerS = 300
// every session back, at the latest
const stormLimitMs = 180_000

type StormGenerator = GeneratorProcess<StormRequest, StormReply>

async function reports (generators: StormGenerator[]): Promise<StormReport[]> {
  return (await Promise.all(generators.map((g) => g.ask({ type: 'report' }, 'report')))).filter((r): r is StormReport => r.type === 'report')
}

const sum = (list: StormReport[], pick: (r: StormReport) => number): number => list.reduce((total, r) => total + pick(r), 0)

export function storm (id: string): Scenario {
  return {
    id,
    title: 'reconnect storm: one node of three killed',
    targets: [stormTargetName, aedesStormTargetName],
    metrics: (s) => [
      { key: `${id}-rate`, label: `storm: ${count(s.stormClients)} persistent sessions connect, QoS 1 subscription each (connections/s)`, better: 'higher', digits: 0 },
      { key: `${id}-resume`, label: 'storm: one node SIGKILLed: until every session of it resumed (s)', better: 'lower', digits: 1 },
      { key: `${id}-survivors-cpu`, label: 'storm: the two survivors\' CPU meanwhile (% of a core, both)', better: 'lower', digits: 0 },
      { key: `${id}-redis-cpu`, label: 'storm: Redis\' CPU meanwhile (% of a core)', better: 'lower', digits: 0 },
      { key: `${id}-live-p99`, label: 'storm: p99 of the clients that stayed connected, meanwhile (ms)', better: 'lower', digits: 1 },
      { key: `${id}-lost`, label: 'storm: acknowledged QoS 1 messages lost', better: 'lower', digits: 0 },
      { key: `${id}-twice`, label: 'storm: sessions resumed twice', better: 'lower', digits: 0 },
      { key: `${id}-session-lost`, label: 'storm: sessions resumed without their session (Session Present 0)', better: 'lower', digits: 0 },
      { key: `${id}-busy`, label: 'storm: CONNECTs refused as server busy (limits.maxConcurrentConnects)', better: 'lower', digits: 0 }
    ],
    timeoutMs: (s) => 180_000 + s.stormClients * 12 + stormLimitMs,
    run: async (context: ScenarioContext) => {
      const { settings, signal, target } = context
      const nodes = target.nodes ?? []
      const victim = nodes[2]
      if (victim === undefined) throw new Error('the storm needs a target of three nodes')
      const survivors = nodes.filter((node) => node !== victim)
      const redisPid = target.pids[target.pids.length - 1] as number
      const total = settings.stormClients
      // Each generator process holds the clients of one node: the clients that stay connected
      // are measured in processes of their own, not on an event loop that is also reconnecting
      // the killed node's thousands (which stalled it 0.2-0.9 s, every client's latency with it)
      const generatorCount = nodes.length * Math.ceil(total / (perGenerator * nodes.length))
      // on every CPU, as the nodes are: forked from the harness they would all share its one CPU,
      // and the live clients' processes would wait there for the reconnecting one (as the
      // fleet's did, docs/performance.md)
      const generators = Array.from({ length: generatorCount }, (_, i) => forkGenerator<StormRequest, StormReply>(stormProcessPath, i, { everyCpu: true }))
      const notes: string[] = []
      try {
        const progress = new Map<number, number>()
        const startedAt = performance.now()
        const started = await Promise.all(generators.map((generator, g) => {
          const share = Math.floor(total / generatorCount) + (g < total % generatorCount ? 1 : 0)
          return generator.ask({
            type: 'start',
            ports: nodes.map((n) => n.mqttPort),
            homePort: (nodes[g % nodes.length] as (typeof nodes)[number]).mqttPort,
            publisherPorts: survivors.map((n) => n.mqttPort),
            localAddress: generatorAddress(g),
            prefix: `storm-${g}-`,
            first: 0,
            count: share,
            keepaliveS,
            concurrency: connectConcurrency
          }, 'started', (reply) => {
            if (reply.type !== 'progress') return
            progress.set(g, reply.connected)
            context.status(`${count([...progress.values()].reduce((a, b) => a + b, 0))}/${count(total)} sessions connected`)
          })
        }))
        const connected = started.reduce((n, r) => n + (r.type === 'started' ? r.connected : 0), 0)
        const rate = connected / ((performance.now() - startedAt) / 1000)
        for (const r of started) if (r.type === 'started' && r.failed > 0) notes.push(`${r.failed} sessions did not connect (first: ${r.firstError ?? '?'})`)

        context.status(`${count(connected)} sessions: QoS 1 messages flowing`)
        for (const generator of generators) generator.tell({ type: 'publish', ratePerS: publishRatePerS / generatorCount })
        await pause(5_000, signal)
        // the live latencies from here on are the storm's; those before, for comparison
        const before = Float64Array.from((await reports(generators)).flatMap((r) => r.liveLatenciesMs))
        const [beforeP50 = NaN, beforeP99 = NaN] = percentiles(before, before.length, [50, 99])
        notes.push(`before the kill (5 s): ${count(before.length)} deliveries, p50 ${beforeP50.toFixed(1)} ms, p99 ${beforeP99.toFixed(1)} ms`)

        const cpuMeter = startCpuMeter({ pids: [...survivors.map((n) => n.pid), redisPid], processes: [...survivors.map((n, i) => ({ name: `survivor ${i}`, pid: n.pid })), { name: 'redis', pid: redisPid }] })
        for (const generator of generators) generator.tell({ type: 'node-killed', port: victim.mqttPort })
        process.kill(victim.pid, 'SIGKILL')
        const killedAt = performance.now()
        let during: StormReport[] = []
        const liveLatencies: number[] = []
        for (;;) {
          await pause(1_000, signal)
          during = await reports(generators)
          for (const r of during) liveLatencies.push(...r.liveLatenciesMs)
          const dropped = sum(during, (r) => r.dropped)
          const resumed = sum(during, (r) => r.resumed)
          context.status(`node killed ${((performance.now() - killedAt) / 1000).toFixed(0)} s ago: ${count(resumed)}/${count(dropped)} sessions resumed, ${count(sum(during, (r) => r.refusedAttempts))} refused as busy`)
          if (dropped > 0 && resumed === dropped) break
          if (performance.now() - killedAt > stormLimitMs) {
            notes.push(`${count(dropped - resumed)} sessions not resumed after ${stormLimitMs / 1000} s`)
            break
          }
        }
        const cpu = cpuMeter()
        const resumeS = Math.max(...during.map((r) => r.lastResumeMs)) / 1000

        // the messages published during the storm reach their resumed sessions, then the count
        await pause(2_000, signal)
        for (const generator of generators) generator.tell({ type: 'stop-publishing' })
        context.status('publishing stopped: waiting for the last deliveries')
        await pause(5_000, signal)
        const final = await reports(generators)
        const samples = Float64Array.from(liveLatencies)
        const [p50 = NaN, p90 = NaN, p99 = NaN] = percentiles(samples, samples.length, [50, 90, 99])
        notes.push(`clients that stayed connected, during the storm: ${count(samples.length)} deliveries, p50 ${p50.toFixed(1)} ms, p90 ${p90.toFixed(1)} ms, max ${(samples[samples.length - 1] ?? NaN).toFixed(1)} ms`)
        const share = (name: string): number => cpu.processes?.filter((p) => p.name.startsWith(name)).reduce((total, p) => total + p.share, 0) ?? NaN
        notes.push(`${count(sum(final, (r) => r.dropped))} sessions dropped with the node; ${count(sum(final, (r) => r.acknowledged))} QoS 1 messages acknowledged to the publishers, ${count(sum(final, (r) => r.received))} of them received; ${count(sum(final, (r) => r.failedAttempts))} reconnect attempts failed (refused, reset) before a node took them`)
        notes.push(`${generators.length} generator processes on 127.0.0.2-${generators.length + 1}; the generator balances its clients itself (a proxy needs two open files per client: 60,000 for 30,000 clients, over the 20,000 a process may open here)`)
        return {
          values: {
            [`${id}-rate`]: rate,
            [`${id}-resume`]: resumeS,
            [`${id}-survivors-cpu`]: share('survivor'),
            [`${id}-redis-cpu`]: share('redis'),
            [`${id}-live-p99`]: p99,
            [`${id}-lost`]: sum(final, (r) => r.lost),
            [`${id}-twice`]: sum(final, (r) => r.resumedTwice),
            [`${id}-session-lost`]: sum(final, (r) => r.sessionLost),
            [`${id}-busy`]: sum(final, (r) => r.refusedAttempts)
          },
          notes,
          cpu
        }
      } finally {
        await stopGenerators(generators)
      }
    }
  }
}
