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
      { key: `${id}-rss`, label: `broker RSS per idle connection, ${count(Math.floor(s.idleConnections / 2))} → ${count(s.idleConnections)} clients (KiB)`, better: 'lower', digits: 1 }
    ],
    timeoutMs: (s) => 30_000 + 2 * settleLimitMs + s.idleConnections * 20,
    run: async (context) => {
      const { settings, signal, target } = context
      const brokerRss = (): number => target.pids.reduce((sum, pid) => sum + rssKiB(pid), 0)
      const total = settings.idleConnections
      let next = 0
      let connected = 0
      const connectUpTo = async (goal: number): Promise<void> => {
        const connectSome = async (): Promise<void> => {
          while (next < goal && !signal.aborted) {
            const i = next++
            await context.connect('publisher', 'tcp', `bench-${id}-${i}`, 60)
            connected++
            if (connected % 250 === 0) context.status(`${connected}/${total} connected`)
          }
        }
        await Promise.all(Array.from({ length: Math.min(concurrency, goal) }, connectSome))
      }
      // Memory per connection is the slope from half the clients to all of them: what the
      // first burst grows once (the young generation, JIT code, pools) is not a per-connection
      // cost, and would otherwise be spread over the clients.
      const half = Math.floor(total / 2)
      const startedAt = performance.now()
      const cpuMeter = startCpuMeter(target)
      await connectUpTo(half)
      const connectMs = performance.now() - startedAt
      context.status(`${half} connected, waiting for the broker's RSS to settle`)
      const atHalf = await settledRss(brokerRss, signal)
      const secondStartedAt = performance.now()
      await connectUpTo(total)
      const rate = (total * 1000) / (connectMs + performance.now() - secondStartedAt)
      const cpu = cpuMeter()
      context.status(`${total} connected, waiting for the broker's RSS to settle`)
      const atTotal = await settledRss(brokerRss, signal)
      const perConnection = (atTotal.kiB - atHalf.kiB) / (total - half)
      const notes = atHalf.stable && atTotal.stable ? [] : [`RSS still moving after ${settleLimitMs / 1000} s; measured then`]
      return { values: { [`${id}-rate`]: rate, [`${id}-rss`]: perConnection }, notes, cpu }
    }
  }
}
