// The stream Aedes reads and writes for each client. Inbound packets are checked with
// PacketFrameGuard before Aedes parses them; outbound packets written in one event-loop turn
// leave together at the turn's end, in one write (one syscall, one TCP segment, one WebSocket
// frame) instead of one per packet fragment. Sending the turn's first packet at once and the
// rest at the end made two segments of what a client sent as one batch, and on a virtual
// machine every extra wake-up of the receiver is a chance of a late one: latency at 2,000
// msg/s had three times Aedes' share of samples between 1 and 1.5 ms (docs/performance.md).
// A CONNECT the guard refuses with a return code (unsupported protocol level, rejected client
// identifier; MQTT 5: the reason code of any broken rule) is answered here with that CONNACK,
// then the connection closes; Aedes never sees the CONNECT. A later packet of an MQTT 5
// connection that breaks a rule is answered with a DISCONNECT carrying the guard's reason code,
// after what Aedes wrote before it and with nothing after it, then the connection closes. An
// MQTT 5 AUTH packet never reaches Aedes: the connection emits it as an `authPacketEvent`.
//
// A TCP or TLS socket is guarded in place (guardSocket); a WebSocket stream, whose every write
// is a frame, is wrapped (GuardedConnection).
//
// A client that reads slowly costs only itself. Writes never wait: Aedes holds a delivery's
// emitter slot (and the routed emitter its inbox window) until the write's callback, so a
// write told to wait for a reader that never reads held up every client of the node until the
// drain timeout. Instead the unsent output of each client is capped (limits.maxClientOutputBytes,
// capClientOutput): beyond the cap a live QoS 0 message to it is dropped and counted, a live
// QoS 1/2 message ends its connection rather than pile up (a persistent session keeps it in its
// store), and retained messages sent on SUBSCRIBE wait for the output to drain. A client still
// over the cap limits.drainTimeoutMs after it went over, its output not emptied meanwhile, is
// disconnected too. Both disconnects are a SlowConsumer error.
import type { Socket } from 'node:net'
import { Duplex, Readable, Writable } from 'node:stream'
import type { Client } from 'aedes'
import { deliveriesOf, type DeliveredPacket, type Deliveries } from '../aedes-adapter.js'
import { PacketFrameGuard, type GuardVerdict } from './packet-frame-guard.js'
import { ReasonCode } from './reason-codes.js'

// How long a refused client may take to read its CONNACK (or DISCONNECT) before the connection is cut.
const refusalFlushMs = 2000

/**
 * The event a guarded connection emits with each AUTH packet (Buffer, the whole packet) an MQTT 5
 * client sends, which Aedes never sees. With no listener, the client is disconnected with 0x8C.
 */
export const authPacketEvent = 'mqtt-auth'

export class ProtocolViolation extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ProtocolViolation'
  }
}

/** A client cut off for its unsent output: over the cap at a live QoS 1/2 message, or for the drain timeout. */
export class SlowConsumer extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'SlowConsumer'
  }
}

export interface OutputLimits {
  /** Unsent bytes per client beyond which its output is capped (capClientOutput). */
  maxBytes: number
  /** How long a client may stay over maxBytes before it is disconnected; 0 = never. */
  drainTimeoutMs: number
}

/** A guarded connection: a guarded socket or a GuardedConnection. */
interface OutputSource {
  readonly destroyed: boolean
  destroy: (error: Error) => void
}

/** The input side of a guarded connection: its frame guard, and whether its input is ignored from now on. */
interface GuardedInput {
  readonly frames: PacketFrameGuard
  ignoringInput: boolean
}

/** The clock of one connection over its output cap, and what waits for its output to drain. */
class OutputWatch {
  private deadline: NodeJS.Timeout | null = null
  private waiting: Array<() => void> | null = null
  constructor (readonly limits: OutputLimits) {}

  /** Runs `resume` once the transport has sent everything it holds, or closed. */
  whenDrained (resume: () => void): void {
    (this.waiting ??= []).push(resume)
  }

