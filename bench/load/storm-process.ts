// One process of the reconnect-storm generator (bench/scenarios/storm.ts): its share of
// persistent-session clients (CleanSession 0, one QoS 1 subscription each, to a topic of its
// own), all on one node, from its own loopback source address; publishers on the nodes
// that stay up publish QoS 1 messages to them, numbered. A client whose connection drops
// reconnects with full-jitter exponential backoff to a node picked at random (the generator
// balances itself: a proxy would need two open files per client, over this machine's limit),
// and counts how its session came back. Whatever the publisher had acknowledged must reach its
// subscriber in the end: what did not is lost. Driven by the harness over IPC.
import { connect as connectTcp, type Socket } from 'node:net'
import { generate } from 'mqtt-packet'
import { FrameReader } from './frame-reader.js'
import type { GeneratorShare } from './generator-process.js'
import { startPinging } from './keepalive-pinger.js'
import { SourcePorts } from './source-ports.js'
import { latencyInTimeline } from './timeline.js'

export interface StormStartRequest extends GeneratorShare {
  type: 'start'
  /** MQTT ports of the nodes, which a dropped client reconnects to. */
  ports: number[]
  /** The node this process's clients first connect to (one of `ports`). */
  homePort: number
  /** The nodes the publishers use (never the one killed). */
  publisherPorts: number[]
}

export type StormRequest =
  | StormStartRequest
  | { type: 'publish', ratePerS: number }
  /** The node at this port is gone: reconnects go to the others only. */
  | { type: 'node-killed', port: number }
  | { type: 'stop-publishing' }
  | { type: 'report' }
  | { type: 'exit' }

export interface StormReport {
  type: 'report'
  /** Clients whose connection dropped (since the start) and that resumed with Session Present. */
  dropped: number
  resumed: number
  /** Resumed with Session Present 0: their session was gone. */
  sessionLost: number
  /** Connected more than once after a drop: resumed, then dropped again. */
  resumedTwice: number
  /** CONNACK 3 / 0x89 and refused or failed connection attempts. */
  refusedAttempts: number
  failedAttempts: number
  /** From the node's kill to the last resume, ms: the storm's length. */
  lastResumeMs: number
  acknowledged: number
  received: number
  lost: number
  /** Latencies of deliveries to clients that never dropped, during the measured window. */
  liveLatenciesMs: number[]
}

export type StormReply = { type: 'started', connected: number, failed: number, firstError: string | null } | { type: 'progress', connected: number } | StormReport

const CONNACK = 2
const SUBACK = 9

interface Session {
  index: number
  clientId: string
  topic: string
  socket: Socket | null
  /** 0: never dropped. */
  drops: number
  resumes: number
  /** Message numbers received (a number per message published to it). */
  received: Set<number>
  ping: (packet: Buffer) => void
}

let request: StormStartRequest
const sourcePorts = new SourcePorts()
let livePorts: number[] = []
const sessions: Session[] = []
// when the harness said the node was killed: the storm's time runs from there
let killedAt: number | null = null
let lastResumeAt = 0
let refusedAttempts = 0
let failedAttempts = 0
let sessionLost = 0
const liveLatencies: number[] = []

function reply (message: StormReply): void {
  process.send?.(message)
}

