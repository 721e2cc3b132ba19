// The Markdown report: machine and settings, one row per metric and one column per target,
// the project's ratios to plain Aedes and to Mosquitto (and of its MQTT 5 run to its 3.1.1 run),
// notes, and CPU use per run.
import { readdirSync, readFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { count, decimal } from './format.js'
import type { Options } from './options.js'
import type { MetricSpec, Scenario, ScenarioOutcome } from './scenarios/types.js'
import { projectBaselineTargetName, projectRoot, projectTargetName, projectV5TargetName, referenceVersions, type Target } from './targets.js'

export interface RunRecord {
  target: string
  scenario: string
  outcome?: ScenarioOutcome
  error?: string
  elapsedMs: number
}

export interface ReportInput {
  options: Options
  argv: string[]
  pinned: boolean
  targets: Target[]
  skipped: Map<string, string>
  scenarios: Scenario[]
  runs: RunRecord[]
  startedAt: Date
  elapsedMs: number
}

/** Baselines the project is compared with, when they ran. */
const baselines = ['aedes', 'mosquitto']

export function renderReport (input: ReportInput): string {
  const ran = input.targets.filter((t) => !input.skipped.has(t.name))
  const names = ran.map((t) => t.name)
  // [measured, baseline]: the same broker's MQTT 5 clients to its 3.1.1 ones, then the project to
  // its build from another checkout and to the reference brokers
  const ratios: Array<[string, string]> = names.includes(projectTargetName)
    ? [projectV5TargetName, projectBaselineTargetName, ...baselines].filter((b) => names.includes(b)).map((b) => b === projectV5TargetName ? [b, projectTargetName] : [projectTargetName, b])
    : []
  const runOf = (target: string, scenario: string): RunRecord | undefined => input.runs.find((r) => r.target === target && r.scenario === scenario)

  const header = ['scenario', 'better', ...names, ...ratios.map(([measured, baseline]) => `${measured} ÷ ${baseline}`)]
  const rows: string[][] = []
  for (const scenario of input.scenarios) {
    for (const metric of scenario.metrics(input.options.settings)) {
      const values = names.map((name) => runOf(name, scenario.id)?.outcome?.values[metric.key])
      const cells = names.map((name, i) => cell(runOf(name, scenario.id), values[i], metric))
      const ratioCells = ratios.map(([measured, baseline]) => ratio(values[names.indexOf(measured)], values[names.indexOf(baseline)]))
      rows.push([metric.label, metric.better === 'higher' ? '↑' : '↓', ...cells, ...ratioCells])
    }
  }

  const notes = input.runs.flatMap((r) => [
    ...(r.error === undefined ? [] : [`${r.target}, ${r.scenario}: failed: ${r.error.split('\n')[0]}`]),
    ...(r.outcome?.notes ?? []).map((n) => `${r.target}, ${r.scenario}: ${n}`)
  ])
  for (const [name, reason] of input.skipped) notes.push(`${name}: skipped: ${reason}`)

  const perProcess = input.runs.flatMap((r) => {
    const processes = r.outcome?.cpu?.processes
    return processes === undefined ? [] : [`${r.target}, ${r.scenario}: ${processes.map((p) => `${p.name} ${p.share.toFixed(0)}%`).join(', ')}`]
  })
  const cpuScenarios = input.scenarios.filter((s) => names.some((n) => runOf(n, s.id)?.outcome?.cpu !== undefined))
  const cpuRows = cpuScenarios.map((s) => [s.id, ...names.map((n) => {
    const cpu = runOf(n, s.id)?.outcome?.cpu
    return cpu === undefined ? '' : `${cpu.broker.toFixed(0)} / ${cpu.generator.toFixed(0)} / ${cpu.other.toFixed(0)}`
  })])

  return [
    `# Benchmark: ${input.startedAt.toISOString()}`,
    '',
    ...machine(input).map((line) => `- ${line}`),
    '',
    table(header, rows, 2),
    '',
    '↑ higher is better, ↓ lower is better. A ratio is the first target\'s value divided by the second\'s:',
    'above 1 is better on ↑ rows and worse on ↓ rows.',
    '',
    ...(notes.length === 0 ? [] : ['Notes:', '', ...notes.map((n) => `- ${n}`), '']),
    ...(cpuRows.length === 0
      ? []
      : ['CPU during each measured window in % of one core: broker / load generator / everything else (should be near 0):', '', table(['scenario', ...names], cpuRows, 1), '']),
    ...(perProcess.length === 0 ? [] : ['CPU per broker process of the clustered targets, in % of one core:', '', ...perProcess.map((line) => `- ${line}`), '']),
    'Targets:',
    '',
    ...ran.map((t) => `- \`${t.name}\`: ${t.description}`),
    ''
  ].join('\n')
}

function cell (run: RunRecord | undefined, value: number | undefined, metric: MetricSpec): string {
  if (run === undefined) return ''
  if (run.error !== undefined) return 'failed'
  if (value === undefined || Number.isNaN(value)) return 'n/a'
  const flagged = (run.outcome?.notes.length ?? 0) > 0 ? ' *' : ''
  return decimal(value, metric.digits) + flagged
}

function ratio (project: number | undefined, baseline: number | undefined): string {
  if (project === undefined || baseline === undefined || !(baseline > 0) || Number.isNaN(project)) return ''
  return `${(project / baseline).toFixed(2)}×`
}

function table (header: string[], rows: string[][], leftColumns: number): string {
  const align = header.map((_, i) => (i < leftColumns ? '---' : '--:'))
  return [header, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n')
}

function machine (input: ReportInput): string[] {
  const { settings, quick } = input.options
  const cpu = cpus()
  const versions = [`node ${process.version}`, `aedes ${packageVersion('aedes')}${aedesPatches()}`, ...referenceVersions()]
  const baseline = process.env.BENCH_BASELINE === undefined || process.env.BENCH_BASELINE === '' ? [] : [`BENCH_BASELINE=${process.env.BENCH_BASELINE}`]
  const command = [...baseline, 'npm run bench', ...(input.argv.length === 0 ? [] : ['--', ...input.argv])].join(' ')
  return [
    `command: \`${command}\` (${quick ? 'quick' : 'default'} settings), ${Math.round(input.elapsedMs / 1000)} s in all`,
    `machine: ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}`,
    `software: ${versions.join(', ')}`,
    input.pinned
      ? 'pinning: broker on CPU 0, load generator on CPU 1 (taskset)'
      : 'pinning: none (taskset missing, fewer than 2 CPUs, or --no-pin): broker and generator share CPUs',
    `sizes: throughput warmed up ${settings.warmupMs / 1000} s, then measured ${settings.measureMs / 1000} s per target in 500 ms slices that alternate between the targets; ` +
      `${settings.payloadBytes}-byte payloads; latency at ${count(settings.latencyRate)} msg/s for ${settings.latencyMs / 1000} s in 200 ms slices; ` +
      `${count(settings.idleConnections)} idle connections; ${count(settings.retainedTopics)} retained topics`,
    `${input.options.repeat === 1 ? 'each cell is one run' : `each cell is the median of ${input.options.repeat} runs (made in rounds)`} against a freshly started broker; \`*\` marks a cell with a note below`
  ]
}

/** The project patches Aedes (patch-package): both Node targets run the patched copy. */
function aedesPatches (): string {
  try {
    const patches = readdirSync(`${projectRoot}/patches`).filter((f) => f.startsWith('aedes+'))
    return patches.length === 0 ? '' : ` with ${patches.map((f) => `patches/${f}`).join(', ')}`
  } catch {
    return ''
  }
}

function packageVersion (name: string): string {
  try {
    return (JSON.parse(readFileSync(`${projectRoot}/node_modules/${name}/package.json`, 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}