  /** The output is over the cap (checkOutput): the clock starts, unless it runs already. */
  startClock (connection: OutputSource): void {
    if (this.deadline !== null) return
    this.deadline = setTimeout(cutIfStillOver, this.limits.drainTimeoutMs, this, connection)
    this.deadline.unref()
  }

  /** The transport sent everything it held, or the connection closed: the clock stops. */
  stop (): void {
    if (this.deadline !== null) {
      clearTimeout(this.deadline)
      this.deadline = null
    }
    const waiting = this.waiting
    this.waiting = null
    if (waiting !== null) for (const resume of waiting) resume()
  }

  expired (): void {
    this.deadline = null
  }
}

function cutIfStillOver (watch: OutputWatch, connection: OutputSource): void {
  watch.expired()
  const unsent = unsentOutputBytes(connection)
  if (connection.destroyed || unsent <= watch.limits.maxBytes) return
  connection.destroy(new SlowConsumer(`slow consumer: ${unsent} bytes unsent, over limits.maxClientOutputBytes (${watch.limits.maxBytes}) for limits.drainTimeoutMs (${watch.limits.drainTimeoutMs} ms)`))
}

/** Whether anything was written to a guarded connection: Aedes writes CONNACK first [MQTT-3.2.0-1]. */
function wroteAnything (connection: OutputSource): boolean {
  return connection instanceof GuardedConnection ? connection.wroteAnything : (connection as GuardedSocket)[kGuard].started
}

/** Bytes written to a guarded connection and not yet handed to the kernel. */
export function unsentOutputBytes (connection: OutputSource): number {
  if (connection instanceof GuardedConnection) return connection.unsentBytes
  const guard = (connection as Partial<GuardedSocket>)[kGuard]
  return guard === undefined ? 0 : (connection as GuardedSocket).writableLength + guard.bytes
}

/** What a capped client's deliveries hand on to: Aedes' own (called on the client), and what counts a dropped message. */
interface Uncapped extends Deliveries {
  onDrop: () => void
}

const kUncapped = Symbol('uncapped deliveries')
type CappedClient = Client & { [kUncapped]: Uncapped }
// Aedes' deliveries are methods of its Client's prototype (an Aedes patch) and onDrop one
// function of the server: every client shares one record of them
let sharedUncapped: Uncapped | null = null

/**
 * Caps the output of `client` (Aedes sends every message through its deliver0 or deliverQoS):
 * while its connection is over the cap, a live QoS 0 message is dropped (`onDrop`), a live QoS
 * 1/2 one closes the connection, and a retained message sent on SUBSCRIBE waits for the
 * output to drain (back-pressure on that client's own retained stream, which holds no one else).
 * The wrappers are shared by every client (Aedes calls them as its methods), and so is what
 * they hand on to, when it is the same for every client: an idle connection keeps nothing.
 */
export function capClientOutput (client: Client, onDrop: () => void): void {
  const target = deliveriesOf(client)
  const { deliver0, deliverQoS } = target
  if (sharedUncapped?.deliver0 !== deliver0 || sharedUncapped.deliverQoS !== deliverQoS || sharedUncapped.onDrop !== onDrop) {
    sharedUncapped = { deliver0, deliverQoS, onDrop }
  }
  ;(client as CappedClient)[kUncapped] = sharedUncapped
  target.deliver0 = cappedDeliver0
  target.deliverQoS = cappedDeliverQoS
}

/** The output cap of a guarded connection. */
function outputLimitsOf (connection: OutputSource): OutputLimits {
  return connection instanceof GuardedConnection ? connection.output.limits : (connection as GuardedSocket)[kGuard].limits
}

/**
 * The output watch of a guarded connection. A socket's is made the first time its output goes
 * over the cap, with the 'drain' and 'close' listeners that stop it: an idle socket keeps
 * neither (a third 'close' listener grew the socket's listener array to 19 slots).
 */
