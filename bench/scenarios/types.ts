// What a scenario is to the harness: the metrics it reports (the rows of the table), a hard
// time limit, and a run against one started target.
import type { BenchClient, ProtocolVersion } from '../load/bench-client.js'
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
  targetName: string
  settings: Settings
  /** The MQTT version every client of this target speaks. */
  protocolVersion: ProtocolVersion
  /** Aborted when the scenario is out of time: loops must stop. */
  signal: AbortSignal
  /** Connects a client the harness closes after the scenario, whatever happens. */
  connect: (role: Role, transport: Transport, clientId: string, keepaliveS?: number) => Promise<BenchClient>
  /** Sets the phase shown on the progress line. */
  status: (phase: string) => void
}

interface ScenarioBase {
  id: string
  title: string
  /** The rows it reports; labels may quote the settings (N clients, N topics). */
  metrics: (settings: Settings) => MetricSpec[]
  /** The only targets this scenario runs on (a scenario too long for the others, or a feature the others lack); all when absent. */
  targets?: string[]
  /** Hard limit, per target: past it the scenario is abandoned, its clients closed, the brokers stopped. */
  timeoutMs: (settings: Settings) => number
  /** Node options for the targets' Node processes (before the profiler's, if any). */
  nodeArgs?: string[]
}

/** Measured against one target at a time. */
export interface SingleScenario extends ScenarioBase {
  run: (context: ScenarioContext) => Promise<ScenarioOutcome>
}

/**
 * Measured against all targets in the same stretch of time (alternating slices), for figures
 * that drift with the machine's spells of noise: one outcome or error per context, in order.
 */
export interface InterleavedScenario extends ScenarioBase {
  /**
   * Whether the idle processes of other targets disturb the figures, so that targets of several
   * processes (Target.measuredAlone 'latency') are measured on their own: true for latency
   * tails, false for throughput.
   */
  idleNeighboursMatter: boolean
  runInterleaved: (contexts: ScenarioContext[]) => Promise<Array<ScenarioOutcome | Error>>
}

export type Scenario = SingleScenario | InterleavedScenario
