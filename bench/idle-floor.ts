// What an idle connection costs, against its floor: the same N idle MQTT 3.1.1 clients (the
// fleet's generator process, bench/load/fleet-process.ts, one PINGREQ per client per 60 s
// keepalive, spread over the period) held by
// - `ping`: a raw node:net server answering CONNECT and PINGREQ (bench/ping-server.ts): the
//   cost of Node and the kernel alone, which no broker on Node goes under;
// - `mosquitto`: Mosquitto (C, epoll), when installed: about the kernel's share alone;
// - `aedes`: plain Aedes (bench/aedes-plain.ts), with this project's patched Aedes;
// - `rb`: one process of this project as a fleet worker runs it (bench/fleet.yaml: JWT, ACL,
//   Redis); `rb-memory`: the same without Redis; `rb-base`: `rb` built in the checkout that
//   `--baseline DIR` names (e.g. the commit before a change), for before/after in one run;
//   `aedes-base`: plain Aedes with that checkout's node_modules (its Aedes patch).
// Back to back, one process each, the broker on CPU 0 and the generator on CPU 1. Reports the
// broker's CPU over the idle window (and Redis'), per ping, and memory per connection from
// half to all of the clients: RSS, V8's heap (committed and used, after a full collection),
// and the rest (native: sockets, libuv handles, buffers).
//   node dist/bench/idle-floor.js [--clients 16667] [--idle-s 60] [--settle-s 5] [--targets ping,aedes,rb]
//     [--node-args "--cpu-prof --cpu-prof-dir=/tmp/x"] [--baseline DIR] [--snapshots DIR] [--output DIR]
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { FleetReply, FleetRequest } from './load/fleet-process.js'
import { forkGenerator, stopGenerators } from './load/generator-process.js'
import { cpuTimeMs, pinThisProcess, rssKiB, sleep } from './process.js'
import { startTarget } from './probe-targets.js'

const keepaliveS = 60
const connectConcurrency = 100
const path = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url))
// a source address per target of a run: the last target's closed connections hold their ports
// in TIME_WAIT for a minute; above the fleet's 127.0.0.2-8
const sourceAddress = (index: number): string => `127.0.0.${40 + index}`

interface Space { name: string, size: number, used: number }
interface Memory { rssKiB: number, anonKiB: number, heapSize: number, heapUsed: number, external: number, spaces: Space[] }

async function memory (pid: number, heapFile: string, reportsHeap: boolean): Promise<Memory> {
  const rollup = (): number => Number(/^Anonymous:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1])
  if (!reportsHeap) return { rssKiB: rssKiB(pid), anonKiB: rollup(), heapSize: 0, heapUsed: 0, external: 0, spaces: [] }
  rmSync(heapFile, { force: true })
  process.kill(pid, 'SIGUSR2')
  // a heap snapshot of a broker holding its clients takes seconds
  for (let waited = 0; !existsSync(heapFile) && waited < 120_000; waited += 50) await sleep(50)
  await sleep(100)
  const report = JSON.parse(readFileSync(heapFile, 'utf8')) as { spaces: Space[], external: number }
  return {
    rssKiB: rssKiB(pid),
    anonKiB: rollup(),
    heapSize: report.spaces.reduce((sum, s) => sum + s.size, 0),
    heapUsed: report.spaces.reduce((sum, s) => sum + s.used, 0),
    external: report.external,
    spaces: report.spaces
  }
}

interface Row {
  target: string
  connected: number
  cpuPercent: number
  redisPercent: number
  generatorPercent: number
  usPerPing: number
  perConnection: { rss: number, anon: number, heapSize: number, heapUsed: number, external: number, redisRss: number }
  /** Each V8 space's growth per connection: committed / used. */
  spaces: string
}

