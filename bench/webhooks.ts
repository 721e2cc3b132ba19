// `node dist/bench/webhooks.js [--quick] [--rate N] [--batch N] [--rounds N] [--seconds N] [--memory-only] [--no-pin] [--no-floor] [--cpu-prof DIR]`:
// message webhooks at a fixed rate (10,000 messages/s by default) to a receiver in this
// process, against the same broker without webhooks: whether the endpoint keeps up with zero
// loss (every event id received), and what the webhooks add to the broker's CPU per message.
// In memory, then with Redis (the outbox a Redis Stream). One publisher and one subscriber
// (QoS 0, 64-byte payloads) per broker. In memory, two floor rows: the webhook work alone
// (bench/webhook-floor.ts) at the same rate, with no broker, as a share of the reference.
//
// Method (a single run of each broker swung 2x between runs minutes apart): both brokers run
// side by side, warmed up (JIT, pools) before anything is counted, then measured in interleaved
// rounds (without, with, with, without, ...) so that a drift of the machine falls on both; each
// round reads the active broker's CPU from /proc, and the table shows medians. Brokers (and
// Redis) are pinned to CPU 0, this generator and its receiver to CPU 1, as the main harness does.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { connect, type MqttClient } from 'mqtt'
import { defaultOptions } from '../src/broker/config/defaults.js'
import { startCpuMeter } from './load/cpu-meter.js'
import { brokerCpu, cpuTimeMs, disablePinning, pinThisProcess, sleep, startChild } from './process.js'
import { redisUnavailable, startRedisServer, type BenchRedis } from './redis.js'
import { startNodeBroker, type RunningTarget } from './targets.js'

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
}

async function startRig (webhooks: boolean, clustered: boolean, batchSize: number | undefined, profileDir: string | undefined): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-webhooks-'))
  const redis = clustered ? await startRedisServer() : null
  const receiver = webhooks ? await startReceiver() : null
  const config: Record<string, unknown> = { auth: { anonymous: true }, presence: { enabled: false } }
  if (receiver !== null) config.webhooks = { endpoints: [{ name: 'bench', url: receiver.url, secret, events: ['message.published'], topics: ['bench/#'] }], ...(batchSize === undefined ? {} : { batchSize }) }
  writeFileSync(join(dir, 'config.yaml'), JSON.stringify(config))
  const args = [cliPath, 'start', '--config', join(dir, 'config.yaml'), ...(redis === null ? [] : ['--redis', redis.url])]
  const profile = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, `${clustered ? 'redis' : 'memory'}-${webhooks ? 'webhooks' : 'without'}`)}`]
  const broker = await startNodeBroker(args, { ...process.env, MQTT_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'warn', HOST: '127.0.0.1' }, { nodeArgs: () => profile })
  const url = `mqtt://127.0.0.1:${broker.publish.mqttPort}`
  const subscriber = connect(url, { clientId: 'bench-sub', reconnectPeriod: 0 })
  const publisher = connect(url, { clientId: 'bench-pub', reconnectPeriod: 0 })
  await Promise.all([subscriber, publisher].map((client) => new Promise((resolve) => client.once('connect', resolve))))
  await subscriber.subscribeAsync('bench/#', { qos: 0 })
  const rig: Rig = { broker, redis, receiver, subscriber, publisher, published: 0, delivered: 0, dir }
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

interface Round {
  published: number
  cpuMsPer1000: number
  /** Redis' CPU per 1,000 messages, when clustered. */
  redisMsPer1000: number | null
  /** Every other process of the machine, % of one CPU: what competed meanwhile. */
  otherPercent: number
  drainMs: number
}

const payload = Buffer.alloc(64, 'x')

