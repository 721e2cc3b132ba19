// Command-line options of `npm run bench` and the sizes of each scenario they select.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

/** A bad command line: reported with the usage text and exit code 2. */
export class UsageError extends Error {}

export interface Settings {
  /** Throughput scenarios: load before the measured window (JIT, buffers) and the window. */
  warmupMs: number
  measureMs: number
  fanInPublishers: number
  fanOutSubscribers: number
  /** Payload of each throughput message; includes the 8-byte timestamp. */
  payloadBytes: number
  latencyRate: number
  latencyMs: number
  idleConnections: number
  retainedTopics: number
  /** The fleet scenario: idle connections, the idle CPU window, the mixed load's duration. */
  fleetConnections: number
  fleetIdleMs: number
  fleetMixedMs: number
  /** The storm scenario: persistent sessions over three nodes, one of which is killed. */
  stormClients: number
}

// The memory target is stated at 20,000 idle connections; the broker and the generator each
// need a descriptor per connection, so a lower open-files limit lowers the default, with room
// for the process's other descriptors.
const targetIdleConnections = 20_000
const reservedDescriptors = 500

export function openFilesLimit (): number {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return match === null ? Infinity : Number(match[1])
  } catch {
    return Infinity
  }
}

/** The connections one process (broker or generator) may hold here, with room for its other descriptors. */
export function perProcessConnections (): number {
  return openFilesLimit() - reservedDescriptors
}

const defaultSettings: Settings = {
  warmupMs: 1_000,
  measureMs: 5_000,
  fanInPublishers: 10,
  fanOutSubscribers: 100,
  payloadBytes: 64,
  latencyRate: 2_000,
  latencyMs: 10_000,
  idleConnections: Math.min(targetIdleConnections, openFilesLimit() - reservedDescriptors),
  retainedTopics: 100_000,
  fleetConnections: 100_000,
  // a whole keepalive period: every client pings once
  fleetIdleMs: 60_000,
  fleetMixedMs: 20_000,
  stormClients: 30_000
}

const quickSettings: Settings = {
  ...defaultSettings,
  warmupMs: 500,
  measureMs: 1_500,
  latencyMs: 2_000,
  idleConnections: 500,
  retainedTopics: 20_000,
  fleetConnections: 10_000,
  fleetIdleMs: 10_000,
  fleetMixedMs: 5_000,
  stormClients: 3_000
}

export interface Options {
  settings: Settings
  quick: boolean
  /** Scenario ids and target names to run; null = all. */
  scenarios: string[] | null
  targets: string[] | null
  cpuProfile: boolean
  pin: boolean
  /** Runs of each target and scenario; cells show the median. */
  repeat: number
  help: boolean
}

export const usage = (scenarioIds: string[], targetNames: string[]): string => `Usage: npm run bench -- [options]

  --quick               about 1 minute instead of about 5
  --scenarios a,b       only these scenarios: ${scenarioIds.join(', ')}
  --targets x,y         only these targets: ${targetNames.join(', ')}
  --connections N       idle clients of the connection scenario (default ${defaultSettings.idleConnections})
  --fleet N             idle clients of the fleet scenario, through --workers (default ${defaultSettings.fleetConnections})
  --storm N             persistent sessions of the storm scenario (default ${defaultSettings.stormClients})
  --retained N          retained topics of the retained scenario (default ${defaultSettings.retainedTopics})
  --duration S          measured seconds of each throughput scenario (default ${defaultSettings.measureMs / 1000})
  --repeat N            run everything N times, in rounds, and report each cell's median
  --cpu-prof            write a V8 CPU profile of each Node-based broker run
  --no-pin              do not pin broker and generator to CPUs with taskset
  --help

  BENCH_BASELINE=DIR    adds the target realtime-broker@baseline: the broker built in the
                        checkout DIR (its dist/), e.g. the commit before a change
`

export function parseOptions (argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      scenarios: { type: 'string' },
      targets: { type: 'string' },
      connections: { type: 'string' },
      fleet: { type: 'string' },
      storm: { type: 'string' },
      retained: { type: 'string' },
      duration: { type: 'string' },
      repeat: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'no-pin': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  const settings = { ...(values.quick ? quickSettings : defaultSettings) }
  if (values.connections !== undefined) settings.idleConnections = positiveInteger('--connections', values.connections)
  if (values.fleet !== undefined) settings.fleetConnections = positiveInteger('--fleet', values.fleet)
  if (values.storm !== undefined) settings.stormClients = positiveInteger('--storm', values.storm)
  if (values.retained !== undefined) settings.retainedTopics = positiveInteger('--retained', values.retained)
  if (values.duration !== undefined) settings.measureMs = positiveNumber('--duration', values.duration) * 1000
  return {
    settings,
    quick: values.quick,
    scenarios: list(values.scenarios),
    targets: list(values.targets),
    cpuProfile: values['cpu-prof'],
    pin: !values['no-pin'],
    repeat: values.repeat === undefined ? 1 : positiveInteger('--repeat', values.repeat),
    help: values.help
  }
}

function list (value: string | undefined): string[] | null {
  return value === undefined ? null : value.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

function positiveNumber (flag: string, value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag}: expected a positive number, got "${value}"`)
  return n
}

function positiveInteger (flag: string, value: string): number {
  const n = positiveNumber(flag, value)
  if (!Number.isInteger(n)) throw new UsageError(`${flag}: expected a whole number, got "${value}"`)
  return n
}