async function measure (name: string, index: number, clients: number, idleS: number, settleS: number, nodeArgs: string[], baseline: string, snapshotDir: string, outputDir: string): Promise<Row> {
  const heapFile = join(tmpdir(), `idle-floor-${process.pid}.json`)
  const target = await startTarget(name, nodeArgs, heapFile, baseline, snapshotDir)
  const generator = forkGenerator<FleetRequest, FleetReply>(path('./load/fleet-process.js'), 0)
  try {
    const connect = async (first: number, count: number): Promise<number> => {
      const reply = await generator.ask({ type: 'connect', port: target.port, localAddress: sourceAddress(index), prefix: 'idle-', first, count, keepaliveS, concurrency: connectConcurrency, ...target.credentials }, 'connected')
      if (reply.type !== 'connected') throw new Error('no reply')
      if (reply.failed > 0) throw new Error(`${name}: ${reply.failed} connections failed (${reply.firstError ?? '?'})`)
      return reply.connected
    }
    const half = Math.floor(clients / 2)
    await connect(0, half)
    await sleep(settleS * 1000)
    const redisRss = (): number => target.redis === null ? 0 : rssKiB(target.redis.handles[0]?.pid as number)
    const atHalf = await memory(target.broker.pid, heapFile, target.reportsHeap)
    const redisAtHalf = redisRss()
    const connected = half + await connect(half, clients - half)
    await sleep(settleS * 1000)
    const atAll = await memory(target.broker.pid, heapFile, target.reportsHeap)
    const redisAtAll = redisRss()
    // the idle window: every client pings once per keepalive
    const redisPid = target.redis?.handles[0]?.pid
    const generatorPid = generator.child.pid as number
    const before = { broker: cpuTimeMs(target.broker.pid), redis: redisPid === undefined ? 0 : cpuTimeMs(redisPid), generator: cpuTimeMs(generatorPid), at: performance.now() }
    await sleep(idleS * 1000)
    const elapsedMs = performance.now() - before.at
    const brokerMs = cpuTimeMs(target.broker.pid) - before.broker
    const share = (ms: number): number => (ms / elapsedMs) * 100
    const added = connected - half
    const pings = (connected * elapsedMs) / (keepaliveS * 1000)
    return {
      target: name,
      connected,
      cpuPercent: share(brokerMs),
      redisPercent: redisPid === undefined ? 0 : share(cpuTimeMs(redisPid) - before.redis),
      generatorPercent: share(cpuTimeMs(generatorPid) - before.generator),
      usPerPing: (brokerMs * 1000) / pings,
      perConnection: {
        rss: (atAll.rssKiB - atHalf.rssKiB) * 1024 / added,
        anon: (atAll.anonKiB - atHalf.anonKiB) * 1024 / added,
        heapSize: (atAll.heapSize - atHalf.heapSize) / added,
        heapUsed: (atAll.heapUsed - atHalf.heapUsed) / added,
        external: (atAll.external - atHalf.external) / added,
        redisRss: (redisAtAll - redisAtHalf) * 1024 / added
      },
      spaces: atAll.spaces.map((space, i) => `${space.name.replace(/_space$/, '')} ${((space.size - (atHalf.spaces[i]?.size ?? 0)) / added).toFixed(0)}/${((space.used - (atHalf.spaces[i]?.used ?? 0)) / added).toFixed(0)}`).join(', ')
    }
  } finally {
    await stopGenerators([generator])
    await target.broker.stop()
    if (outputDir !== '') writeFileSync(join(outputDir, `${name}.log`), target.broker.output())
    await target.redis?.stop()
    rmSync(heapFile, { force: true })
  }
}

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '16667' },
    'idle-s': { type: 'string', default: String(keepaliveS) },
    // idle seconds after each half connects, before its memory is read: long enough, and V8's
    // memory reducer has returned what the connect burst left committed
    'settle-s': { type: 'string', default: '5' },
    targets: { type: 'string', default: 'ping,aedes,rb' },
    'node-args': { type: 'string', default: '' },
    baseline: { type: 'string', default: '' },
    // heap snapshots at half and all (scripts/heap-by-constructor.mjs), named <pid>-1, <pid>-2
    snapshots: { type: 'string', default: '' },
    // each target's output (its last 64 KiB: e.g. --node-args --trace-gc) as DIR/<target>.log
    output: { type: 'string', default: '' }
  }
})
const clients = Number(values.clients)
const idleS = Number(values['idle-s'])
const settleS = Number(values['settle-s'])
const nodeArgs = values['node-args'].split(' ').filter((arg) => arg !== '')
pinThisProcess()
const rows: Row[] = []
for (const [index, name] of values.targets.split(',').entries()) {
  process.stderr.write(`${name}: ${clients} clients, ${idleS} s idle\n`)
  rows.push(await measure(name, index, clients, idleS, settleS, nodeArgs, values.baseline, values.snapshots, values.output))
}
const bytes = (n: number): string => n.toFixed(0)
console.log(`\n${clients} idle clients, ${keepaliveS} s keepalives, ${idleS} s window; memory per connection from ${Math.floor(clients / 2)} to ${clients}, each read ${settleS} s after its connects (bytes; heap after a full GC)\n`)
console.log('| target | held | CPU (% of a core) | Redis | generator | µs per ping | RSS | anonymous | V8 heap committed | V8 heap used | external | Redis RSS |')
console.log('| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |')
for (const r of rows) {
  const m = r.perConnection
  console.log(`| ${r.target} | ${r.connected} | ${r.cpuPercent.toFixed(2)} | ${r.redisPercent.toFixed(2)} | ${r.generatorPercent.toFixed(2)} | ${r.usPerPing.toFixed(1)} | ${bytes(m.rss)} | ${bytes(m.anon)} | ${bytes(m.heapSize)} | ${bytes(m.heapUsed)} | ${bytes(m.external)} | ${bytes(m.redisRss)} |`)
}
console.log('\nV8 spaces, growth per connection (committed/used bytes):')
for (const r of rows) console.log(`- ${r.target}: ${r.spaces}`)
