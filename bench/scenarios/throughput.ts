// Fan-in and fan-out throughput: a Flood of pre-encoded PUBLISH batches, a warm-up, then
// measured slices in which the messages the subscribers receive are counted.
//
// All targets are measured in the same stretch of time, in alternating 500 ms slices (each
// target's flood paused while another's runs), rather than one after another: on this virtual
// machine the speed of the same broker drifted by up to 2x between runs a minute apart, so a
// ratio of two targets measured back to back said more about the minute than the brokers.
import { count } from '../format.js'
import { meanShare, startCpuMeter } from '../load/cpu-meter.js'
import { PublishTemplate, type QoS } from '../load/publish-template.js'
import { pause, waitUntil } from '../load/wait.js'
import { Flood } from './flood.js'
import { interleave, type SlicedStream } from './interleave.js'
import type { CpuShare, InterleavedScenario, ScenarioContext, ScenarioOutcome, Transport } from './types.js'

// Window sizes: large enough to keep every pipe full, small enough to bound broker queues.
export const qos0 = { batchMessages: 100, windowMessages: 20_000 }
const qos1 = { batchMessages: 50, windowMessages: 2_000, inflightPerPublisher: 100 }
const sliceMs = 500
// After a flood resumes, its pipes refill before the slice counts.
const rampMs = 100

export function fanIn (id: string, qos: QoS, transport: Transport): InterleavedScenario {
  const via = transport === 'ws' ? ' over WebSocket' : ''
  return {
    id,
    title: `fan-in QoS ${qos}${via}`,
    metrics: (s) => [{ key: id, label: `fan-in QoS ${qos}${via}, ${s.fanInPublishers} pub → 1 sub \`bench/#\` (msg/s)`, better: 'higher', digits: 0 }],
    timeoutMs: sliceTimeout,
    idleNeighboursMatter: false,
    runInterleaved: (contexts) => interleave(contexts, async (context) => {
      const { settings } = context
      const subscriber = await context.connect('subscriber', transport, `bench-${id}-sub`)
      let received = 0
      subscriber.onPublish = () => { received++ }
      await subscriber.subscribe('bench/#', qos, 5_000)
      const publishers = await Promise.all(Array.from({ length: settings.fanInPublishers }, async (_, i) => ({
        client: await context.connect('publisher', transport, `bench-${id}-pub-${i}`),
        template: new PublishTemplate(`bench/fan-in/${i}`, settings.payloadBytes, qos, context.protocolVersion)
      })))
      const flood = new Flood({ publishers, receivers: [subscriber], received: () => received, ...(qos === 0 ? qos0 : qos1) })
      return new FloodStream(context, id, flood, () => received, 1)
    }, slicesFor(contexts))
  }
}

export function fanOut (id: string): InterleavedScenario {
  return {
    id,
    title: 'fan-out QoS 0',
    metrics: (s) => [{ key: id, label: `fan-out QoS 0, 1 pub → ${s.fanOutSubscribers} subs (deliveries/s)`, better: 'higher', digits: 0 }],
    timeoutMs: sliceTimeout,
    idleNeighboursMatter: false,
    runInterleaved: (contexts) => interleave(contexts, async (context) => {
      const { settings } = context
      let deliveries = 0
      const subscribers = await Promise.all(Array.from({ length: settings.fanOutSubscribers }, async (_, i) => {
        const client = await context.connect('subscriber', 'tcp', `bench-${id}-sub-${i}`)
        client.onPublish = () => { deliveries++ }
        await client.subscribe('bench/fan-out', 0, 5_000)
        return client
      }))
      const publisher = {
        client: await context.connect('publisher', 'tcp', `bench-${id}-pub`),
        template: new PublishTemplate('bench/fan-out', settings.payloadBytes, 0, context.protocolVersion)
      }
      const perMessage = subscribers.length
      // Each message is 100 deliveries: a smaller window keeps the same bytes in flight.
      const flood = new Flood({
        publishers: [publisher],
        receivers: subscribers,
        received: () => deliveries / perMessage,
        batchMessages: 20,
        windowMessages: 2_000
      })
      return new FloodStream(context, id, flood, () => deliveries, perMessage)
    }, slicesFor(contexts))
  }
}

