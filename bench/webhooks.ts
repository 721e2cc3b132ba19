// `node dist/bench/webhooks.js [--quick] [--rate N] [--batch N] [--rounds N] [--seconds N] [--warmup S] [--memory-only | --redis-only] [--no-pin] [--no-floor] [--control] [--lower-bound] [--ladder [--rungs A,B,...]] [--also-batching N,MS] [--cpu-prof DIR] [--node-args="FLAGS"]`
// (BENCH_BASELINE=<checkout>: that checkout's build with webhooks as one more broker):
// message webhooks at a fixed rate (10,000 messages/s by default) to a receiver in this
// process, against the same broker without webhooks: whether the endpoint keeps up with zero
// loss (every event id received), and what the webhooks add to the broker's CPU per message.
// In memory, then with Redis (the outbox a Redis Stream). One publisher and one subscriber
// (QoS 0, 64-byte payloads) per broker. In memory, two floor rows: the webhook work alone
// (bench/webhook-floor.ts) at the same rate, with no broker, as a share of the reference.
//
// Method: the brokers run side by side, pinned to the same CPU, and are published to at the
// same time, each at the full rate; each round reads every broker's CPU from /proc over the
// same wall window, and the ratio is taken round by round. Measured one after the other (the
// method of earlier rounds), a broker's CPU per message swung up to 3x between consecutive
// 6 s rounds with no other process busy (this VM's CPU is as fast as its host lets it be), so
// a ratio's pair spanned 0.92-2.28x; measured together, what slows the CPU slows all brokers
// alike. `--control` adds a second broker without webhooks: its ratio is the method's own
// spread. Warmed up (JIT, pools) before anything is counted. Brokers (and Redis) are pinned to
// CPU 0, this generator and its receivers to CPU 1, as the main harness does.
// `--ladder` (bench/webhook-ladder.ts): a broker per rung of the webhooks' work beside the
// others, each rung's ratio and the step from the rung below, round by round (`--rungs`: those
// only; more than 9 brokers overloaded the generator and CPU 0 here). `--also-batching
// N,MS`: one more broker of this build whose batches hold up to N events and wait MS.
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { connect, type MqttClient } from 'mqtt'
import { defaultOptions } from '../src/broker/config/defaults.js'
import { ladderRungs, type LadderRung } from './webhook-ladder.js'
import { startCpuMeter } from './load/cpu-meter.js'
import { brokerCpu, cpuTimeMs, disablePinning, pinThisProcess, sleep, startChild } from './process.js'
import { redisUnavailable, startRedisServer, type BenchRedis } from './redis.js'
import { projectRoot, startNodeBroker, type RunningTarget } from './targets.js'

const cliPath = fileURLToPath(new URL('../src/cli.js', import.meta.url))
const floorPath = fileURLToPath(new URL('./webhook-floor.js', import.meta.url))
const secret = 'bench-webhook-secret-0123456789abcdef'

interface Receiver {
  url: string
  ids: Set<string>
  received: () => number
  /** Events per request, each request's. */
  batches: number[]
  close: () => void
}

