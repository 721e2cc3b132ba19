// The stream Aedes reads and writes for each client: it passes bytes through unchanged,
// checks inbound packets with PacketFrameGuard, and writes each corked batch of
// outbound chunks (mqtt-packet corks per packet) as one write, so a WebSocket sends one
// frame per batch instead of one frame per packet fragment. A CONNECT the guard refuses
// with a return code (unsupported protocol level, rejected client identifier) is answered
// here with that CONNACK, then the connection closes; Aedes never sees the CONNECT.
import { Duplex } from 'node:stream'
import { PacketFrameGuard } from './packet-frame-guard.js'

// How long a refused client may take to read its CONNACK before the connection is cut.
const refusalFlushMs = 2000
// Outbound bytes gathered in one event-loop turn beyond which writers wait for the flush.
const maxBatchBytes = 64 * 1024

export class ProtocolViolation extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ProtocolViolation'
  }
}

type WriteCallback = (error?: Error | null) => void

export class GuardedConnection extends Duplex {
  private readonly guard: PacketFrameGuard
  private pendingWrite: WriteCallback | null = null
  private ignoringInput = false
  // The first write of an event-loop turn goes out at once (no added latency); what follows in
  // the same turn goes out together at its end: one write syscall (one WebSocket frame) for
  // many packets instead of one per packet.
  private batch: Buffer[] = []
  private batchBytes = 0
  private flushScheduled = false

  constructor (private readonly inner: Duplex, maxPacketSize: number) {
    super({ allowHalfOpen: false })
    this.guard = new PacketFrameGuard(maxPacketSize)
    inner.on('data', (chunk: Buffer) => {
      // once refused, nothing the client sends is processed [MQTT-3.1.4-5]
      if (this.ignoringInput) return
      const verdict = this.guard.scan(chunk)
      if (verdict === null) {
        if (!this.push(chunk)) inner.pause()
      } else if (verdict.action === 'close') {
        this.destroy(new ProtocolViolation(verdict.reason))
      } else if (verdict.action === 'end') {
        // Aedes gets everything up to the DISCONNECT, then the end of the stream
        this.ignoringInput = true
        if (verdict.at > 0) this.push(chunk.subarray(0, verdict.at))
        this.push(null)
      } else {
        this.refuse(verdict.returnCode, verdict.reason)
      }
    })
    inner.on('end', () => this.push(null))
    inner.on('drain', () => this.flushPendingWrite(null))
    inner.on('error', (err: Error) => this.destroy(err))
    inner.on('close', () => {
      this.flushPendingWrite(new Error('connection closed'))
      if (!this.destroyed) this.destroy()
    })
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
    this.batch = []
    this.batchBytes = 0
    this.flushPendingWrite(error ?? new Error('connection closed'))
    this.inner.destroy()
    callback(error)
  }

  /** Answers the CONNECT with CONNACK `returnCode` (session present 0), then closes [MQTT-3.2.2-4] [MQTT-3.2.2-5]. */
  private refuse (returnCode: number, reason: string): void {
    this.ignoringInput = true
    const done = (): void => {
      clearTimeout(timer)
      if (!this.destroyed) this.destroy(new ProtocolViolation(`CONNECT refused with CONNACK ${returnCode}: ${reason}`))
    }
    const timer = setTimeout(done, refusalFlushMs)
    timer.unref()
    this.inner.once('finish', done)
    this.inner.end(Buffer.from([0x20, 0x02, 0x00, returnCode]))
  }

  private writeInner (data: Buffer, callback: WriteCallback): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(this.flushBatch)
      if (this.inner.write(data)) callback()
      else this.pendingWrite = callback
      return
    }
    this.batch.push(data)
    this.batchBytes += data.length
    if (this.batchBytes < maxBatchBytes) callback()
    else this.pendingWrite = callback // released once the batch is out and the socket drained
  }

  private readonly flushBatch = (): void => {
    this.flushScheduled = false
    if (this.batch.length === 0 || this.inner.destroyed) return
    const data = this.batch.length === 1 ? this.batch[0] as Buffer : Buffer.concat(this.batch, this.batchBytes)
    this.batch = []
    this.batchBytes = 0
    if (this.inner.write(data)) this.flushPendingWrite(null)
  }

  private flushPendingWrite (error: Error | null): void {
    const callback = this.pendingWrite
    this.pendingWrite = null
    if (callback !== null) callback(error)
  }
}
