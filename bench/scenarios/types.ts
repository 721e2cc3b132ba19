// What a scenario is to the harness: the metrics it reports (the rows of the table), a hard
// time limit, and a run against one started target.
import type { BenchClient } from '../load/bench-client.js'
import type { Settings } from '../options.js'
import type { RunningTarget } from '../targets.js'

export interface MetricSpec {
  key: string
  /** Row label in the table, unit included. */
  label: string
  better: 'higher' | 'lower'
  /** Decimal places when printed. */
  digits: number
}

/** Share of one core used during the measured window, in percent. */
export interface CpuShare {
  broker: number
  generator: number
  /** Every other process on the machine, and time stolen by a hypervisor. */
  other: number
  /** Of `other`, the time a hypervisor gave this VM's CPUs to someone else (steal). */
  steal: number
  /** Each broker process on its own, for targets made of several (cluster nodes, Redis). */
  processes?: Array<{ name: string, share: number }>
}

export interface ScenarioOutcome {
  values: Record<string, number>
  /** Anything a reader must know to trust the numbers (messages lost, stalls). */
  notes: string[]
  cpu?: CpuShare
}

export type Role = 'publisher' | 'subscriber'
export type Transport = 'tcp' | 'ws'

export interface ScenarioContext {
  target: RunningTarget
  settings: Settings
  /** Aborted when the scenario is out of time: loops must stop. */
  signal: AbortSignal
  /** Connects a client the harness closes after the scenario, whatever happens. */
  connect: (role: Role, transport: Transport, clientId: string, keepaliveS?: number) => Promise<BenchClient>
  /** Sets the phase shown on the progress line. */
  status: (phase: string) => void
}

export interface Scenario {
  id: string
  title: string
  /** The rows it reports; labels may quote the settings (N clients, N topics). */
  metrics: (settings: Settings) => MetricSpec[]
  /** Hard limit: past it the scenario is abandoned, its clients closed, the broker stopped. */
  timeoutMs: (settings: Settings) => number
  run: (context: ScenarioContext) => Promise<ScenarioOutcome>
}
