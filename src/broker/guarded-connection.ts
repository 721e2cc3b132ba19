// The stream Aedes reads and writes for each client: it passes bytes through unchanged,
// checks inbound fixed headers with PacketFrameGuard, and writes each corked batch of
// outbound chunks (mqtt-packet corks per packet) as one write, so a WebSocket sends one
// frame per batch instead of one frame per packet fragment.
import { Duplex } from 'node:stream'
import { PacketFrameGuard } from './packet-frame-guard.js'

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

  constructor (private readonly inner: Duplex, maxPacketSize: number) {
    super({ allowHalfOpen: false })
    this.guard = new PacketFrameGuard(maxPacketSize)
    inner.on('data', (chunk: Buffer) => {
      const violation = this.guard.scan(chunk)
      if (violation !== null) {
        this.destroy(new ProtocolViolation(violation))
        return
      }
      if (!this.push(chunk)) inner.pause()
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
    this.inner.end()
    callback()
  }

  override _destroy (error: Error | null, callback: WriteCallback): void {
    this.flushPendingWrite(error ?? new Error('connection closed'))
    this.inner.destroy()
    callback(error)
  }

  private writeInner (data: Buffer, callback: WriteCallback): void {
    if (this.inner.write(data)) callback()
    else this.pendingWrite = callback
  }

  private flushPendingWrite (error: Error | null): void {
    const callback = this.pendingWrite
    this.pendingWrite = null
    if (callback !== null) callback(error)
  }
}