/** A receiver counting distinct event ids. */
async function startReceiver (): Promise<Receiver> {
  const ids = new Set<string>()
  const batches: number[] = []
  let received = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const { events } = JSON.parse(Buffer.concat(chunks).toString()) as { events: Array<{ id: string }> }
      for (const event of events) ids.add(event.id)
      received += events.length
      batches.push(events.length)
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`, ids, received: () => received, batches, close: () => { server.closeAllConnections(); server.close() } }
}

/** A broker (with its own Redis, when clustered: two nodes on one Redis would route to each other), its clients and receiver. */
interface Rig {
  broker: RunningTarget
  redis: BenchRedis | null
  receiver: Receiver | null
  subscriber: MqttClient
  publisher: MqttClient
  /** Messages published to and delivered by this broker so far, every round included. */
  published: number
  delivered: number
  dir: string
  /** Its webhooks send nothing (a stand-in rung's broker): no event is waited for. */
  sendsNothing: boolean
}

/** A broker built from another checkout (`cli`), or the stripped copy's at `rung` (which sends nothing); `batchDelayMs` other than the default. */
interface RigBuild {
  cli: string
  rung?: StandInRung
  batchDelayMs?: number
}

async function startRig (webhooks: boolean, clustered: boolean, batchSize: number | undefined, profileDir: string | undefined, nodeArgs: readonly string[], build: RigBuild = { cli: cliPath }): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-webhooks-'))
  const redis = clustered ? await startRedisServer() : null
  const receiver = webhooks ? await startReceiver() : null
  const config: Record<string, unknown> = { auth: { anonymous: true }, presence: { enabled: false } }
  if (receiver !== null) config.webhooks = { endpoints: [{ name: 'bench', url: receiver.url, secret, events: ['message.published'], topics: ['bench/#'] }], ...(batchSize === undefined ? {} : { batchSize }), ...(build.batchDelayMs === undefined ? {} : { batchDelayMs: build.batchDelayMs }) }
  writeFileSync(join(dir, 'config.yaml'), JSON.stringify(config))
  const args = [build.cli, 'start', '--config', join(dir, 'config.yaml'), ...(redis === null ? [] : ['--redis', redis.url])]
  // sampled every 250 µs (Node's default is 1 ms): a message's few µs show in more samples
  const profile = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-interval=250', `--cpu-prof-dir=${join(profileDir, `${clustered ? 'redis' : 'memory'}-${webhooks ? 'webhooks' : 'without'}`)}`]
  const broker = await startNodeBroker(args, { ...process.env, ...(build.rung === undefined ? {} : { BENCH_WEBHOOK_RUNG: build.rung }), MQTT_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'warn', HOST: '127.0.0.1' }, { nodeArgs: () => [...profile, ...nodeArgs] })
  const url = `mqtt://127.0.0.1:${broker.publish.mqttPort}`
  const subscriber = connect(url, { clientId: 'bench-sub', reconnectPeriod: 0 })
  const publisher = connect(url, { clientId: 'bench-pub', reconnectPeriod: 0 })
  await Promise.all([subscriber, publisher].map((client) => new Promise((resolve) => client.once('connect', resolve))))
  await subscriber.subscribeAsync('bench/#', { qos: 0 })
  const rig: Rig = { broker, redis, receiver, subscriber, publisher, published: 0, delivered: 0, dir, sendsNothing: build.rung !== undefined }
  subscriber.on('message', () => { rig.delivered++ })
  return rig
}

async function stopRig (rig: Rig): Promise<void> {
  rig.subscriber.end(true)
  rig.publisher.end(true)
  await rig.broker.stop()
  await rig.redis?.stop()
  rig.receiver?.close()
  rmSync(rig.dir, { recursive: true, force: true })
}

/** One broker's share of a round. */
interface BrokerRound {
  cpuMsPer1000: number
  /** Redis' CPU per 1,000 messages, when clustered. */
  redisMsPer1000: number | null
}

interface Round {
  /** Each rig's, in the order given. */
  brokers: BrokerRound[]
  /** Every other process of the machine, % of one CPU: what competed meanwhile. */
  otherPercent: number
  /** This generator and its receivers, % of one CPU. */
  generatorPercent: number
  drainMs: number
}

const payload = Buffer.alloc(64, 'x')

/**
 * Publishes at `rate` to every rig at once for `seconds` (which rig a tick serves first
 * alternates), waits until every subscriber and receiver has everything (30 s at most); each
 * broker's CPU over the same wall window: whatever the machine does meanwhile (a neighbour, the
 * hypervisor) falls on all of them alike.
 */
