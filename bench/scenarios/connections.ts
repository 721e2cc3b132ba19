// Connection scale: N idle clients connect, a bounded number at a time; reports the connect
// rate and what each connection adds to the broker's resident memory.
import { startCpuMeter } from '../load/cpu-meter.js'
import { rssKiB } from '../process.js'
import { pause } from '../load/wait.js'
import { count } from '../format.js'
import type { Scenario } from './types.js'

// CONNECTs in flight at once: a burst like a fleet reconnecting, without a SYN flood.
const concurrency = 50

// Idle fleets stay connected for hours: RSS is read once it stops moving (the young generation
// the connect burst grew is given back by V8 after a few idle seconds), bounded in time.
const settleStepMs = 1_000
const settleLimitMs = 15_000

async function settledRss (read: () => number, signal: AbortSignal): Promise<{ kiB: number, stable: boolean }> {
  let previous = read()
  for (let waited = 0; waited < settleLimitMs; waited += settleStepMs) {
    await pause(settleStepMs, signal)
    const now = read()
    if (Math.abs(now - previous) <= previous * 0.005) return { kiB: now, stable: true }
    previous = now
  }
  return { kiB: previous, stable: false }
}

export function connections (id: string): Scenario {
  return {
    id,
    title: 'connection scale',
    metrics: (s) => [
      { key: `${id}-rate`, label: `connect ${count(s.idleConnections)} idle clients (connections/s)`, better: 'higher', digits: 0 },
      { key: `${id}-rss`, label: `broker RSS per idle connection, ${count(s.idleConnections)} clients (KiB)`, better: 'lower', digits: 1 }
    ],
    timeoutMs: (s) => 30_000 + settleLimitMs + s.idleConnections * 20,
    run: async (context) => {
      const { settings, signal, target } = context
      const brokerRss = (): number => target.pids.reduce((sum, pid) => sum + rssKiB(pid), 0)
      await pause(500, signal) // start-up allocations settle
      const rssBefore = brokerRss()
      const total = settings.idleConnections
      let next = 0
      let connected = 0
      const startedAt = performance.now()
      const cpuMeter = startCpuMeter(target.pids)
      const connectSome = async (): Promise<void> => {
        while (next < total && !signal.aborted) {
          const i = next++
          await context.connect('publisher', 'tcp', `bench-${id}-${i}`, 60)
          connected++
          if (connected % 250 === 0) context.status(`${connected}/${total} connected`)
        }
      }
      await Promise.all(Array.from({ length: Math.min(concurrency, total) }, connectSome))
      const rate = (total * 1000) / (performance.now() - startedAt)
      const cpu = cpuMeter()
      context.status(`${total} connected, waiting for the broker's RSS to settle`)
      const settled = await settledRss(brokerRss, signal)
      const perConnection = (settled.kiB - rssBefore) / total
      const notes = settled.stable ? [] : [`RSS still moving after ${settleLimitMs / 1000} s; measured then`]
      return { values: { [`${id}-rate`]: rate, [`${id}-rss`]: perConnection }, notes, cpu }
    }
  }
}
