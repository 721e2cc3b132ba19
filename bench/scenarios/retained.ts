// Retained messages: store N retained topics, then time a wildcard subscribe until all N
// retained messages have arrived (what a dashboard pays when it opens).
import { generate } from 'mqtt-packet'
import type { BenchClient } from '../load/bench-client.js'
import { startCpuMeter } from '../load/cpu-meter.js'
import { waitUntil } from '../load/wait.js'
import { count } from '../format.js'
import type { Scenario } from './types.js'

export function retained (id: string): Scenario {
  return {
    id,
    title: 'retained messages',
    metrics: (s) => [
      { key: `${id}-store`, label: `store ${count(s.retainedTopics)} retained topics (msg/s)`, better: 'higher', digits: 0 },
      { key: `${id}-subscribe`, label: `wildcard subscribe until ${count(s.retainedTopics)} retained arrive (ms)`, better: 'lower', digits: 0 }
    ],
    timeoutMs: (s) => 60_000 + s.retainedTopics,
    run: async (context) => {
      const { settings, signal } = context
      const topics = settings.retainedTopics
      const payload = Buffer.alloc(settings.payloadBytes, 0x61)
      const packets = Buffer.concat(Array.from({ length: topics }, (_, i) =>
        generate({ cmd: 'publish', topic: `bench/retained/${i}`, payload, qos: 0, retain: true, dup: false }, { protocolVersion: context.protocolVersion })))
      // A QoS 1 publish after them: brokers handle a connection's packets in order, so its
      // PUBACK means every retained message before it has been stored.
      const fence = generate({ cmd: 'publish', topic: 'bench/fence', payload: Buffer.alloc(0), qos: 1, messageId: 1, retain: false, dup: false }, { protocolVersion: context.protocolVersion })

      context.status('storing')
      const publisher = await context.connect('publisher', 'tcp', `bench-${id}-pub`)
      let fenced = false
      publisher.onPuback = () => { fenced = true }
      const storeStartedAt = performance.now()
      await sendAll(publisher, packets, signal)
      publisher.send(fence)
      if (!await waitUntil(() => fenced, { timeoutMs: 30_000 + topics, signal })) throw new Error('no PUBACK after the retained messages')
      const storeRate = (topics * 1000) / (performance.now() - storeStartedAt)

      context.status('subscribing')
      const subscriber = await context.connect('subscriber', 'tcp', `bench-${id}-sub`)
      let arrived = 0
      subscriber.onPublish = (_buffer, _start, _end, retain) => { if (retain) arrived++ }
      const subscribeStartedAt = performance.now()
      const cpuMeter = startCpuMeter(context.target)
      const subscribed = subscriber.subscribe('bench/retained/#', 0, 30_000)
      const complete = await waitUntil(() => arrived >= topics, { timeoutMs: 30_000 + topics, signal, progress: () => arrived, idleMs: 5_000 })
      const subscribeMs = performance.now() - subscribeStartedAt
      const cpu = cpuMeter()
      await subscribed
      const notes = complete ? [] : [`only ${arrived} of ${topics} retained messages arrived`]
      return { values: { [`${id}-store`]: storeRate, [`${id}-subscribe`]: subscribeMs }, notes, cpu }
    }
  }
}

/** Writes a large buffer in 64 KiB slices, waiting for drain whenever the wire asks. */
async function sendAll (client: BenchClient, bytes: Buffer, signal: AbortSignal): Promise<void> {
  const slice = 64 * 1024
  for (let at = 0; at < bytes.length && !signal.aborted; at += slice) {
    if (!client.send(bytes.subarray(at, at + slice))) {
      await new Promise<void>((resolve) => { client.onDrain = resolve })
    }
  }
}