/** Connects `session` to `port`; resolves with the CONNACK's Session Present, rejects on refusal or failure. */
function connectSession (session: Session, port: number, subscribe: boolean): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const localPort = sourcePorts.take()
    const socket = connectTcp({ host: '127.0.0.1', port, localAddress: request.localAddress, ...(localPort === undefined ? {} : { localPort }) })
    socket.once('close', () => sourcePorts.release(localPort))
    let settled = false
    const fail = (err: Error): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    }
    const timer = setTimeout(() => fail(new Error('no CONNACK within 30 s')), 30_000)
    socket.on('error', (err) => fail(err))
    socket.once('connect', () => {
      socket.setNoDelay(true)
      socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: session.clientId, clean: false, keepalive: request.keepaliveS }))
    })
    const acks: number[] = []
    const reader = new FrameReader(4, {
      publish: (buffer, start, end, qos, messageId) => {
        if (qos === 1) acks.push(messageId)
        // payload: float64 sent-at, uint32 message number
        if (end - start >= 12) {
          const number = buffer.readUInt32LE(start + 8)
          if (session.drops === 0 && !session.received.has(number)) {
            const latencyMs = performance.now() - buffer.readDoubleLE(start)
            liveLatencies.push(latencyMs)
            latencyInTimeline(latencyMs)
          }
          session.received.add(number)
        }
      },
      puback: () => {},
      control: (packet) => {
        const type = (packet[0] ?? 0) >> 4
        if (type === CONNACK && !settled) {
          const code = packet[3] ?? -1
          if (code !== 0) return fail(Object.assign(new Error(`CONNACK ${code}`), { refused: true }))
          settled = true
          clearTimeout(timer)
          session.socket = socket
          if (subscribe) socket.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: session.topic, qos: 1 }] }))
          else resolve(((packet[2] ?? 0) & 1) === 1)
        } else if (type === SUBACK && subscribe) {
          resolve(false)
        }
      }
    })
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk)
      } catch {
        socket.destroy()
        return
      }
      if (acks.length > 0) {
        const bytes = Buffer.allocUnsafe(acks.length * 4)
        acks.forEach((id, i) => { bytes[i * 4] = 0x40; bytes[i * 4 + 1] = 2; bytes.writeUInt16BE(id, i * 4 + 2) })
        acks.length = 0
        socket.write(bytes)
      }
    })
    socket.once('close', () => {
      if (!settled) return fail(new Error('closed before CONNACK'))
      if (session.socket === socket) {
        session.socket = null
        dropped(session)
      }
    })
  })
}

function dropped (session: Session): void {
  session.drops++
  void reconnect(session, 0)
}

// full jitter (AWS): a random delay up to an exponentially growing cap; the web SDK's backoff
const backoffBaseMs = 500
const backoffCapMs = 10_000

async function reconnect (session: Session, attempt: number): Promise<void> {
  const ceiling = Math.min(backoffCapMs, backoffBaseMs * 2 ** attempt)
  await new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling))
  const port = livePorts[Math.floor(Math.random() * livePorts.length)] as number
  try {
    const present = await connectSession(session, port, false)
    session.resumes++
    if (!present) sessionLost++
    lastResumeAt = performance.now()
  } catch (err) {
    if ((err as { refused?: boolean }).refused === true) refusedAttempts++
    else failedAttempts++
    return await reconnect(session, attempt + 1)
  }
}

const initialAttempts = 8

async function start (message: StormStartRequest): Promise<void> {
  request = message
  livePorts = [...message.ports]
  for (let i = 0; i < message.count; i++) {
    const clientId = `${message.prefix}${message.first + i}`
    const session: Session = { index: i, clientId, topic: `bench/storm/${clientId}`, socket: null, drops: 0, resumes: 0, received: new Set(), ping: (packet) => session.socket?.write(packet) }
    sessions.push(session)
  }
  let next = 0
  let connected = 0
  let failed = 0
  let firstError: string | null = null
  const progress = setInterval(() => reply({ type: 'progress', connected }), 500)
  // from the first connection on: a slow connect phase must not lose its first clients
  startPinging(() => sessions, message.keepaliveS)
  const worker = async (): Promise<void> => {
    while (next < sessions.length) {
      const session = sessions[next++] as Session
      const port = message.homePort
      // refused (busy) or failed: retried with the backoff, as a client would, a few times
      for (let attempt = 0; ; attempt++) {
        try {
          await connectSession(session, port, true)
          connected++
          break
        } catch (err) {
          if (attempt === initialAttempts - 1) {
            failed++
            firstError ??= (err as Error).message
            break
          }
          await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(backoffCapMs, backoffBaseMs * 2 ** attempt)))
        }
      }
    }
  }
  await Promise.all(Array.from({ length: message.concurrency }, worker))
  clearInterval(progress)
  reply({ type: 'started', connected, failed, firstError })
}


