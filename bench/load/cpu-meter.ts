// CPU used over a window by the broker processes, by this generator, and by everything else
// on the machine. A generator near 100% next to a broker well under it means the generator
// set the pace; "other" well above zero means something else competed for the cores.
import { readFileSync } from 'node:fs'
import { cpuTimeMs, ticksToMs } from '../process.js'
import type { CpuShare } from '../scenarios/types.js'
import type { RunningTarget } from '../targets.js'

export function startCpuMeter (target: Pick<RunningTarget, 'pids' | 'processes'>): () => CpuShare {
  const brokerPids = target.pids
  const startedAt = performance.now()
  const brokerStart = brokerCpuMs(brokerPids)
  const processStarts = target.processes?.map((p) => cpuTimeMs(p.pid)) ?? []
  const generatorStart = process.cpuUsage()
  const machineStart = machineMs()
  return () => {
    const elapsedMs = performance.now() - startedAt
    const generatorUsage = process.cpuUsage(generatorStart)
    const broker = brokerCpuMs(brokerPids) - brokerStart
    const generator = (generatorUsage.user + generatorUsage.system) / 1000
    const machine = machineMs()
    const other = Math.max(0, machine.busy - machineStart.busy - broker - generator)
    const share = (ms: number): number => (ms / elapsedMs) * 100
    const processes = target.processes?.map((p, i) => ({ name: p.name, share: share(cpuTimeMs(p.pid) - (processStarts[i] ?? 0)) }))
    return { broker: share(broker), generator: share(generator), other: share(other), steal: share(machine.steal - machineStart.steal), ...(processes === undefined ? {} : { processes }) }
  }
}

function brokerCpuMs (pids: number[]): number {
  return pids.reduce((sum, pid) => sum + cpuTimeMs(pid), 0)
}

/**
 * Busy time of all CPUs from /proc/stat, in ms: user, nice, system, and steal (a hypervisor
 * running someone else), and steal on its own. Interrupt time is left out: it is mostly this
 * run's own loopback traffic.
 */
function machineMs (): { busy: number, steal: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? ''
  const [user = 0, nice = 0, system = 0, , , , , steal = 0] = line.trim().split(/\s+/).slice(1).map(Number)
  return { busy: ticksToMs(user + nice + system + steal), steal: ticksToMs(steal) }
}

/** The CPU shares of equally long windows, averaged. */
export function meanShare (shares: CpuShare[]): CpuShare | null {
  const first = shares[0]
  if (first === undefined) return null
  const mean = (pick: (share: CpuShare) => number): number => shares.reduce((sum, share) => sum + pick(share), 0) / shares.length
  const processes = first.processes?.map((p, i) => ({ name: p.name, share: mean((share) => share.processes?.[i]?.share ?? 0) }))
  return { broker: mean((s) => s.broker), generator: mean((s) => s.generator), other: mean((s) => s.other), steal: mean((s) => s.steal), ...(processes === undefined ? {} : { processes }) }
}