/** Publishes at `rate` for `seconds`, waits until the subscriber and the receiver have everything (30 s at most); the broker's CPU over both. */
async function round (rig: Rig, rate: number, seconds: number): Promise<Round> {
  const redisPid = rig.redis?.handles[0]?.pid
  const meter = startCpuMeter({ pids: rig.broker.pids, ...(redisPid === undefined ? {} : { processes: [{ name: 'redis', pid: redisPid }] }) })
  const started = performance.now()
  const total = rate * seconds
  const first = rig.published
  // a tick every 10 ms, each catching up to the rate: no drift from timer lateness
  for (let published = 0; published < total;) {
    const due = Math.min(total, Math.floor((performance.now() - started) / 1000 * rate))
    for (; published < due; published++) rig.publisher.publish(`bench/t${(first + published) % 10}`, payload, { qos: 0 })
    await sleep(10)
  }
  rig.published += total
  const publishedAt = performance.now()
  const deadline = publishedAt + 30_000
  while (performance.now() < deadline && (rig.delivered < rig.published || (rig.receiver !== null && rig.receiver.ids.size < rig.published))) await sleep(20)
  const drainMs = performance.now() - publishedAt
  const share = meter()
  const elapsedMs = performance.now() - started
  const per1000 = (percent: number): number => percent / 100 * elapsedMs / total * 1000
  const redisShare = share.processes?.[0]?.share
  return { published: total, cpuMsPer1000: per1000(share.broker), redisMsPer1000: redisShare === undefined ? null : per1000(redisShare), otherPercent: share.other, drainMs }
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
      'memory-only': { type: 'boolean', default: false },
      'no-pin': { type: 'boolean', default: false },
      'no-floor': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' }
    }
  })
  // the broker's default unless asked: what a deployment gets
  const batchSize = values.batch === undefined ? undefined : Number(values.batch)
  const batchCap = batchSize ?? defaultOptions.webhooks.batchSize
  const rate = Number(values.rate)
  const rounds = Number(values.rounds ?? (values.quick ? 3 : 5))
  const seconds = Number(values.seconds ?? (values.quick ? 3 : 6))
  // a broker keeps getting cheaper for its first ~20 s (rounds of the last run fell 25 -> 13.7 ms per 1,000, in order)
  const warmupSeconds = values.quick ? 3 : 20
  if (values['no-pin']) disablePinning()
  const pinned = pinThisProcess()
  const rows: string[] = []
  const batchesSeen: string[] = []
  const modes: Array<{ name: string, clustered: boolean }> = [{ name: 'memory', clustered: false }]
  if (redisUnavailable() === null && !values['memory-only']) modes.push({ name: 'Redis', clustered: true })
  for (const mode of modes) {
    const without = await startRig(false, mode.clustered, batchSize, values['cpu-prof'])
    const withHooks = await startRig(true, mode.clustered, batchSize, values['cpu-prof']).catch(async (err: unknown) => { await stopRig(without); throw err })
    try {
      await round(without, rate, warmupSeconds)
      await round(withHooks, rate, warmupSeconds)
      const measured = { without: [] as Round[], with: [] as Round[] }
      // ABBA: each pair's order alternates, so a drift of the machine is charged to both
      for (let at = 0; at < rounds; at++) {
        const order = at % 2 === 0 ? (['without', 'with'] as const) : (['with', 'without'] as const)
        for (const which of order) measured[which].push(await round(which === 'with' ? withHooks : without, rate, seconds))
      }
      const ratios = measured.with.map((r, at) => r.cpuMsPer1000 / (measured.without[at] as Round).cpuMsPer1000)
      const row = (label: string, rig: Rig, list: Round[], ratio: string): void => {
        const cpu = list.map((r) => r.cpuMsPer1000)
        const events = rig.receiver?.ids.size
        const redisCpu = list.map((r) => r.redisMsPer1000).filter((v): v is number => v !== null)
        rows.push(`| ${label} | ${rig.published} | ${rig.delivered} | ${events ?? ''} | ${events === undefined ? '' : rig.published - events} | ${rig.receiver === null ? '' : rig.receiver.received() - rig.receiver.ids.size} | ${median(cpu).toFixed(1)} (${cpu.map((v) => v.toFixed(1)).join(' ')}) | ${ratio} | ${redisCpu.length === 0 ? '' : median(redisCpu).toFixed(1)} | ${median(list.map((r) => r.otherPercent)).toFixed(0)}% | ${Math.round(median(list.map((r) => r.drainMs)))} |`)
      }
      row(`${mode.name}, no webhooks`, without, measured.without, '')
      row(`${mode.name}, message webhooks`, withHooks, measured.with, `${median(ratios).toFixed(2)}x (${ratios.map((v) => v.toFixed(2)).join(' ')})`)
      const batches = withHooks.receiver?.batches ?? []
      batchesSeen.push(`${mode.name}: ${batches.length} requests, events per request median ${median(batches)}, max ${Math.max(...batches)}`)
      if (!mode.clustered && !values['no-floor']) {
        // what the webhook work costs with no broker around it, next to this run's reference
        // (less the same process pacing itself with nothing to do: a broker at this rate is awake anyway)
        const reference = median(measured.without.map((r) => r.cpuMsPer1000))
        const idle = median(await floor('idle', rate, batchCap, rounds, seconds, warmupSeconds))
        for (const [label, kind] of [['floor: signed POSTs of pre-built batches only', 'post'], ['floor: events built, memory outbox, sender; no broker', 'pipeline']] as const) {
          const cpu = (await floor(kind, rate, batchCap, rounds, seconds, warmupSeconds)).map((v) => v - idle)
          rows.push(`| ${label} (less ${idle.toFixed(1)} idle) | | | | | | ${median(cpu).toFixed(1)} (${cpu.map((v) => v.toFixed(1)).join(' ')}) | +${(median(cpu) / reference * 100).toFixed(0)}% of the reference | | | |`)
        }
      }
    } finally {
      await stopRig(withHooks)
      await stopRig(without)
    }
  }
  process.stdout.write([
    `Message webhooks at ${rate} msg/s (QoS 0, 64 B, one publisher, one subscriber; events in batches of up to ${batchCap}${batchSize === undefined ? ', the default' : ''}): ${warmupSeconds} s of warm-up each, then ${rounds} interleaved rounds of ${seconds} s; ${pinned ? 'brokers and Redis pinned to CPU 0, generator and receiver to CPU 1' : 'nothing pinned'}.`,
    'CPU per 1,000 messages: the median of the rounds (each round in brackets); the ratio: the median of each pair\'s ratio. Published, delivered, events, lost, duplicates: every round and the warm-up together.',
    '',
    '| broker | published | delivered | webhook events | lost | duplicates | broker CPU ms / 1,000 msgs | CPU vs without | Redis CPU ms / 1,000 | other processes | drain after publish (ms) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `Batches the receiver saw: ${batchesSeen.join('; ')}.`,
    ''
  ].join('\n'))
}

await main()