/** Per target: its warm-up, its slices with their pauses and drains, and a margin. */
export function sliceTimeout (s: { warmupMs: number, measureMs: number }): number {
  return s.warmupMs + 2 * s.measureMs + 40_000
}

export function slicesFor (contexts: ScenarioContext[]): Slice[] {
  const { warmupMs, measureMs } = contexts[0]?.settings ?? { warmupMs: 0, measureMs: 0 }
  // A target measured on its own has no one to alternate with: its window follows its warm-up
  // without a pause.
  if (contexts.length === 1) return [{ phase: 'measuring', rampMs: warmupMs, ms: measureMs, record: true }]
  const count = Math.max(1, Math.round(measureMs / sliceMs))
  return [
    { phase: 'warm-up', rampMs, ms: warmupMs, record: false },
    ...Array.from({ length: count }, (_, i) => ({ phase: `slice ${i + 1}/${count}`, rampMs, ms: sliceMs, record: true }))
  ]
}

export interface Slice {
  phase: string
  /** Flooding before the window counts. */
  rampMs: number
  ms: number
  record: boolean
}

/** One target's flood and what it delivered in the measured slices. */
export class FloodStream implements SlicedStream<Slice> {
  private counted = 0
  private measuredMs = 0
  private readonly cpu: CpuShare[] = []

  constructor (readonly context: ScenarioContext, private readonly key: string, private readonly flood: Flood,
    private readonly deliveries: () => number, private readonly perMessage: number) {}

  /** Runs the flood for the slice's ramp and window, then lets what is in flight arrive. */
  async slice ({ rampMs, ms, record }: Slice): Promise<void> {
    const { signal } = this.context
    this.flood.start()
    try {
      await pause(rampMs, signal)
      const cpuMeter = record ? startCpuMeter(this.context.target) : null
      const startCount = this.deliveries()
      const startedAt = performance.now()
      await pause(ms, signal)
      if (record) {
        this.counted += this.deliveries() - startCount
        this.measuredMs += performance.now() - startedAt
      }
      if (cpuMeter !== null) this.cpu.push(cpuMeter())
    } finally {
      this.flood.stop()
    }
    // the next target's slice starts on a quiet machine: this one's queues empty first
    // (what the flood wrote off as lost after a stall never comes)
    const expected = (this.flood.sent - this.flood.writtenOff) * this.perMessage
    await waitUntil(() => this.deliveries() >= expected, { timeoutMs: 10_000, signal, progress: this.deliveries, idleMs: 300 })
    await untilIdle(this.context, 10_000)
  }

  outcome (): ScenarioOutcome {
    const notes: string[] = []
    const expected = this.flood.sent * this.perMessage
    const lost = expected - this.deliveries()
    if (lost > 0) notes.push(`${formatShare(lost, expected)} of ${count(expected)} deliveries not received`)
    if (this.flood.stalls > 0) notes.push(`${this.flood.stalls} stall(s): nothing received for 500 ms with messages outstanding`)
    const cpu = meanShare(this.cpu)
    return { values: { [this.key]: (this.counted * 1000) / this.measuredMs }, notes, ...(cpu === null ? {} : { cpu }) }
  }
}

// A broker process above this share of a core is still working off what its slice sent.
const busyPercent = 10

/**
 * Waits until the target's processes have gone idle: one still working off a backlog would do
 * it in the other targets' slices (the stock `mqemitter-redis` emitter, seconds behind after a
 * fan-in burst, took 39% of a core beside the single node before it was measured alone).
 */
async function untilIdle (context: ScenarioContext, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    const meter = startCpuMeter(context.target)
    await pause(100, context.signal)
    if (meter().broker < busyPercent) return
  }
}

function formatShare (part: number, whole: number): string {
  return `${((part / whole) * 100).toPrecision(2)}%`
}
