// One process of the multi-process load generator of the fleet scenario (bench/scenarios/fleet.ts):
// holds its share of idle MQTT connections from its own loopback source address (one address
// has about 28,000 ephemeral ports towards one broker port, and a process at most 20,000 open
// files here), sends their PINGREQs at their keepalive, and on request runs the mixed load
// (a few of them publish a location every second, a few others subscribe to them). Driven by
// the harness over IPC (child_process.fork); one small state per connection, no client library.
import { connect as connectTcp, type Socket } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { generate } from 'mqtt-packet'
import { FrameReader } from './frame-reader.js'
import type { GeneratorShare } from './generator-process.js'
import { startPinging } from './keepalive-pinger.js'
import { PublishTemplate, readSentAt } from './publish-template.js'
import { SourcePorts } from './source-ports.js'
import { latencyInTimeline } from './timeline.js'

export interface FleetConnectRequest extends GeneratorShare {
  type: 'connect'
  port: number
  username?: string
  password?: string
}

export interface FleetMixedRequest {
  type: 'mixed'
  /** Of this process's connections: the first `publishers` publish, the next `subscribers` subscribe. */
  publishers: number
  subscribers: number
  /** Publishing before the measured window: its latencies are reported apart. */
  warmUpMs: number
  durationMs: number
}

export type FleetRequest = FleetConnectRequest | FleetMixedRequest | { type: 'usage' } | { type: 'exit' }

export type FleetReply =
  // of this request's connections
  | { type: 'progress', connected: number, failed: number }
  | { type: 'connected', connected: number, failed: number, firstError: string | null }
  // loopDelay*: how late this process's own event loop ran meanwhile, a share of every latency it timed
  | { type: 'mixed-done', latenciesMs: number[], warmUpLatenciesMs: number[], sent: number, received: number, closed: number, loopDelayP99Ms: number, loopDelayMaxMs: number }
  | { type: 'usage', rssKiB: number, open: number }

const CONNACK = 0x20

interface Connection {
  socket: Socket
  clientId: string
  topic: string
  ping: (packet: Buffer) => void
}

const connections: Connection[] = []
const sourcePorts = new SourcePorts()
let closedCount = 0
let stopPinging: (() => void) | null = null

function reply (message: FleetReply): void {
  process.send?.(message)
}

/** Opens one connection and resolves once its CONNACK 0 arrived. */
function openConnection (request: FleetConnectRequest, clientId: string): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const localPort = sourcePorts.take()
    const socket = connectTcp({ host: '127.0.0.1', port: request.port, localAddress: request.localAddress, ...(localPort === undefined ? {} : { localPort }) })
    socket.once('close', () => sourcePorts.release(localPort))
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`${clientId}: no CONNACK within 30 s`)) }, 30_000)
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
    socket.once('connect', () => {
      socket.setNoDelay(true)
      socket.write(generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId,
        clean: true,
        keepalive: request.keepaliveS,
        ...(request.username === undefined ? {} : { username: request.username }),
        ...(request.password === undefined ? {} : { password: Buffer.from(request.password) })
      }))
    })
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer)
      // CONNACK: 0x20 0x02 flags code
      if (chunk[0] !== CONNACK || chunk[3] !== 0) {
        socket.destroy()
        return reject(new Error(`${clientId}: CONNACK ${chunk[0] === CONNACK ? `return code ${String(chunk[3])}` : 'missing'}`))
      }
      socket.removeAllListeners('error')
      socket.on('error', () => {})
      socket.once('close', () => { closedCount++ })
      // idle: PINGRESPs only, read and dropped
      socket.on('data', ignoreData)
      resolve({ socket, clientId, topic: `bench/fleet/${clientId}`, ping: (packet) => { if (!socket.destroyed) socket.write(packet) } })
    })
  })
}

function ignoreData (): void {}