async function round (rigs: readonly Rig[], rate: number, seconds: number): Promise<Round> {
  const processes = rigs.flatMap((rig, at) => [
    ...rig.broker.pids.map((pid) => ({ name: `broker ${at}`, pid })),
    ...(rig.redis?.handles.map((handle) => ({ name: `redis ${at}`, pid: handle.pid })) ?? [])
  ])
  const meter = startCpuMeter({ pids: processes.map((p) => p.pid), processes })
  const started = performance.now()
  const total = rate * seconds
  const first = rigs.map((rig) => rig.published)
  // a tick every 10 ms, each catching up to the rate: no drift from timer lateness
  for (let published = 0, tick = 0; published < total; tick++) {
    const due = Math.min(total, Math.floor((performance.now() - started) / 1000 * rate))
    for (let r = 0; r < rigs.length; r++) {
      const at = (r + tick) % rigs.length
      const rig = rigs[at] as Rig
      for (let n = published; n < due; n++) rig.publisher.publish(`bench/t${((first[at] as number) + n) % 10}`, payload, { qos: 0 })
    }
    published = due
    await sleep(10)
  }
  for (const rig of rigs) rig.published += total
  const publishedAt = performance.now()
  const deadline = publishedAt + 30_000
  const drained = (rig: Rig): boolean => rig.delivered >= rig.published && (rig.receiver === null || rig.sendsNothing || rig.receiver.ids.size >= rig.published)
  while (performance.now() < deadline && !rigs.every(drained)) await sleep(20)
  const drainMs = performance.now() - publishedAt
  const share = meter()
  const elapsedMs = performance.now() - started
  const per1000 = (percent: number): number => percent / 100 * elapsedMs / total * 1000
  const of = (name: string): number | null => {
    const shares = share.processes?.filter((p) => p.name === name) ?? []
    return shares.length === 0 ? null : shares.reduce((sum, p) => sum + p.share, 0)
  }
  const brokers = rigs.map((_, at) => {
    const redis = of(`redis ${at}`)
    return { cpuMsPer1000: per1000(of(`broker ${at}`) ?? 0), redisMsPer1000: redis === null ? null : per1000(redis) }
  })
  return { brokers, otherPercent: share.other, generatorPercent: share.generator, drainMs }
}

/** The rungs of the Redis outbox's own ladder: appends that store nothing. */
const redisRungs = {
  queue: 'events made and buffered, each append a no-op, nothing sent',
  ping: 'events made and buffered, each append one PING, nothing sent'
} as const

type StandInRung = LadderRung | keyof typeof redisRungs

/**
 * A checkout of this build (a copy of dist/) whose webhooks run the stand-in of the rung in a
 * broker's BENCH_WEBHOOK_RUNG (bench/webhook-ladder.ts), the product's code without it: the
 * message path's rungs in broker-events.js; in http-post.js, `queue` resolves 204 at once
 * (events made, queued and batched, nothing signed or sent) and `sign` signs, then resolves;
 * in redis-outbox.js, `queue` and `ping` store nothing (their buffers reused as after a stored
 * append), `ping` with one round trip an append. `--lower-bound` is `queue` in memory, `ping`
 * with Redis. A rung's CPU is what the webhooks cost at least with the rest free.
 */