function outputWatchOf (connection: OutputSource): OutputWatch {
  if (connection instanceof GuardedConnection) return connection.output
  const socket = connection as GuardedSocket
  const guard = socket[kGuard]
  if (guard.output === null) {
    guard.output = new OutputWatch(guard.limits)
    socket.on('drain', stopOutputClock)
    socket.on('close', stopOutputClock)
  }
  return guard.output
}

/** After output was handed to the transport: over the cap, the connection's drain clock starts. */
function checkOutput (connection: OutputSource, unsent: number): void {
  const limits = outputLimitsOf(connection)
  if (unsent > limits.maxBytes && limits.drainTimeoutMs > 0) outputWatchOf(connection).startClock(connection)
}

/** Whether the client's connection holds more unsent output than its cap; a closed one's deliveries go on to Aedes, which completes them with an error. */
function overCap (connection: OutputSource): boolean {
  return !connection.destroyed && unsentOutputBytes(connection) > outputLimitsOf(connection).maxBytes
}

/**
 * Bytes `client`'s connection may still take under its output cap (negative when over it): for
 * a sender that paces itself instead of being cut at the cap (the route catch-up's releases).
 */
export function outputRoom (client: Client): number {
  const connection = client.conn as Duplex & OutputSource
  if (!(connection instanceof GuardedConnection) && (connection as Partial<GuardedSocket>)[kGuard] === undefined) return Infinity
  return outputLimitsOf(connection).maxBytes - unsentOutputBytes(connection)
}

/** Resolves once `client`'s output is at or under its cap again (its transport drained, or the connection closed). */
export async function outputDrained (client: Client): Promise<void> {
  if (outputRoom(client) >= 0 || client.conn.destroyed) return
  await new Promise<void>((resolve) => { outputWatchOf(client.conn as Duplex & OutputSource).whenDrained(resolve) })
}

function cappedDeliver0 (this: CappedClient, packet: DeliveredPacket, done: () => void): void {
  const connection = this.conn as Duplex & OutputSource
  if (!overCap(connection)) {
    this[kUncapped].deliver0.call(this, packet, done)
  } else if (packet.brokerId === null) {
    outputWatchOf(connection).whenDrained(() => cappedDeliver0.call(this, packet, done))
  } else {
    this[kUncapped].onDrop()
    setImmediate(done)
  }
}

function cappedDeliverQoS (this: CappedClient, packet: DeliveredPacket, done: () => void, maxQos?: number, onPacketId?: (packetId: number) => void): void {
  const connection = this.conn as Duplex & OutputSource
  // a QoS 0 message goes on to deliver0 (above)
  if (packet.qos === 0 || !overCap(connection)) {
    this[kUncapped].deliverQoS.call(this, packet, done, maxQos, onPacketId)
  } else if (packet.brokerId === null) {
    outputWatchOf(connection).whenDrained(() => cappedDeliverQoS.call(this, packet, done, maxQos, onPacketId))
  } else {
    // never dropped silently, never piled up: a persistent session keeps the message in its
    // store (Aedes queued it before delivering) and gets it again when it reconnects
    connection.destroy(new SlowConsumer(`slow consumer: a QoS ${packet.qos} message with ${unsentOutputBytes(connection)} bytes unsent, over limits.maxClientOutputBytes (${outputWatchOf(connection).limits.maxBytes})`))
    setImmediate(done)
  }
}

type WriteCallback = (error?: Error | null) => void

/**
 * Sends `packet` (a refusing CONNACK, or a DISCONNECT) after what `connection` already holds,
 * then closes it [MQTT-3.2.2-5] [MQTT-4.13.1-1]; what Aedes writes after it is not sent
 * [MQTT-3.14.4-1]. The connection closes once `transport` has sent everything, or after refusalFlushMs.
 */