async function connectAll (request: FleetConnectRequest): Promise<void> {
  let next = 0
  let connected = 0
  let failed = 0
  let firstError: string | null = null
  const progress = setInterval(() => reply({ type: 'progress', connected, failed }), 500)
  // from the first connection on: a fleet that takes longer to connect than 1.5 keepalives
  // would otherwise lose its first clients to the broker's keepalive timeout
  if (request.keepaliveS > 0) stopPinging ??= startPinging(() => connections, request.keepaliveS)
  const worker = async (): Promise<void> => {
    while (next < request.count) {
      const clientId = `${request.prefix}${request.first + next++}`
      try {
        connections.push(await openConnection(request, clientId))
        connected++
      } catch (err) {
        failed++
        firstError ??= (err as Error).message
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(request.concurrency, request.count) }, worker))
  clearInterval(progress)
  reply({ type: 'connected', connected, failed, firstError })
}

/**
 * Subscribers each follow one publisher's topic; publishers publish a timestamped location
 * every second (phases spread over the second); latencies are measured in this one process.
 */
async function mixed (request: FleetMixedRequest): Promise<void> {
  const publishers = connections.slice(0, request.publishers)
  const subscribers = connections.slice(request.publishers, request.publishers + request.subscribers)
  const latencies: number[] = []
  const warmUpLatencies: number[] = []
  // deliveries before it are the warm-up's
  let measuredFrom = Infinity
  let received = 0
  await Promise.all(subscribers.map((subscriber, i) => new Promise<void>((resolve) => {
    const followed = publishers[i % Math.max(1, publishers.length)]
    if (followed === undefined) return resolve()
    let subscribed = false
    const reader = new FrameReader(4, {
      publish: (buffer, start) => {
        received++
        const now = performance.now()
        const latencyMs = now - readSentAt(buffer, start)
        if (now >= measuredFrom) latencies.push(latencyMs)
        else warmUpLatencies.push(latencyMs)
        latencyInTimeline(latencyMs)
      },
      puback: () => {},
      control: (packet) => {
        if ((packet[0] ?? 0) >> 4 === 9 && !subscribed) { subscribed = true; resolve() }
      }
    })
    subscriber.socket.removeListener('data', ignoreData)
    subscriber.socket.on('data', (chunk: Buffer) => reader.push(chunk))
    subscriber.socket.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: followed.topic, qos: 0 }] }))
    setTimeout(resolve, 10_000)
  })))
  const closedBefore = closedCount
  // a 64-byte location, its first 8 bytes the send time
  const templates = publishers.map((p) => new PublishTemplate(p.topic, 64, 0, 4))
  let sent = 0
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  const startedAt = performance.now()
  const publishingMs = request.warmUpMs + request.durationMs
  measuredFrom = startedAt + request.warmUpMs
  const measuring = setTimeout(() => loopDelay.enable(), request.warmUpMs)
  const timers = publishers.map((publisher, i) => setTimeout(() => {
    const send = (): void => {
      if (publisher.socket.destroyed) return
      const template = templates[i] as PublishTemplate
      const packet = Buffer.allocUnsafe(template.length)
      template.writeInto(packet, 0, 0, performance.now())
      publisher.socket.write(packet)
      sent++
    }
    send()
    const interval = setInterval(send, 1_000)
    setTimeout(() => clearInterval(interval), Math.max(0, publishingMs - (performance.now() - startedAt)))
  }, (i * 1_000) / Math.max(1, publishers.length)))
  await new Promise((resolve) => setTimeout(resolve, publishingMs + 1_000))
  for (const timer of [...timers, measuring]) clearTimeout(timer)
  loopDelay.disable()
  // the histogram records the intervals between its 10 ms ticks: the delay is what exceeds them
  const lateMs = (ns: number): number => Math.max(0, ns / 1e6 - 10)
  reply({ type: 'mixed-done', latenciesMs: latencies, warmUpLatenciesMs: warmUpLatencies, sent, received, closed: closedCount - closedBefore, loopDelayP99Ms: lateMs(loopDelay.percentile(99)), loopDelayMaxMs: lateMs(loopDelay.max) })
}

process.on('message', (message: FleetRequest) => {
  switch (message.type) {
    case 'connect':
      void connectAll(message)
      return
    case 'mixed':
      void mixed(message)
      return
    case 'usage':
      reply({ type: 'usage', rssKiB: Math.round(process.memoryUsage.rss() / 1024), open: connections.length - closedCount })
      return
    case 'exit':
      stopPinging?.()
      for (const connection of connections) connection.socket.destroy()
      process.exit(0)
  }
})
// the harness gone (IPC closed): so is this process
process.on('disconnect', () => process.exit(0))
