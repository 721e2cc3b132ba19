// What one CONNECT costs the broker, outside the harness so that only the broker's own CPU is
// counted (the generator shares the machine's two cores): one broker process on CPU 0 (with its
// Redis), the fleet's generator process on CPU 1, raw MQTT 3.1.1 CleanSession 1 CONNECTs, all
// with the same JWT (bench/fleet.yaml), `--concurrency` at a time, held once connected. Each
// run connects a warm-up share first (JIT, pools), then the measured clients; it reports the
// broker's CPU per CONNECT (`/proc/<pid>/stat`), Redis' CPU and commands per CONNECT (`INFO
// commandstats`) and the connect rate. Targets as bench/idle-floor.ts names them (`rb`,
// `rb-memory`, `rb-base` with `--baseline DIR`, `aedes`, ...), in turn, `--rounds` times.
//   node dist/bench/connect-probe.js [--clients 3000] [--concurrency 50] [--rounds 2]
//     [--targets rb-base,rb,aedes] [--baseline DIR] [--node-args "--cpu-prof --cpu-prof-dir=/tmp/x"]
import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { FleetReply, FleetRequest } from './load/fleet-process.js'
import { forkGenerator, stopGenerators } from './load/generator-process.js'
import { cpuTimeMs, pinThisProcess, sleep } from './process.js'
import { startTarget } from './probe-targets.js'
import type { BenchRedis } from './redis.js'

const keepaliveS = 60
const path = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url))
// a source address per run (the last run's closed connections hold their ports in TIME_WAIT),
// above the fleet's and bench/idle-floor.ts' addresses
const sourceAddress = (run: number): string => `127.0.0.${80 + run}`

/** Redis' calls per command so far (`INFO commandstats`). */
function commandCalls (redis: BenchRedis): Map<string, number> {
  const port = new URL(redis.url).port
  const info = spawnSync('redis-cli', ['-p', port, 'INFO', 'commandstats']).stdout.toString()
  const calls = new Map<string, number>()
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1] as string, Number(match[2]))
  return calls
}

interface Row {
  target: string
  round: number
  connected: number
  brokerMsPerConnect: number
  redisMsPerConnect: number
  ratePerS: number
  /** Redis commands per CONNECT, by command (largest first). */
  commands: Array<[string, number]>
}

async function probe (name: string, round: number, run: number, clients: number, concurrency: number, nodeArgs: string[], baseline: string): Promise<Row> {
  const heapFile = join(tmpdir(), `connect-probe-${process.pid}.json`)
  const target = await startTarget(name, nodeArgs, heapFile, baseline, '')
  const generator = forkGenerator<FleetRequest, FleetReply>(path('./load/fleet-process.js'), 0)
  try {
    const connect = async (prefix: string, count: number): Promise<number> => {
      const reply = await generator.ask({ type: 'connect', port: target.port, localAddress: sourceAddress(run), prefix, first: 0, count, keepaliveS, concurrency, ...target.credentials }, 'connected')
      if (reply.type !== 'connected') throw new Error('no reply')
      if (reply.failed > 0) throw new Error(`${name}: ${reply.failed} connections failed (${reply.firstError ?? '?'})`)
      return reply.connected
    }
    await connect('warm-', Math.ceil(clients / 3))
    await sleep(1_000)
    const redisPid = target.redis?.handles[0]?.pid
    const before = { broker: cpuTimeMs(target.broker.pid), redis: redisPid === undefined ? 0 : cpuTimeMs(redisPid), calls: target.redis === null ? new Map<string, number>() : commandCalls(target.redis), at: performance.now() }
    const connected = await connect('probe-', clients)
    const elapsedMs = performance.now() - before.at
    // what the last CONNECTs left to do (the session store, presence) is theirs too
    await sleep(500)
    const brokerMs = cpuTimeMs(target.broker.pid) - before.broker
    const redisMs = redisPid === undefined ? 0 : cpuTimeMs(redisPid) - before.redis
    const after = target.redis === null ? new Map<string, number>() : commandCalls(target.redis)
    const commands = [...after].map(([command, calls]): [string, number] => [command, (calls - (before.calls.get(command) ?? 0)) / connected])
      .filter(([command, perConnect]) => perConnect >= 0.01 && command !== 'info')
      .sort((a, b) => b[1] - a[1])
    return { target: name, round, connected, brokerMsPerConnect: brokerMs / connected, redisMsPerConnect: redisMs / connected, ratePerS: connected / (elapsedMs / 1000), commands }
  } finally {
    await stopGenerators([generator])
    await target.broker.stop()
    await target.redis?.stop()
    rmSync(heapFile, { force: true })
  }
}

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '3000' },
    concurrency: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '2' },
    targets: { type: 'string', default: 'rb,rb-memory,aedes' },
    'node-args': { type: 'string', default: '' },
    baseline: { type: 'string', default: '' }
  }
})
const clients = Number(values.clients)
const concurrency = Number(values.concurrency)
const nodeArgs = values['node-args'].split(' ').filter((arg) => arg !== '')
pinThisProcess()
const rows: Row[] = []
let run = 0
for (let round = 1; round <= Number(values.rounds); round++) {
  for (const name of values.targets.split(',')) {
    process.stderr.write(`round ${round}, ${name}: ${clients} CONNECTs, ${concurrency} at a time\n`)
    rows.push(await probe(name, round, run++, clients, concurrency, nodeArgs, values.baseline))
  }
}
console.log(`\n${clients} clean MQTT 3.1.1 CONNECTs, ${concurrency} at a time, held (after a warm-up of ${Math.ceil(clients / 3)})\n`)
console.log('| target | round | broker CPU per CONNECT (ms) | Redis CPU per CONNECT (ms) | connect rate (/s) | Redis commands per CONNECT |')
console.log('| --- | --: | --: | --: | --: | --- |')
for (const r of rows) {
  const total = r.commands.reduce((sum, [, n]) => sum + n, 0)
  const commands = r.commands.length === 0 ? '' : `${total.toFixed(2)}: ${r.commands.map(([command, n]) => `${command} ${n.toFixed(2)}`).join(', ')}`
  console.log(`| ${r.target} | ${r.round} | ${r.brokerMsPerConnect.toFixed(3)} | ${r.redisMsPerConnect.toFixed(3)} | ${r.ratePerS.toFixed(0)} | ${commands} |`)
}
