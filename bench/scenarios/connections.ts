// Connection scale: N idle clients connect, a bounded number at a time; reports the connect
// rate and what each connection adds to the broker's resident memory.
import { startCpuMeter } from '../load/cpu-meter.js'
import { rssKiB } from '../process.js'
import { pause } from '../load/wait.js'
import { count } from '../format.js'
import type { Scenario } from './types.js'

// CONNECTs in flight at once: a burst like a fleet reconnecting, without a SYN flood.
const concurrency = 50

export function connections (id: string): Scenario {
  return {
    id,
    title: 'connection scale',
    metrics: (s) => [
      { key: `${id}-rate`, label: `connect ${count(s.idleConnections)} idle clients (connections/s)`, better: 'higher', digits: 0 },
      { key: `${id}-rss`, label: `broker RSS per idle connection, ${count(s.idleConnections)} clients (KiB)`, better: 'lower', digits: 1 }
    ],
    timeoutMs: (s) => 30_000 + s.idleConnections * 20,
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
      context.status(`${total} connected, measuring RSS`)
      await pause(1_000, signal)
      const perConnection = (brokerRss() - rssBefore) / total
      return { values: { [`${id}-rate`]: rate, [`${id}-rss`]: perConnection }, notes: [], cpu }
    }
  }
}