// The publishers (several, as devices would be, on the nodes that stay up): QoS 1 to random
// sessions of this process, numbered; a number counts as acknowledged once its PUBACK is back.
const publishersPerProcess = 10
const publishers: Socket[] = []
let publishTimer: NodeJS.Timeout | null = null
const acknowledged: Array<{ session: Session, number: number }> = []
let nextNumber = 0

async function openPublisher (index: number): Promise<{ socket: Socket, inFlight: Map<number, { session: Session, number: number }> }> {
  const inFlight = new Map<number, { session: Session, number: number }>()
  const port = request.publisherPorts[index % request.publisherPorts.length] as number
  const localPort = sourcePorts.take()
  const socket = connectTcp({ host: '127.0.0.1', port, localAddress: request.localAddress, ...(localPort === undefined ? {} : { localPort }) })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    const reader = new FrameReader(4, {
      publish: () => {},
      puback: (messageId) => {
        const message = inFlight.get(messageId)
        if (message === undefined) return
        inFlight.delete(messageId)
        acknowledged.push(message)
      },
      control: (packet) => { if ((packet[0] ?? 0) >> 4 === CONNACK) resolve() }
    })
    socket.on('data', (chunk: Buffer) => reader.push(chunk))
    socket.once('connect', () => socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `${request.prefix}publisher-${index}`, clean: true, keepalive: 0 })))
  })
  socket.removeAllListeners('error')
  socket.on('error', () => {})
  return { socket, inFlight }
}

async function startPublishing (ratePerS: number): Promise<void> {
  const opened = await Promise.all(Array.from({ length: publishersPerProcess }, (_, i) => openPublisher(i)))
  publishers.push(...opened.map((p) => p.socket))
  const nextMessageIds = opened.map(() => 1)
  // ten ticks a second
  const perTick = ratePerS / 10
  let owed = 0
  let turn = 0
  publishTimer = setInterval(() => {
    owed += perTick
    for (; owed >= 1; owed--) {
      const p = turn++ % opened.length
      const { socket, inFlight } = opened[p] as (typeof opened)[number]
      const session = sessions[Math.floor(Math.random() * sessions.length)] as Session
      const number = nextNumber++
      const messageId = nextMessageIds[p] as number
      nextMessageIds[p] = messageId === 65_535 ? 1 : messageId + 1
      const payload = Buffer.alloc(64)
      payload.writeDoubleLE(performance.now(), 0)
      payload.writeUInt32LE(number, 8)
      inFlight.set(messageId, { session, number })
      socket.write(generate({ cmd: 'publish', topic: session.topic, payload, qos: 1, retain: false, dup: false, messageId }))
    }
  }, 100)
}

function report (): StormReport {
  const droppedSessions = sessions.filter((s) => s.drops > 0)
  return {
    type: 'report',
    dropped: droppedSessions.length,
    resumed: droppedSessions.filter((s) => s.socket !== null).length,
    sessionLost,
    resumedTwice: sessions.filter((s) => s.resumes > 1).length,
    refusedAttempts,
    failedAttempts,
    lastResumeMs: killedAt === null ? 0 : Math.max(0, lastResumeAt - killedAt),
    acknowledged: acknowledged.length,
    received: acknowledged.filter((m) => m.session.received.has(m.number)).length,
    lost: acknowledged.filter((m) => !m.session.received.has(m.number)).length,
    liveLatenciesMs: liveLatencies.splice(0)
  }
}

process.on('message', (message: StormRequest) => {
  switch (message.type) {
    case 'start':
      void start(message)
      return
    case 'publish':
      void startPublishing(message.ratePerS)
      return
    case 'node-killed':
      killedAt = performance.now()
      livePorts = livePorts.filter((port) => port !== message.port)
      return
    case 'stop-publishing':
      if (publishTimer !== null) clearInterval(publishTimer)
      return
    case 'report':
      reply(report())
      return
    case 'exit':
      for (const socket of publishers) socket.destroy()
      for (const session of sessions) session.socket?.destroy()
      process.exit(0)
  }
})
process.on('disconnect', () => process.exit(0))