function standInCheckout (): string {
  const root = mkdtempSync(join(tmpdir(), 'bench-webhooks-floor-'))
  cpSync(fileURLToPath(new URL('..', import.meta.url)), join(root, 'dist'), { recursive: true })
  for (const shared of ['node_modules', 'config', 'patches', 'package.json']) symlinkSync(join(projectRoot, shared), join(root, shared))
  const replace = (file: string, edits: ReadonlyArray<readonly [string, string]>): void => {
    const path = join(root, 'dist', 'src', 'broker', 'webhooks', file)
    let text = readFileSync(path, 'utf8')
    for (const [from, to] of edits) {
      if (!text.includes(from)) throw new Error(`stand-ins: ${path} no longer holds ${from}`)
      text = text.replace(from, to)
    }
    writeFileSync(path, `import { ladderEmitter, ladderRung } from '../../../bench/webhook-ladder.js';\n${text}`)
  }
  const answered = '{ status: 204, body: \'\', truncated: false }'
  replace('broker-events.js', [
    ['return (packet, client, done) => {', 'const emit = ladderEmitter(webhooks); return (packet, client, done) => {'],
    ['webhooks.emitMessage(packet, client, clientPiece)', 'emit(packet, client, clientPiece)']
  ])
  replace('http-post.js', [
    ['export async function postSigned(post) {', `export async function postSigned(post) { if (ladderRung === 'queue') return ${answered};`],
    ['return await client.request(', `if (ladderRung === 'sign') return ${answered}; return await client.request(`]
  ])
  replace('redis-outbox.js', [
    ['const results = await this.commands.webhookAppend(', "if (ladderRung === 'queue' || ladderRung === 'ping') { if (ladderRung === 'ping') await this.redis.ping(); for (const entry of entries) this.slabs.giveBack(entry.slab); return; } const results = await this.commands.webhookAppend("]
  ])
  return root
}

