// `node dist/bench/webhooks.js [--quick] [--rate N] [--batch N] [--memory-only] [--cpu-prof DIR]`: message webhooks at a fixed rate (10,000
// messages/s by default) to a receiver in this process, against the same broker without
// webhooks: whether the endpoint keeps up with zero loss (every event id received), and what
// the webhooks add to the broker's CPU per message. In memory, then with Redis (the outbox a
// Redis Stream). One publisher and one subscriber (QoS 0, 64-byte payloads) on one node.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { connect } from 'mqtt'
import { cpuTimeMs, sleep } from './process.js'
import { redisUnavailable, startRedisServer } from './redis.js'
import { startNodeBroker } from './targets.js'

const cliPath = fileURLToPath(new URL('../src/cli.js', import.meta.url))
const secret = 'bench-webhook-secret-0123456789abcdef'

interface Outcome {
  published: number
  delivered: number
  events: number
  duplicates: number
  cpuMsPer1000: number
  drainMs: number
}

/** A receiver counting distinct event ids. */
async function startReceiver (): Promise<{ url: string, ids: Set<string>, received: () => number, close: () => void }> {
  const ids = new Set<string>()
  let received = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const { events } = JSON.parse(Buffer.concat(chunks).toString()) as { events: Array<{ id: string }> }
      for (const event of events) ids.add(event.id)
      received += events.length
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`, ids, received: () => received, close: () => { server.closeAllConnections(); server.close() } }
}

async function measure (rate: number, seconds: number, webhooks: boolean, redisUrl: string | null, batchSize: number, profileDir: string | undefined): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-webhooks-'))
  const receiver = webhooks ? await startReceiver() : null
  const config: Record<string, unknown> = { auth: { anonymous: true }, presence: { enabled: false } }
  if (receiver !== null) config.webhooks = { endpoints: [{ name: 'bench', url: receiver.url, secret, events: ['message.published'], topics: ['bench/#'] }], batchSize }
  writeFileSync(join(dir, 'config.yaml'), JSON.stringify(config))
  const args = [cliPath, 'start', '--config', join(dir, 'config.yaml'), ...(redisUrl === null ? [] : ['--redis', redisUrl])]
  const broker = await startNodeBroker(args, { ...process.env, MQTT_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'warn', HOST: '127.0.0.1' }, { nodeArgs: () => profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, `${redisUrl === null ? 'memory' : 'redis'}-${webhooks ? 'webhooks' : 'without'}`)}`] }, false)
  try {
    const url = `mqtt://127.0.0.1:${broker.publish.mqttPort}`
    const subscriber = connect(url, { clientId: 'bench-sub', reconnectPeriod: 0 })
    const publisher = connect(url, { clientId: 'bench-pub', reconnectPeriod: 0 })
    await Promise.all([subscriber, publisher].map((client) => new Promise((resolve) => client.once('connect', resolve))))
    await subscriber.subscribeAsync('bench/#', { qos: 0 })
    let delivered = 0
    subscriber.on('message', () => { delivered++ })
    const payload = Buffer.alloc(64, 'x')
    const pid = broker.pids[0] as number
    const cpuStart = cpuTimeMs(pid)
    const started = performance.now()
    const total = rate * seconds
    let published = 0
    // a tick every 10 ms, each catching up to the rate: no drift from timer lateness
    while (published < total) {
      const due = Math.min(total, Math.floor((performance.now() - started) / 1000 * rate))
      for (; published < due; published++) publisher.publish(`bench/t${published % 10}`, payload, { qos: 0 })
      await sleep(10)
    }
    const publishedAt = performance.now()
    // done once the subscriber (and the receiver) have everything, or 30 s later
    const deadline = publishedAt + 30_000
    while (performance.now() < deadline && (delivered < total || (receiver !== null && receiver.ids.size < total))) await sleep(20)
    const drainMs = performance.now() - publishedAt
    const cpuMs = cpuTimeMs(pid) - cpuStart
    subscriber.end(true)
    publisher.end(true)
    return {
      published,
      delivered,
      events: receiver?.ids.size ?? 0,
      duplicates: receiver === null ? 0 : receiver.received() - receiver.ids.size,
      cpuMsPer1000: cpuMs / published * 1000,
      drainMs
    }
  } finally {
    await broker.stop()
    receiver?.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, rate: { type: 'string', default: '10000' }, batch: { type: 'string', default: '100' }, 'memory-only': { type: 'boolean', default: false }, 'cpu-prof': { type: 'string' } } })
  const batchSize = Number(values.batch)
  const rate = Number(values.rate)
  const seconds = values.quick ? 5 : 15
  const rows: string[] = []
  const row = (label: string, outcome: Outcome, reference?: Outcome): void => {
    const lost = outcome.events === 0 ? '' : String(outcome.published - outcome.events)
    const ratio = reference === undefined ? '' : `${(outcome.cpuMsPer1000 / reference.cpuMsPer1000).toFixed(2)}x`
    rows.push(`| ${label} | ${outcome.published} | ${outcome.delivered} | ${outcome.events === 0 ? '' : outcome.events} | ${lost} | ${outcome.duplicates === 0 ? (outcome.events === 0 ? '' : '0') : outcome.duplicates} | ${outcome.cpuMsPer1000.toFixed(1)} | ${ratio} | ${Math.round(outcome.drainMs)} |`)
  }
  const runs: Array<{ name: string, redis: boolean }> = [{ name: 'memory', redis: false }]
  if (redisUnavailable() === null && !values['memory-only']) runs.push({ name: 'Redis', redis: true })
  for (const run of runs) {
    const redis = run.redis ? await startRedisServer() : null
    try {
      const without = await measure(rate, seconds, false, redis?.url ?? null, batchSize, values['cpu-prof'])
      const withHooks = await measure(rate, seconds, true, redis?.url ?? null, batchSize, values['cpu-prof'])
      row(`${run.name}, no webhooks`, without)
      row(`${run.name}, message webhooks`, withHooks, without)
    } finally {
      await redis?.stop()
    }
  }
  process.stdout.write([
    `Message webhooks at ${rate} msg/s for ${seconds} s (QoS 0, 64 B, one publisher, one subscriber; events in batches of up to ${batchSize}):`,
    '',
    '| broker | published | delivered | webhook events | lost | duplicates | broker CPU ms / 1,000 msgs | CPU vs without | drain after publish (ms) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    ''
  ].join('\n'))
}

await main()
