// Fan-in and fan-out throughput: a Flood of pre-encoded PUBLISH batches, a warm-up, then a
// measured window in which the messages the subscribers receive are counted.
import { count } from '../format.js'
import { startCpuMeter } from '../load/cpu-meter.js'
import { PublishTemplate, type QoS } from '../load/publish-template.js'
import { pause, waitUntil } from '../load/wait.js'
import { Flood } from './flood.js'
import type { CpuShare, Scenario, ScenarioContext, ScenarioOutcome, Transport } from './types.js'

// Window sizes: large enough to keep every pipe full, small enough to bound broker queues.
const qos0 = { batchMessages: 100, windowMessages: 20_000 }
const qos1 = { batchMessages: 50, windowMessages: 2_000, inflightPerPublisher: 100 }

export function fanIn (id: string, qos: QoS, transport: Transport): Scenario {
  const via = transport === 'ws' ? ' over WebSocket' : ''
  return {
    id,
    title: `fan-in QoS ${qos}${via}`,
    metrics: (s) => [{ key: id, label: `fan-in QoS ${qos}${via}, ${s.fanInPublishers} pub → 1 sub \`bench/#\` (msg/s)`, better: 'higher', digits: 0 }],
    timeoutMs: (s) => s.warmupMs + s.measureMs + 40_000,
    run: async (context) => {
      const { settings } = context
      context.status('connecting')
      const subscriber = await context.connect('subscriber', transport, `bench-${id}-sub`)
      let received = 0
      subscriber.onPublish = () => { received++ }
      await subscriber.subscribe('bench/#', qos, 5_000)
      const publishers = await Promise.all(Array.from({ length: settings.fanInPublishers }, async (_, i) => ({
        client: await context.connect('publisher', transport, `bench-${id}-pub-${i}`),
        template: new PublishTemplate(`bench/fan-in/${i}`, settings.payloadBytes, qos)
      })))
      const flood = new Flood({ publishers, receivers: [subscriber], received: () => received, ...(qos === 0 ? qos0 : qos1) })
      return await measure(context, flood, () => received, 1, id)
    }
  }
}

export function fanOut (id: string): Scenario {
  return {
    id,
    title: 'fan-out QoS 0',
    metrics: (s) => [{ key: id, label: `fan-out QoS 0, 1 pub → ${s.fanOutSubscribers} subs (deliveries/s)`, better: 'higher', digits: 0 }],
    timeoutMs: (s) => s.warmupMs + s.measureMs + 40_000,
    run: async (context) => {
      const { settings } = context
      context.status('connecting')
      let deliveries = 0
      const subscribers = await Promise.all(Array.from({ length: settings.fanOutSubscribers }, async (_, i) => {
        const client = await context.connect('subscriber', 'tcp', `bench-${id}-sub-${i}`)
        client.onPublish = () => { deliveries++ }
        await client.subscribe('bench/fan-out', 0, 5_000)
        return client
      }))
      const publisher = {
        client: await context.connect('publisher', 'tcp', `bench-${id}-pub`),
        template: new PublishTemplate('bench/fan-out', settings.payloadBytes, 0)
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
      return await measure(context, flood, () => deliveries, perMessage, id)
    }
  }
}

/** Runs the flood through warm-up and the measured window, then lets it drain to count losses. */
async function measure (context: ScenarioContext, flood: Flood, deliveries: () => number, perMessage: number, key: string): Promise<ScenarioOutcome> {
  const { settings, signal } = context
  context.status('warm-up')
  flood.start()
  let rate: number
  let cpu: CpuShare
  try {
    await pause(settings.warmupMs, signal)
    context.status('measuring')
    const startCount = deliveries()
    const startedAt = performance.now()
    const cpuMeter = startCpuMeter(context.target)
    await pause(settings.measureMs, signal)
    rate = ((deliveries() - startCount) * 1000) / (performance.now() - startedAt)
    cpu = cpuMeter()
  } finally {
    flood.stop()
  }
  context.status('draining')
  const expected = flood.sent * perMessage
  await waitUntil(() => deliveries() >= expected, { timeoutMs: 10_000, signal, progress: deliveries, idleMs: 1_000 })
  const notes: string[] = []
  const lost = expected - deliveries()
  if (lost > 0) notes.push(`${formatShare(lost, expected)} of ${count(expected)} deliveries not received`)
  if (flood.stalls > 0) notes.push(`${flood.stalls} stall(s): nothing received for 500 ms with messages outstanding`)
  return { values: { [key]: rate }, notes, cpu }
}

function formatShare (part: number, whole: number): string {
  return `${((part / whole) * 100).toPrecision(2)}%`
}