function answerThenClose (connection: Duplex, transport: Duplex, packet: Buffer, error: ProtocolViolation): void {
  const done = (): void => {
    clearTimeout(timer)
    if (!connection.destroyed) connection.destroy(error)
  }
  const timer = setTimeout(done, refusalFlushMs)
  timer.unref()
  transport.once('finish', done)
  connection.write(packet)
  connection.end()
  connection.write = discardWrite
}

/** The write() of an answered connection: what Aedes still writes is dropped, its callback called. */
function discardWrite (_chunk: unknown, encodingOrCallback?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
  const done = typeof encodingOrCallback === 'function' ? encodingOrCallback : callback
  if (done !== undefined) setImmediate(done, null)
  return true
}

const hex = (code: number): string => `0x${code.toString(16).padStart(2, '0')}`

/**
 * Carries out a verdict of the guard on `connection`, whose input is ignored from then on
 * [MQTT-3.1.4-5] [MQTT-3.1.4-6], but for an AUTH packet, which goes to the connection's
 * authPacketEvent listener while the rest of the chunk is scanned on. `push` hands Aedes what it
 * may read, `transport` is the stream under the connection. Only such packets come here: the
 * per-chunk path stays in the callers. Returns false when the input stops: ignored, or `push`
 * said to wait.
 */
function enforce (verdict: GuardVerdict, chunk: Buffer, input: GuardedInput, connection: Duplex & OutputSource, push: (chunk: Buffer | null) => boolean, transport: Duplex): boolean {
  let more = true
  while (verdict.action === 'auth') {
    if (verdict.passed > 0) more = push(chunk.subarray(0, verdict.passed))
    if (verdict.packet !== null) {
      if (connection.listenerCount(authPacketEvent) === 0) {
        verdict = { action: 'disconnect', reasonCode: ReasonCode.badAuthenticationMethod, reason: 'AUTH: this server takes no AUTH packets' }
        break
      }
      connection.emit(authPacketEvent, verdict.packet)
    }
    chunk = chunk.subarray(verdict.resume)
    if (chunk.length === 0) return more
    const next = input.frames.scan(chunk)
    if (next === null) return push(chunk)
    verdict = next
  }
  input.ignoringInput = true
  if (verdict.action === 'close') {
    connection.destroy(new ProtocolViolation(verdict.reason))
  } else if (verdict.action === 'end') {
    // Aedes gets everything up to the DISCONNECT, then the end of the stream
    if (verdict.at > 0) push(chunk.subarray(0, verdict.at))
    push(null)
  } else if (verdict.action === 'refuse') {
    const connack = verdict.mqtt5 ? [0x20, 0x03, 0x00, verdict.returnCode, 0x00] : [0x20, 0x02, 0x00, verdict.returnCode]
    const code = verdict.mqtt5 ? hex(verdict.returnCode) : String(verdict.returnCode)
    answerThenClose(connection, transport, Buffer.from(connack), new ProtocolViolation(`CONNECT refused with CONNACK ${code}: ${verdict.reason}`))
  } else if (verdict.action === 'disconnect') {
    const error = new ProtocolViolation(`DISCONNECT ${hex(verdict.reasonCode)}: ${verdict.reason}`)
    // No DISCONNECT before Aedes' CONNACK, the first packet it writes [MQTT-3.14.0-1]: until
    // then (or once Aedes has ended its output), a broken rule closes the connection without an answer
    if (connection.destroyed) return false
    if (wroteAnything(connection) && !connection.writableEnded) answerThenClose(connection, transport, Buffer.from([0xe0, 0x02, verdict.reasonCode, 0x00]), error)
    else connection.destroy(error)
  }
  return false
}

/** The writes of one event-loop turn, sent together at its end. */
class TurnBatch {
  // made by a turn's first write: an idle connection keeps none
  private chunks: Buffer[] | null = null
  bytes = 0
  private callbacks: WriteCallback[] | null = null

  // whether a batch was ever taken to be sent
  private sent = false

