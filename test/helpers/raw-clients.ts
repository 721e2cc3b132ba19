// Clients below MQTT.js and fetch: raw HTTP requests and subscribers that stop reading, for
// the tests that attack the broker with what a well-behaved client never sends.
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import mqttPacket from 'mqtt-packet'
import { WebSocket } from 'ws'
import { sleep } from './broker.js'
import type { Teardown } from './loopback.js'

export const connectBytes = (clientId: string, clean = true): Buffer => mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive: 0 })
export const subscribeBytes = (filter: string, qos: 0 | 1 = 0): Buffer => mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] })

/** A TCP socket to `port` on 127.0.0.1, resolved once connected; destroyed by `t`'s teardown if given. */
export async function rawTcpSocket (port: number, t?: Teardown): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1')
  t?.teardown(() => socket.destroy())
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  return socket
}

/** Resolves when `socket` has closed. */
export const closedBy = (socket: Socket): Promise<void> => new Promise((resolve) => socket.once('close', () => resolve()))

/** A subscriber over a raw TCP socket that never reads once subscribed. */
export async function idleTcpReader (port: number, clientId: string, filter: string, { qos = 0, clean = true }: { qos?: 0 | 1, clean?: boolean } = {}): Promise<Socket> {
  const socket = await rawTcpSocket(port)
  socket.on('error', () => {})
  socket.write(connectBytes(clientId, clean))
  socket.write(subscribeBytes(filter, qos))
  await sleep(200)
  socket.pause()
  return socket
}

/** A subscriber over WebSocket that never reads once subscribed. */
export async function idleWebSocketReader (url: string, clientId: string, filter: string): Promise<WebSocket> {
  const ws = new WebSocket(url, ['mqtt'])
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.on('error', () => {})
  ws.send(connectBytes(clientId))
  ws.send(subscribeBytes(filter))
  await sleep(200)
  ws.pause()
  return ws
}

/** Sends a raw request on its own connection (TLS for HTTPS); resolves with what came back until the close. */
export function rawRequest (port: number, request: string, secure = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = secure
      ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => socket.write(request))
      : tcpConnect(port, '127.0.0.1', () => socket.write(request))
    let answer = ''
    socket.setTimeout(5000, () => socket.destroy())
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
    socket.on('close', () => resolve(answer))
    socket.on('error', reject)
  })
}

export const statusOf = (answer: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)
