// The benchmark's child processes get the CPUs their target asks for, whatever the harness
// itself is pinned to: an unpinned target (--workers) once inherited the generator's one CPU.
import { spawnSync } from 'node:child_process'
import { cpus } from 'node:os'
import t from 'tap'
import { disablePinning, startChild } from '../bench/process.js'

const cpuCount = cpus().length
const canPin = spawnSync('taskset', ['-c', '0', 'true']).status === 0

/** The affinity mask `taskset -p` reports for a child started with `cpu`. */
async function childMask (cpu: number | null): Promise<number> {
  const child = startChild('sh', ['-c', 'taskset -p $$'], { cpu })
  const [match] = await child.waitFor([/affinity mask: ([0-9a-f]+)/], 5_000)
  await child.stop()
  return parseInt(match?.[1] ?? '0', 16)
}

t.test('a pinned harness starts unpinned children on every CPU and pinned ones on theirs', { skip: !canPin || cpuCount < 2 ? 'needs taskset and two CPUs' : false }, async (t) => {
  const all = 2 ** cpuCount - 1
  // pin this process to CPU 1, as the harness pins itself to the generator's CPU
  t.equal(spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)]).status, 0)
  t.teardown(() => { spawnSync('taskset', ['-a', '-p', '-c', `0-${cpuCount - 1}`, String(process.pid)]) })
  t.equal(await childMask(null), all, 'unpinned: every CPU, not the harness\'s one')
  t.equal(await childMask(0), 1, 'pinned to CPU 0')
})

t.test('with --no-pin, a target that asks for CPU 0 runs wherever the OS puts it', { skip: !canPin || cpuCount < 2 ? 'needs taskset and two CPUs' : false }, async (t) => {
  disablePinning()
  t.equal(await childMask(0), 2 ** cpuCount - 1)
})