/** Calls per command so far (INFO commandstats), of a rig's Redis. */
function redisCalls (rig: Rig): Map<string, number> {
  const port = rig.redis === null ? null : new URL(rig.redis.url).port
  const calls = new Map<string, number>()
  if (port === null) return calls
  const info = spawnSync('redis-cli', ['-p', port, 'INFO', 'commandstats']).stdout.toString()
  for (const [, command, count] of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(command as string, Number(count))
  return calls
}

/** The commands a rig's Redis ran between two readings, per 1,000 messages, the most called first. */
function callsPer1000 (before: Map<string, number>, after: Map<string, number>, messages: number): string {
  return [...after].map(([command, calls]) => [command, (calls - (before.get(command) ?? 0)) / messages * 1000] as const)
    .filter(([, per1000]) => per1000 >= 0.05).sort((a, b) => b[1] - a[1])
    .map(([command, per1000]) => `${command} ${per1000.toFixed(1)}`).join(', ')
}

/**
 * The CPU per 1,000 events of the webhook work alone (bench/webhook-floor.ts, pinned where
 * the brokers are), at the same rate: the median of `rounds` windows after a warm-up.
 */
async function floor (mode: 'idle' | 'post' | 'pipeline', rate: number, batchSize: number, rounds: number, seconds: number, warmupSeconds: number): Promise<number[]> {
  const receiver = await startReceiver()
  const child = startChild(process.execPath, [floorPath, mode, receiver.url, String(rate), String(batchSize)], { cpu: brokerCpu })
  try {
    await sleep(warmupSeconds * 1000)
    const perRound: number[] = []
    for (let at = 0; at < rounds; at++) {
      const [cpuStart, started] = [cpuTimeMs(child.pid), performance.now()]
      await sleep(seconds * 1000)
      perRound.push((cpuTimeMs(child.pid) - cpuStart) / ((performance.now() - started) / 1000 * rate) * 1000)
    }
    if (mode !== 'idle' && receiver.received() === 0) throw new Error(`the ${mode} floor delivered nothing:\n${child.output()}`)
    return perRound
  } finally {
    await child.stop()
    receiver.close()
  }
}

function median (values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      rate: { type: 'string', default: '10000' },
      batch: { type: 'string' },
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      'memory-only': { type: 'boolean', default: false },
      'redis-only': { type: 'boolean', default: false },
      'no-pin': { type: 'boolean', default: false },
      'no-floor': { type: 'boolean', default: false },
      control: { type: 'boolean', default: false },
      'lower-bound': { type: 'boolean', default: false },
      ladder: { type: 'boolean', default: false },
      rungs: { type: 'string' },
      'also-batching': { type: 'string' },
      'cpu-prof': { type: 'string' },
      // node flags for every broker (--trace-gc, say: NODE_OPTIONS refuses some); BENCH_TIMELINE_DIR keeps their output
      'node-args': { type: 'string', default: '' }
    }
  })
  // the broker's default unless asked: what a deployment gets
  const batchSize = values.batch === undefined ? undefined : Number(values.batch)
  const batchCap = batchSize ?? defaultOptions.webhooks.batchSize
  const rate = Number(values.rate)
  const rounds = Number(values.rounds ?? (values.quick ? 3 : 7))
  const seconds = Number(values.seconds ?? (values.quick ? 3 : 6))
  // a broker keeps getting cheaper for its first ~20 s (rounds of the last run fell 25 -> 13.7 ms per 1,000, in order);
  // the webhooks' per-request and per-append paths (10-50 calls a second) were still being
  // optimized 30-45 s in: --warmup measures later (120 s gave the ratios of 20 s, 2026-12-05)
  const warmupSeconds = Number(values.warmup ?? (values.quick ? 3 : 20))
  const standInRoot = values['lower-bound'] || values.ladder ? standInCheckout() : undefined
  const [alsoBatch, alsoDelayMs] = values['also-batching']?.split(',').map(Number) ?? []
  const nodeArgs = values['node-args'].split(' ').filter((arg) => arg !== '')
  const baselineCli = process.env.BENCH_BASELINE === undefined ? undefined : join(process.env.BENCH_BASELINE, 'dist', 'src', 'cli.js')
  if (values['no-pin']) disablePinning()
  const pinned = pinThisProcess()
  const rows: string[] = []
  const notes: string[] = []
  const modes: Array<{ name: string, clustered: boolean }> = values['redis-only'] ? [] : [{ name: 'memory', clustered: false }]
  if (redisUnavailable() === null && !values['memory-only']) modes.push({ name: 'Redis', clustered: true })
  for (const mode of modes) {
    const rigs: Rig[] = []
    try {
      // the control: a second broker without webhooks, measured like the others (the method's own spread)
      for (const hooks of values.control ? [false, true, false] : [false, true]) rigs.push(await startRig(hooks, mode.clustered, batchSize, values['cpu-prof'], nodeArgs))
      const [without, withHooks, control] = rigs as [Rig, Rig, Rig | undefined]
      // the same webhooks built from another checkout (the commit before a change), in the same windows
      const baseline = baselineCli === undefined ? undefined : await startRig(true, mode.clustered, batchSize, undefined, nodeArgs, { cli: baselineCli })
      if (baseline !== undefined) rigs.push(baseline)
      const wider = alsoBatch === undefined ? undefined : await startRig(true, mode.clustered, alsoBatch, undefined, nodeArgs, { cli: cliPath, batchDelayMs: alsoDelayMs ?? defaultOptions.webhooks.batchDelayMs })
      if (wider !== undefined) rigs.push(wider)
      // the stand-in rungs, each its own broker; the ladder's rungs in the order of their steps (the full product last)
      const ladder: StandInRung[] = mode.clustered ? ['queue', 'ping'] : ['plumbing', 'copy', 'stream', 'match', 'make', 'append', 'tick', 'loop', 'queue', 'sign']
      const chosen = values.rungs?.split(',')
      const rungs: StandInRung[] = standInRoot === undefined ? [] : !values.ladder ? [mode.clustered ? 'ping' : 'queue'] : ladder.filter((rung) => chosen?.includes(rung) ?? true)
      const rungRigs = new Map<StandInRung, Rig>()
      for (const rung of rungs) {
        const rig = await startRig(true, mode.clustered, batchSize, undefined, nodeArgs, { cli: join(standInRoot as string, 'dist', 'src', 'cli.js'), rung })
        rungRigs.set(rung, rig)
        rigs.push(rig)
      }
      await round(rigs, rate, warmupSeconds)
      const callsBefore = rigs.map(redisCalls)
      const measured: Round[] = []
      for (let at = 0; at < rounds; at++) measured.push(await round(rigs, rate, seconds))
      if (mode.clustered) {
        const calls = rigs.map((rig, at) => `${at === 0 ? 'without' : `broker ${at}`}: ${callsPer1000(callsBefore[at] as Map<string, number>, redisCalls(rig), rounds * seconds * rate)}`)
        notes.push(`${mode.name}: Redis commands per 1,000 messages (INFO commandstats over the rounds): ${calls.join('; ')}`)
      }
      const cpuOf = (at: number): number[] => measured.map((r) => (r.brokers[at] as BrokerRound).cpuMsPer1000)
      const ratiosTo = (at: number): number[] => cpuOf(at).map((cpu, round) => cpu / (cpuOf(0)[round] as number))
      const row = (label: string, rig: Rig, at: number): void => {
        const cpu = cpuOf(at)
        const events = rig.receiver?.ids.size
        const redisCpu = measured.map((r) => (r.brokers[at] as BrokerRound).redisMsPer1000).filter((v): v is number => v !== null)
        const ratios = ratiosTo(at)
        const ratio = at === 0 ? '' : `${median(ratios).toFixed(2)}x (${ratios.map((v) => v.toFixed(2)).join(' ')}; spread ${(Math.max(...ratios) - Math.min(...ratios)).toFixed(2)})`
        const sent = rig.sendsNothing ? undefined : events
        rows.push(`| ${label} | ${rig.published} | ${rig.delivered} | ${sent ?? ''} | ${sent === undefined ? '' : rig.published - sent} | ${rig.receiver === null || rig.sendsNothing ? '' : rig.receiver.received() - rig.receiver.ids.size} | ${median(cpu).toFixed(1)} (${cpu.map((v) => v.toFixed(1)).join(' ')}) | ${ratio} | ${redisCpu.length === 0 ? '' : median(redisCpu).toFixed(1)} |`)
      }
      row(`${mode.name}, no webhooks`, without, 0)
      row(`${mode.name}, message webhooks`, withHooks, 1)
      if (control !== undefined) row(`${mode.name}, no webhooks (control)`, control, 2)
      if (baseline !== undefined) {
        row(`${mode.name}, message webhooks, ${process.env.BENCH_BASELINE ?? ''} (baseline)`, baseline, rigs.indexOf(baseline))
        // the two builds' webhooks round by round, unrounded: what a change saves
        const paired = cpuOf(1).map((cpu, round) => cpu / (cpuOf(rigs.indexOf(baseline))[round] as number))
        notes.push(`${mode.name}: this build's webhooks over the baseline's, paired by round: median ${median(paired).toFixed(3)} (${paired.map((v) => v.toFixed(3)).join(' ')})`)
      }
      if (wider !== undefined) {
        row(`${mode.name}, message webhooks, batches of up to ${alsoBatch} events waiting ${alsoDelayMs} ms`, wider, rigs.indexOf(wider))
        const paired = cpuOf(rigs.indexOf(wider)).map((cpu, round) => cpu / (cpuOf(1)[round] as number))
        notes.push(`${mode.name}: batches of up to ${alsoBatch} events over the default's, paired by round: median ${median(paired).toFixed(3)} (${paired.map((v) => v.toFixed(3)).join(' ')}); ${wider.receiver?.batches.length ?? 0} requests against ${withHooks.receiver?.batches.length ?? 0}`)
      }
      const rungLabel = (rung: StandInRung): string => mode.clustered ? redisRungs[rung as keyof typeof redisRungs] : ladderRungs[rung as LadderRung]
      for (const [rung, rig] of rungRigs) row(`${mode.name}, message webhooks, ${rungLabel(rung)} (stand-in)`, rig, rigs.indexOf(rig))
      if (values.ladder) {
        // each step's share of the reference, round by round: a rung's ratio less the one below it
        const steps: Array<readonly [StandInRung, StandInRung | 'full']> = mode.clustered
          ? [['queue', 'ping'], ['ping', 'full']]
          : [['plumbing', 'copy'], ['plumbing', 'stream'], ['plumbing', 'match'], ['match', 'make'], ['make', 'append'], ['make', 'tick'], ['make', 'loop'], ['loop', 'queue'], ['make', 'queue'], ['queue', 'sign'], ['sign', 'full']]
        const measuredSteps = steps.filter(([from, to]) => rungRigs.has(from) && (to === 'full' || rungRigs.has(to)))
        const ratiosOf = (rung: StandInRung | 'full'): number[] => ratiosTo(rung === 'full' ? 1 : rigs.indexOf(rungRigs.get(rung) as Rig))
        const described = measuredSteps.map(([from, to]) => {
          const step = ratiosOf(to).map((ratio, round) => ratio - (ratiosOf(from)[round] as number))
          return `${from} -> ${to} ${median(step).toFixed(3)} (${Math.min(...step).toFixed(3)} to ${Math.max(...step).toFixed(3)})`
        })
        notes.push(`${mode.name}: the ladder's steps, the median over rounds of the upper rung's ratio less the lower's (their range): ${described.join('; ')}`)
      }
      const batches = withHooks.receiver?.batches ?? []
      notes.push(`${mode.name}: the receiver saw ${batches.length} requests, events per request median ${median(batches)}, max ${Math.max(...batches)}; other processes ${median(measured.map((r) => r.otherPercent)).toFixed(0)}% (${measured.map((r) => r.otherPercent.toFixed(0)).join(' ')}), this generator ${median(measured.map((r) => r.generatorPercent)).toFixed(0)}% of a CPU; drain after publishing ${Math.round(median(measured.map((r) => r.drainMs)))} ms (medians of the rounds)`)
      if (!mode.clustered && !values['no-floor']) {
        // what the webhook work costs with no broker around it, next to this run's reference
        // (less the same process pacing itself with nothing to do: a broker at this rate is awake anyway)
        const reference = median(cpuOf(0))
        const idle = median(await floor('idle', rate, batchCap, rounds, seconds, warmupSeconds))
        for (const [label, kind] of [['floor: signed POSTs of pre-built batches only', 'post'], ['floor: events built, memory outbox, sender; no broker', 'pipeline']] as const) {
          const cpu = (await floor(kind, rate, batchCap, rounds, seconds, warmupSeconds)).map((v) => v - idle)
          rows.push(`| ${label} (less ${idle.toFixed(1)} idle) | | | | | | ${median(cpu).toFixed(1)} (${cpu.map((v) => v.toFixed(1)).join(' ')}) | +${(median(cpu) / reference * 100).toFixed(0)}% of the reference | |`)
        }
      }
    } finally {
      for (const rig of rigs) await stopRig(rig)
    }
  }
  if (standInRoot !== undefined) rmSync(standInRoot, { recursive: true, force: true })
  process.stdout.write([
    `Message webhooks at ${rate} msg/s to each broker at once (QoS 0, 64 B, one publisher, one subscriber per broker; events in batches of up to ${batchCap}${batchSize === undefined ? ', the default' : ''}): ${warmupSeconds} s of warm-up, then ${rounds} rounds of ${seconds} s; ${pinned ? 'brokers and Redis pinned to CPU 0, generator and receivers to CPU 1' : 'nothing pinned'}.`,
    'CPU per 1,000 messages: the median of the rounds (each round in brackets), every broker measured over the same wall window; the ratio: the median of each round\'s ratio to the broker without webhooks. Published, delivered, events, lost, duplicates: every round and the warm-up together.',
    '',
    '| broker | published | delivered | webhook events | lost | duplicates | broker CPU ms / 1,000 msgs | CPU vs without | Redis CPU ms / 1,000 |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    ...notes.map((note) => `- ${note}.`),
    ''
  ].join('\n'))
}

await main()
