// MQTT over WebSocket: upgrades on the configured path (default /mqtt) with the `mqtt`
// subprotocol become byte streams handed to the broker like TCP sockets.
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, createWebSocketStream } from 'ws'
import { requestTarget } from './http-server.js'

export interface WebSocketBridgeOptions {
  path: string
  maxFrameSize: number
  onConnection: (stream: Duplex, req: IncomingMessage) => void
  onRejected: (reason: string, req: IncomingMessage) => void
  /** An upgrade that failed on the broker's side; only that connection is closed. */
  onError: (err: unknown, req: IncomingMessage) => void
}

// MQTT.js and Paho send `mqtt`; `mqttv3.1` is what MQTT 3.1 clients send.
const subprotocols = ['mqtt', 'mqttv3.1']

export function attachWebSocketBridge (server: Server, options: WebSocketBridgeOptions): WebSocketServer {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxFrameSize,
    perMessageDeflate: false,
    // The server must select "mqtt" [MQTT-6.0.0-4]
    handleProtocols: (offered) => subprotocols.find((p) => offered.has(p)) ?? false
  })
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const path = requestTarget(req)?.pathname
    const reason = path === undefined
      ? 'the request target is not a path'
      : path !== options.path
        ? `no WebSocket endpoint at ${path}`
        : offersMqtt(req) ? null : 'the WebSocket subprotocol "mqtt" is required [MQTT-6.0.0-3]'
    if (reason !== null) {
      options.onRejected(reason, req)
      socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${reason}\n`)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      // MQTT is binary: a text frame is a protocol error and closes the connection.
      ws.on('message', (_data, isBinary) => { if (!isBinary) ws.close(1003, 'MQTT needs binary frames') })
      const stream = createWebSocketStream(ws)
      const { socket: raw } = req
      if ('setNoDelay' in raw && typeof raw.setNoDelay === 'function') raw.setNoDelay(true)
      options.onConnection(stream, req)
    })
  }
  // An 'upgrade' listener that throws would be an uncaught exception: the whole node.
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      upgrade(req, socket, head)
    } catch (err) {
      options.onError(err, req)
      socket.destroy()
    }
  })
  return wss
}

function offersMqtt (req: IncomingMessage): boolean {
  const header = req.headers['sec-websocket-protocol']
  if (header === undefined) return false
  return header.split(',').some((p) => subprotocols.includes(p.trim()))
}
