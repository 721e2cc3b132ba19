// The byte pipe under a bench client: a TCP socket, or a WebSocket carrying MQTT in binary
// frames (subprotocol "mqtt"). Both report backpressure the same way: send() returns false
// when the caller should wait for the drain handler before sending more.
import { connect as connectTcp, type Socket } from 'node:net'
import { WebSocket } from 'ws'

export interface Wire {
  /** Queues bytes; false means "over the high-water mark, wait for onDrain". */
  send: (data: Buffer) => boolean
  onData: (data: Buffer) => void
  onDrain: () => void
  onClose: (reason: string) => void
  readonly closed: boolean
  destroy: () => void
}

export type WireAddress = { transport: 'tcp', port: number } | { transport: 'ws', url: string }

export function openWire (address: WireAddress, timeoutMs: number): Promise<Wire> {
  return address.transport === 'tcp' ? openTcpWire(address.port, timeoutMs) : openWebSocketWire(address.url, timeoutMs)
}

function openTcpWire (port: number, timeoutMs: number): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connectTcp({ host: '127.0.0.1', port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`TCP connect to 127.0.0.1:${port} timed out after ${timeoutMs} ms`))
    }, timeoutMs)
    socket.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    socket.once('connect', () => {
      clearTimeout(timer)
      // Latency runs send one small packet at a time: Nagle would hold them back.
      socket.setNoDelay(true)
      const wire: Wire = {
        send: (data) => socket.write(data),
        onData: () => {},
        onDrain: () => {},
        onClose: () => {},
        get closed () { return socket.destroyed },
        destroy: () => { socket.destroy() }
      }
      socket.removeAllListeners('error')
      socket.on('error', () => {}) // reported through 'close'
      socket.on('data', (chunk: Buffer) => wire.onData(chunk))
      socket.on('drain', () => wire.onDrain())
      socket.on('close', (hadError) => wire.onClose(hadError ? 'socket error' : 'socket closed'))
      resolve(wire)
    })
  })
}

// ws buffers without limit; this is the point past which a bench client waits for drain.
const webSocketHighWaterBytes = 64 * 1024

function openWebSocketWire (url: string, timeoutMs: number): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'mqtt', { perMessageDeflate: false, handshakeTimeout: timeoutMs })
    ws.binaryType = 'nodebuffer'
    let pendingBytes = 0
    let closed = false
    ws.once('error', reject)
    ws.once('open', () => {
      // The socket under ws: set no-delay for the same reason as over TCP.
      const raw = (ws as unknown as { _socket?: Socket })._socket
      raw?.setNoDelay(true)
      const wire: Wire = {
        send: (data) => {
          pendingBytes += data.length
          ws.send(data, { binary: true }, () => {
            const wasOver = pendingBytes >= webSocketHighWaterBytes
            pendingBytes -= data.length
            if (wasOver && pendingBytes < webSocketHighWaterBytes) wire.onDrain()
          })
          return pendingBytes < webSocketHighWaterBytes
        },
        onData: () => {},
        onDrain: () => {},
        onClose: () => {},
        get closed () { return closed },
        destroy: () => { ws.terminate() }
      }
      ws.removeAllListeners('error')
      ws.on('error', () => {}) // reported through 'close'
      ws.on('message', (data: Buffer) => wire.onData(data))
      ws.on('close', (code) => {
        closed = true
        wire.onClose(`WebSocket closed (${code})`)
      })
      resolve(wire)
    })
  })
}
