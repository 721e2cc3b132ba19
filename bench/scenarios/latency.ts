// End-to-end latency at a fixed rate: one publisher sends on a 1 ms schedule, each message
// carrying its send time (performance.now(), float64); one subscriber in this same process
// (same clock) records receive time minus send time.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { startCpuMeter } from '../load/cpu-meter.js'
import { PublishTemplate, readSentAt } from '../load/publish-template.js'
import { percentiles } from '../load/stats.js'
import { pause, waitUntil } from '../load/wait.js'
import { count } from '../format.js'
import type { Scenario, Transport } from './types.js'

// Sent before the recorded part: connection warm-up, JIT, first allocations. A freshly started
// Node broker's first seconds are not its steady state (optimising compiles, the heap growing
// through its first full collections): a cluster node at 2,000 msg/s took about 3 s to settle,
// and 0.5 s left those seconds in every p99. The same for every target.
const warmupMs = 3_000
const ranks = [50, 99, 99.9]

export function latency (id: string, transport: Transport): Scenario {
  const via = transport === 'ws' ? 'WebSocket' : 'TCP'
  return {
    id,
    title: `latency over ${via}`,
    metrics: (s) => ranks.map((rank) => ({ key: `${id}-p${rank}`, label: `latency over ${via} at ${count(s.latencyRate)} msg/s, p${rank} (ms)`, better: 'lower' as const, digits: 3 })),
    timeoutMs: (s) => warmupMs + s.latencyMs + 30_000,
    run: async (context) => {
      const { settings, signal } = context
      context.status('connecting')
      const subscriber = await context.connect('subscriber', transport, `bench-${id}-sub`)
      const publisher = await context.connect('publisher', transport, `bench-${id}-pub`)
      await subscriber.subscribe('bench/latency', 0, 5_000)
      const template = new PublishTemplate('bench/latency', settings.payloadBytes, 0)

      const rate = settings.latencyRate
      const total = Math.round((rate * (warmupMs + settings.latencyMs)) / 1000)
      const samples = new Float64Array(total)
      let recorded = 0
      let received = 0
      const startedAt = performance.now()
      const recordFrom = startedAt + warmupMs
      subscriber.onPublish = (buffer, payloadStart) => {
        received++
        const sentAt = readSentAt(buffer, payloadStart)
        if (sentAt >= recordFrom && recorded < total) samples[recorded++] = performance.now() - sentAt
      }

      context.status('measuring')
      // The generator's own event-loop lag adds to every latency it records: watch it.
      const loopDelay = monitorEventLoopDelay({ resolution: 1 })
      loopDelay.enable()
      const cpuMeter = startCpuMeter(context.target)
      let sent = 0
      // Every millisecond, send what the schedule says is due, stamped with the time it leaves.
      const timer = setInterval(() => {
        const now = performance.now()
        const due = Math.min(total, Math.floor(((now - startedAt) * rate) / 1000)) - sent
        if (due <= 0) return
        const batch = Buffer.allocUnsafe(template.length * due)
        for (let i = 0; i < due; i++) template.writeInto(batch, i * template.length, 0, now)
        publisher.send(batch)
        sent += due
        if (sent >= total) clearInterval(timer)
      }, 1)
      try {
        await pause(warmupMs + settings.latencyMs, signal)
        await waitUntil(() => sent >= total && received >= sent, { timeoutMs: 10_000, signal, progress: () => received, idleMs: 2_000 })
      } finally {
        clearInterval(timer)
        loopDelay.disable()
      }
      const cpu = cpuMeter()

      const values: Record<string, number> = {}
      percentiles(samples, recorded, ranks).forEach((ms, i) => { values[`${id}-p${ranks[i]}`] = ms })
      const notes = received < sent ? [`${sent - received} of ${sent} messages not received`] : []
      // The monitor's 1 ms timer fires every ~1.1 ms when the loop is free; later means the
      // generator itself was held up, and its samples carry that delay.
      const delayP99 = loopDelay.percentile(99) / 1e6
      if (delayP99 > 2) notes.push(`generator event loop delayed (p99 ${delayP99.toFixed(1)} ms, max ${(loopDelay.max / 1e6).toFixed(1)} ms): the tail percentiles include it`)
      return { values, notes, cpu }
    }
  }
}