  get empty (): boolean {
    return this.chunks === null
  }

  /** Whether anything was ever written: in this batch, or taken to be sent before. */
  get started (): boolean {
    return this.sent || this.chunks !== null
  }

  /** Adds a write; true when it is the turn's first, for the caller to schedule the flush. */
  add (data: Buffer, done?: WriteCallback): boolean {
    const first = this.chunks === null
    ;(this.chunks ??= []).push(data)
    this.bytes += data.length
    if (done !== undefined) (this.callbacks ??= []).push(done)
    return first
  }

  /** Empties the batch: its bytes as one buffer; `takeCallbacks` first for their callbacks. */
  take (): Buffer {
    const chunks = this.chunks ?? []
    const data = chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, this.bytes)
    this.chunks = null
    this.bytes = 0
    this.sent = true
    return data
  }

  /** One callback for the writes of the batch, if any had one. */
  takeCallbacks (): WriteCallback | undefined {
    const callbacks = this.callbacks
    if (callbacks === null) return undefined
    this.callbacks = null
    return (error) => { for (const cb of callbacks) cb(error) }
  }
}

// Per guarded socket: what would otherwise take a wrapper stream (two stream states, its
// listeners and closures: about 1 KiB of heap per idle connection).
const kGuard = Symbol('guard')

// The guard is the batch of its turn's writes itself: one object per connection.
class SocketGuard extends TurnBatch implements GuardedInput {
  ignoringInput = false
  // made the first time the output goes over the cap (outputWatchOf)
  output: OutputWatch | null = null
  constructor (readonly frames: PacketFrameGuard, readonly limits: OutputLimits) {
    super()
  }
}

type GuardedSocket = Socket & { [kGuard]: SocketGuard }

// Writable's own write(), which the instance's batching write() hands its batches to (the
// typings' overloads do not describe one call site taking either form).
const writableWrite = Writable.prototype.write as (this: Writable, chunk: Buffer | string, encodingOrCallback?: BufferEncoding | WriteCallback, callback?: WriteCallback) => boolean

/**
 * Guards a TCP or TLS socket in place and returns it: a socket hands what it reads to its own
 * push() and sends through its own write() and _final(); those are replaced on this instance.
 */
export function guardSocket (socket: Socket, maxPacketSize: number, output: OutputLimits): Socket {
  Object.assign(socket, {
    [kGuard]: new SocketGuard(new PacketFrameGuard(maxPacketSize), output),
    push: guardedPush,
    write: batchedWrite,
    _final: flushThenFinal
  })
  return socket
}

// shared by every guarded socket whose output went over the cap: no closure per connection
function stopOutputClock (this: GuardedSocket): void {
  this[kGuard].output?.stop()
}

function guardedPush (this: GuardedSocket, chunk: Buffer | null, encoding?: BufferEncoding): boolean {
  const guard = this[kGuard]
  if (chunk === null) return Readable.prototype.push.call(this, null)
  // once refused, nothing the client sends is processed [MQTT-3.1.4-5]
  if (guard.ignoringInput) return true
  const verdict = guard.frames.scan(chunk)
  if (verdict === null) return Readable.prototype.push.call(this, chunk, encoding)
  return enforce(verdict, chunk, guard, this, (part) => Readable.prototype.push.call(this, part), this)
}

function batchedWrite (this: GuardedSocket, chunk: Buffer | string, encodingOrCallback?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
  const encoding = typeof encodingOrCallback === 'string' ? encodingOrCallback : 'utf8'
  const done = typeof encodingOrCallback === 'function' ? encodingOrCallback : callback
  const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk
  if (this[kGuard].add(data, done)) setImmediate(flushTurn, this)
  // never "wait for drain": Aedes would hold the delivery's emitter slot until then (see above)
  return true
}

