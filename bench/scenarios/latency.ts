// End-to-end latency at a fixed rate: one publisher sends on a 1 ms schedule, each message
// carrying its send time (performance.now(), float64); one subscriber in this same process
// (same clock) records receive time minus send time.
//
// All targets are measured in the same stretch of time, in alternating 200 ms slices, rather
// than one after another: on a virtual machine the tail percentiles are made of pauses (a
// stolen CPU, a late wake-up) that come in spells of a fraction of a second to minutes, and one
// target measured during a bad spell and the next during a quiet one differed by 1.5x either
// way from round to round. With 1 s slices a bad second still fell on one target; with 200 ms
// ones the steal measured per target agrees within a point or two.
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks'
import { meanShare, startCpuMeter } from '../load/cpu-meter.js'
import { PublishTemplate, readSentAt } from '../load/publish-template.js'
import { percentiles } from '../load/stats.js'
import { pause, waitUntil } from '../load/wait.js'
import type { BenchClient } from '../load/bench-client.js'
import { interleave, type SlicedStream } from './interleave.js'
import { count } from '../format.js'
import type { CpuShare, InterleavedScenario, ScenarioContext, ScenarioOutcome, Transport } from './types.js'

// Sent before the recorded part: connection warm-up, JIT, first allocations. A freshly started
// Node broker's first seconds are not its steady state (optimising compiles, the heap growing
// through its first full collections): a cluster node at 2,000 msg/s took about 3 s to settle,
// and 0.5 s left those seconds in every p99. The same for every target.
const warmupMs = 3_000
const sliceMs = 200
const ranks = [50, 99, 99.9]

export function latency (id: string, transport: Transport): InterleavedScenario {
  const via = transport === 'ws' ? 'WebSocket' : 'TCP'
  return {
    id,
    title: `latency over ${via}`,
    metrics: (s) => ranks.map((rank) => ({ key: `${id}-p${rank}`, label: `latency over ${via} at ${count(s.latencyRate)} msg/s, p${rank} (ms)`, better: 'lower' as const, digits: 3 })),
    timeoutMs: (s) => warmupMs + s.latencyMs + 30_000,
    idleNeighboursMatter: true,
    runInterleaved: (contexts) => interleave(contexts, async (context) => await LatencyStream.open(context, id, transport), slicesFor(contexts))
  }
}

interface Slice {
  phase: string
  ms: number
  record: boolean
}

function slicesFor (contexts: ScenarioContext[]): Slice[] {
  const { latencyMs } = contexts[0]?.settings ?? { latencyMs: 0 }
  const warmupSlices = Math.max(1, Math.round(warmupMs / sliceMs))
  const slices = Math.max(1, Math.round(latencyMs / sliceMs))
  return [
    ...Array.from({ length: warmupSlices }, (_, i) => ({ phase: `warm-up ${i + 1}/${warmupSlices}`, ms: warmupMs / warmupSlices, record: false })),
    ...Array.from({ length: slices }, (_, i) => ({ phase: `slice ${i + 1}/${slices}`, ms: latencyMs / slices, record: true }))
  ]
}

/** One target's publisher and subscriber, and what they recorded over the slices. */
class LatencyStream implements SlicedStream<Slice> {
  private readonly samples: Float64Array
  private recorded = 0
  private recording = false
  private sent = 0
  private received = 0
  // The generator's own event-loop lag adds to every latency it records: the intervals between
  // the runs of its 1 ms send timer, while recording, in ns.
  private readonly loopDelay: RecordableHistogram = createHistogram()
  private readonly cpu: CpuShare[] = []

  private constructor (readonly context: ScenarioContext, private readonly id: string, private readonly publisher: BenchClient, subscriber: BenchClient, private readonly template: PublishTemplate) {
    const { latencyRate, latencyMs } = context.settings
    this.samples = new Float64Array(Math.round((latencyRate * latencyMs) / 1000))
    subscriber.onPublish = (buffer, payloadStart) => {
      this.received++
      const sentAt = readSentAt(buffer, payloadStart)
      if (this.recording && this.recorded < this.samples.length) this.samples[this.recorded++] = performance.now() - sentAt
    }
  }

  static async open (context: ScenarioContext, id: string, transport: Transport): Promise<LatencyStream> {
    const subscriber = await context.connect('subscriber', transport, `bench-${id}-sub`)
    const publisher = await context.connect('publisher', transport, `bench-${id}-pub`)
    await subscriber.subscribe('bench/latency', 0, 5_000)
    return new LatencyStream(context, id, publisher, subscriber, new PublishTemplate('bench/latency', context.settings.payloadBytes, 0, context.protocolVersion))
  }

  /** Sends at the fixed rate for the slice, then waits until everything sent has arrived. */
  async slice ({ ms, record }: Slice): Promise<void> {
    const { settings, signal } = this.context
    const rate = settings.latencyRate
    const total = Math.round((rate * ms) / 1000)
    this.recording = record
    const cpuMeter = record ? startCpuMeter(this.context.target) : null
    const startedAt = performance.now()
    let sent = 0
    let lastTick = startedAt
    // Every millisecond, send what the schedule says is due, stamped with the time it leaves.
    const timer = setInterval(() => {
      const now = performance.now()
      if (record) this.loopDelay.record(Math.max(1, Math.round((now - lastTick) * 1e6)))
      lastTick = now
      const due = Math.min(total, Math.floor(((now - startedAt) * rate) / 1000)) - sent
      if (due <= 0) return
      const batch = Buffer.allocUnsafe(this.template.length * due)
      for (let i = 0; i < due; i++) this.template.writeInto(batch, i * this.template.length, 0, now)
      this.publisher.send(batch)
      sent += due
      this.sent += due
      if (sent >= total) clearInterval(timer)
    }, 1)
    try {
      await pause(ms, signal)
      await waitUntil(() => sent >= total && this.received >= this.sent, { timeoutMs: 10_000, signal, progress: () => this.received, idleMs: 2_000 })
    } finally {
      clearInterval(timer)
    }
    if (cpuMeter !== null) this.cpu.push(cpuMeter())
  }

  outcome (): ScenarioOutcome {
    const values: Record<string, number> = {}
    percentiles(this.samples, this.recorded, ranks).forEach((ms, i) => { values[`${this.id}-p${ranks[i]}`] = ms })
    const notes = this.received < this.sent ? [`${this.sent - this.received} of ${this.sent} messages not received`] : []
    // The 1 ms timer fires every ~1.1 ms when the loop is free; later means the generator
    // itself was held up, and its samples carry that delay.
    const delayP99 = this.loopDelay.percentile(99) / 1e6
    if (delayP99 > 2) notes.push(`generator event loop delayed (p99 ${delayP99.toFixed(1)} ms, max ${(this.loopDelay.max / 1e6).toFixed(1)} ms): the tail percentiles include it`)
    const cpu = meanShare(this.cpu)
    return { values, notes, ...(cpu === null ? {} : { cpu }) }
  }
}
