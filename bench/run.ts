// `npm run bench`: starts each target in turn, runs each scenario against a fresh broker (the
// latency scenarios against all targets at once, interleaved), and prints the Markdown table (also written to bench/results/latest.md).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BenchClient, type ProtocolVersion } from './load/bench-client.js'
import type { WireAddress } from './load/wire.js'
import { parseOptions, usage, UsageError, type Options } from './options.js'
import { disablePinning, killLiveChildren, pinThisProcess } from './process.js'
import { Progress } from './progress.js'
import { renderReport, type RunRecord } from './report.js'
import { scenarios as allScenarios } from './scenarios/index.js'
import type { Role, Scenario, ScenarioContext, ScenarioOutcome, Transport } from './scenarios/types.js'
import { projectRoot, targets as allTargets, type RunningTarget, type StartOptions, type Target } from './targets.js'

const resultsDir = join(projectRoot, 'bench', 'results')
// CPU used by other processes (in % of one core) past which a run's numbers are flagged.
const busyMachinePercent = 25
// CPU time a hypervisor stole (in % of one core) past which a run is flagged: a stolen CPU stops
// broker and generator alike for milliseconds, which is what latency tails are made of.
const stealPercent = 3

async function main (argv: string[]): Promise<void> {
  const options = parseOptions(argv)
  if (options.help) {
    process.stdout.write(usageText())
    return
  }
  const scenarios = select(allScenarios, options.scenarios, (s) => s.id, '--scenarios')
  const targets = select(allTargets, options.targets, (t) => t.name, '--targets')
  // The generator gets CPU 1 and each broker CPU 0, so neither takes the other's core.
  if (!options.pin) disablePinning()
  const pinned = options.pin && pinThisProcess()
  const profileDir = options.cpuProfile ? mkdtempSync(join(tmpdir(), 'bench-cpu-prof-')) : null

  const progress = new Progress()
  const startedAt = new Date()
  const skipped = new Map<string, string>()
  const runs: RunRecord[] = []
  for (const target of targets) {
    const reason = target.unavailable()
    if (reason === null) continue
    skipped.set(target.name, reason)
    progress.note(`${target.name}: skipped: ${reason}`)
  }
  // Rounds rather than N runs in a row: a slow spell of the machine then spreads over targets
  // instead of landing on one of them.
  try {
    for (let round = 1; round <= options.repeat; round++) {
      const roundLabel = options.repeat === 1 ? '' : `round ${round}/${options.repeat} · `
      const nodeArgsOf = (scenario: Scenario) => (target: Target) => (processName?: string): string[] => profileDir === null
        ? [...scenario.nodeArgs ?? []]
        : [...scenario.nodeArgs ?? [], '--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${[target.name, processName, scenario.id, round].filter((part) => part !== undefined).join('-')}.cpuprofile`]
      const record = (records: RunRecord[]): void => {
        for (const run of records) if (run.error !== undefined) progress.note(`${run.target}, ${run.scenario}: failed: ${run.error}`)
        runs.push(...records)
      }
      for (const [t, target] of targets.entries()) {
        if (skipped.has(target.name)) continue
        for (const [s, scenario] of scenarios.entries()) {
          if (!('run' in scenario) || !runsOn(target, scenario)) continue
          progress.begin(`${roundLabel}${target.name} (${t + 1}/${targets.length}) · ${scenario.id} (${s + 1}/${scenarios.length})`)
          record(await runScenario([target], scenario, options, nodeArgsOf(scenario), (phase) => progress.setPhase(phase)))
        }
      }
      for (const [s, scenario] of scenarios.entries()) {
        if ('run' in scenario) continue
        const eligible = targets.filter((target) => !skipped.has(target.name) && runsOn(target, scenario))
        const alone = (target: Target): boolean => target.measuredAlone === 'always' || (scenario.idleNeighboursMatter && target.measuredAlone === 'latency')
        const groups = [eligible.filter((target) => !alone(target)), ...eligible.filter(alone).map((target) => [target])]
        for (const group of groups.filter((g) => g.length > 0)) {
          progress.begin(`${roundLabel}${scenario.id} (${s + 1}/${scenarios.length}) · ${group.length === 1 ? group[0]?.name ?? '' : `${group.length} targets interleaved`}`)
          record(await runScenario(group, scenario, options, nodeArgsOf(scenario), (phase) => progress.setPhase(phase)))
        }
      }
    }
  } finally {
    progress.end()
  }

  const elapsedMs = Date.now() - startedAt.getTime()
  const report = renderReport({ options, argv, pinned, targets, skipped, scenarios, runs: medianRuns(runs), startedAt, elapsedMs })
  process.stdout.write(`${report}\n`)
  mkdirSync(resultsDir, { recursive: true })
  writeFileSync(join(resultsDir, 'latest.md'), report)
  writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify({ startedAt, settings: options.settings, pinned, skipped: Object.fromEntries(skipped), runs }, null, 2)}\n`)
  process.stderr.write(`written: bench/results/latest.md${profileDir === null ? '' : `; CPU profiles in ${profileDir}`}\n`)
}

/**
 * One record per target and scenario: each value the median of the runs that produced it, the
 * CPU shares of the median run of the first value, every run's notes and errors.
 */
function medianRuns (runs: RunRecord[]): RunRecord[] {
  const groups = new Map<string, RunRecord[]>()
  for (const run of runs) {
    const key = `${run.target}\u0000${run.scenario}`
    groups.set(key, [...(groups.get(key) ?? []), run])
  }
  return [...groups.values()].map((group) => {
    const first = group[0] as RunRecord
    if (group.length === 1) return first
    const succeeded = group.filter((r) => r.outcome !== undefined)
    const errors = group.flatMap((r) => r.error === undefined ? [] : [r.error])
    if (succeeded.length === 0) return { ...first, error: errors.join('; ') }
    const keys = [...new Set(succeeded.flatMap((r) => Object.keys(r.outcome?.values ?? {})))]
    const values = Object.fromEntries(keys.map((key) => [key, median(succeeded.map((r) => r.outcome?.values[key]).filter((v): v is number => v !== undefined && !Number.isNaN(v)))]))
    const byFirst = [...succeeded].sort((a, b) => (a.outcome?.values[keys[0] ?? ''] ?? 0) - (b.outcome?.values[keys[0] ?? ''] ?? 0))
    const middle = byFirst[Math.floor(byFirst.length / 2)] as RunRecord
    const notes = [...new Set(group.flatMap((r) => [...(r.outcome?.notes ?? []), ...(r.error === undefined ? [] : [`a run failed: ${r.error}`])]))]
    const cpu = middle.outcome?.cpu
    return { target: first.target, scenario: first.scenario, elapsedMs: group.reduce((sum, r) => sum + r.elapsedMs, 0), outcome: { values, notes, ...(cpu === undefined ? {} : { cpu }) } }
  })
}

function median (values: number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

function runsOn (target: Target, scenario: Scenario): boolean {
  return (target.scenarios === undefined || target.scenarios.includes(scenario.id)) && (scenario.targets === undefined || scenario.targets.includes(target.name))
}

/**
 * Starts the targets, runs one scenario under its hard time limit (against each target in
 * turn, or all of them interleaved), and stops everything: one record per target.
 */
async function runScenario (group: Target[], scenario: Scenario, options: Options, nodeArgsOf: (target: Target) => StartOptions['nodeArgs'], status: (phase: string) => void): Promise<RunRecord[]> {
  const startedAt = performance.now()
  const abort = new AbortController()
  const clients: BenchClient[] = []
  const running: RunningTarget[] = []
  const records = new Map<string, RunRecord>()
  const record = (name: string, fields: Partial<RunRecord>): void => {
    records.set(name, { target: name, scenario: scenario.id, elapsedMs: performance.now() - startedAt, ...fields })
  }
  const failure = (err: unknown): string => err instanceof Error ? err.message : String(err)
  try {
    const contexts: ScenarioContext[] = []
    for (const target of group) {
      status(`starting ${target.name}`)
      try {
        const started = await target.start({ nodeArgs: nodeArgsOf(target), settings: options.settings })
        running.push(started)
        contexts.push({
          target: started,
          targetName: target.name,
          settings: options.settings,
          protocolVersion: target.protocolVersion ?? 4,
          signal: abort.signal,
          connect: (role, transport, clientId, keepaliveS) => connectClient(started, clients, abort.signal, { role, transport, clientId, keepaliveS, protocolVersion: target.protocolVersion ?? 4 }),
          status
        })
      } catch (err) {
        record(target.name, { error: failure(err) })
      }
    }
    const first = contexts[0]
    if (first !== undefined) {
      const work = 'run' in scenario ? scenario.run(first).then((outcome) => [outcome]) : scenario.runInterleaved(contexts)
      try {
        const outcomes = await withinTime(work, scenario.timeoutMs(options.settings) * contexts.length, abort)
        outcomes.forEach((outcome, i) => {
          const name = contexts[i]?.targetName ?? ''
          if (outcome instanceof Error) record(name, { error: outcome.message })
          else record(name, { outcome: withMachineNotes(outcome) })
        })
      } catch (err) {
        for (const context of contexts) if (!records.has(context.targetName)) record(context.targetName, { error: failure(err) })
      }
    }
  } finally {
    abort.abort()
    status('stopping brokers')
    for (const client of clients) client.destroy()
    await Promise.all(running.map((target) => target.stop()))
  }
  return group.map((target) => records.get(target.name) ?? { target: target.name, scenario: scenario.id, elapsedMs: 0, error: 'not run' })
}

/** Flags an outcome measured while the machine was busy with something else, or stolen from. */
function withMachineNotes (outcome: ScenarioOutcome): ScenarioOutcome {
  if (outcome.cpu !== undefined && outcome.cpu.other > busyMachinePercent) {
    outcome.notes.push(`other processes used ${outcome.cpu.other.toFixed(0)}% of a core meanwhile: the machine was not quiet`)
  }
  if (outcome.cpu !== undefined && outcome.cpu.steal > stealPercent) {
    outcome.notes.push(`the hypervisor stole ${outcome.cpu.steal.toFixed(0)}% of a core meanwhile: its pauses are in the figures, the tails above all`)
  }
  return outcome
}

async function connectClient (target: RunningTarget, clients: BenchClient[], signal: AbortSignal,
  request: { role: Role, transport: Transport, clientId: string, keepaliveS: number | undefined, protocolVersion: ProtocolVersion }): Promise<BenchClient> {
  const endpoints = request.role === 'publisher' ? target.publish : target.subscribe
  let address: WireAddress
  if (request.transport === 'tcp') {
    address = { transport: 'tcp', port: endpoints.mqttPort }
  } else if (endpoints.wsUrl !== undefined) {
    address = { transport: 'ws', url: endpoints.wsUrl }
  } else {
    throw new Error('this target has no MQTT over WebSocket listener')
  }
  const client = await BenchClient.connect({
    address,
    protocolVersion: request.protocolVersion,
    clientId: request.clientId,
    timeoutMs: 10_000,
    ...(request.keepaliveS === undefined ? {} : { keepaliveS: request.keepaliveS }),
    ...target.credentials?.(request.clientId)
  })
  // A connect that completes after the scenario ended must not leave a socket open.
  if (signal.aborted) {
    client.destroy()
    throw new Error('scenario ended')
  }
  clients.push(client)
  return client
}

function withinTime<T> (work: Promise<T>, ms: number, abort: AbortController): Promise<T> {
  work.catch(() => {}) // if the timer wins, a later rejection is expected and ignored
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      abort.abort()
      reject(new Error(`timed out after ${Math.round(ms / 1000)} s`))
    }, ms)
    work.then(resolve, reject).finally(() => clearTimeout(timer))
  })
}

function usageText (): string {
  return usage(allScenarios.map((s) => s.id), allTargets.map((t) => t.name))
}

function select<T> (all: T[], wanted: string[] | null, name: (item: T) => string, flag: string): T[] {
  if (wanted === null) return all
  const unknown = wanted.filter((w) => !all.some((item) => name(item) === w))
  if (unknown.length > 0) throw new UsageError(`${flag}: unknown ${unknown.join(', ')} (known: ${all.map(name).join(', ')})`)
  return all.filter((item) => wanted.includes(name(item)))
}

// Whatever ends the harness, its brokers end with it.
process.on('exit', killLiveChildren)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killLiveChildren()
    process.exit(130)
  })
}

main(process.argv.slice(2)).then(
  // Exit explicitly: a stray socket or timer must not keep a finished run alive.
  () => process.exit(0),
  (err: unknown) => {
    const usageError = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true
    process.stderr.write(`bench: ${err instanceof Error ? (usageError ? err.message : err.stack) : String(err)}\n${usageError ? `\n${usageText()}` : ''}`)
    process.exit(usageError ? 2 : 1)
  }
)