function flushTurn (socket: GuardedSocket): void {
  const guard = socket[kGuard]
  // an ending socket sends the batch from _final, after what Writable still holds
  if (guard.empty || socket.writableEnded) return
  const done = guard.takeCallbacks()
  const data = guard.take()
  if (socket.destroyed) {
    done?.(new Error('connection closed'))
    return
  }
  writableWrite.call(socket, data, done)
  // over the cap, Writable is not flowing and emits 'drain' once it has sent everything
  checkOutput(socket, socket.writableLength)
}

function flushThenFinal (this: GuardedSocket, callback: WriteCallback): void {
  const finalOfPrototype = (Object.getPrototypeOf(this) as { _final: (cb: WriteCallback) => void })._final
  const guard = this[kGuard]
  if (guard.empty) {
    finalOfPrototype.call(this, callback)
    return
  }
  // _final runs once Writable has nothing in flight, so writing underneath it is safe here
  const done = guard.takeCallbacks()
  const data = guard.take()
  this._write(data, 'buffer' as BufferEncoding, (error) => {
    done?.(error)
    if (error !== null && error !== undefined) callback(error)
    else finalOfPrototype.call(this, callback)
  })
}

/** A WebSocket stream wrapped: each batch leaves as one frame. */
export class GuardedConnection extends Duplex {
  private readonly input: GuardedInput
  readonly output: OutputWatch
  // one WebSocket frame for the packets of a turn instead of one per packet
  private readonly batch = new TurnBatch()

  constructor (private readonly inner: Duplex, maxPacketSize: number, output: OutputLimits) {
    super({ allowHalfOpen: false })
    this.input = { frames: new PacketFrameGuard(maxPacketSize), ignoringInput: false }
    this.output = new OutputWatch(output)
    inner.on('data', (chunk: Buffer) => {
      // once refused, nothing the client sends is processed [MQTT-3.1.4-5]
      if (this.input.ignoringInput) return
      const verdict = this.input.frames.scan(chunk)
      if (verdict === null) {
        if (!this.push(chunk)) inner.pause()
        return
      }
      if (!enforce(verdict, chunk, this.input, this, (part) => this.push(part), inner) && !this.input.ignoringInput) inner.pause()
    })
    inner.on('end', () => this.push(null))
    inner.on('drain', () => this.output.stop())
    inner.on('error', (err: Error) => this.destroy(err))
    inner.on('close', () => { if (!this.destroyed) this.destroy() })
  }

  /** Whether anything was written to the connection. */
  get wroteAnything (): boolean {
    return this.batch.started
  }

  /** Written and not yet handed to the kernel: this turn's batch and what the WebSocket holds. */
  get unsentBytes (): number {
    return this.batch.bytes + this.inner.writableLength
  }

  override _read (): void {
    this.inner.resume()
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.writeInner(chunk, callback)
  }

  override _writev (chunks: Array<{ chunk: Buffer }>, callback: WriteCallback): void {
    const data = chunks.length === 1 ? (chunks[0] as { chunk: Buffer }).chunk : Buffer.concat(chunks.map((c) => c.chunk))
    this.writeInner(data, callback)
  }

  override _final (callback: WriteCallback): void {
    this.flushBatch()
    this.inner.end()
    callback()
  }

  override _destroy (error: Error | null, callback: WriteCallback): void {
    // Aedes destroys a connection right after its last packets (a refusing CONNACK): they go
    // out first, as a socket sends what it already has before closing
    this.flushBatch()
    this.output.stop()
    this.inner.destroy()
    callback(error)
  }

  private writeInner (data: Buffer, callback: WriteCallback): void {
    if (this.batch.add(data)) setImmediate(this.flushBatch)
    // never "wait for drain": Aedes would hold the delivery's emitter slot until then (see above)
    callback()
  }

  private readonly flushBatch = (): void => {
    if (this.batch.empty || this.inner.destroyed) return
    this.inner.write(this.batch.take())
    // over the cap, the WebSocket stream is not flowing and emits 'drain' once it has sent everything
    checkOutput(this, this.inner.writableLength)
  }
}
