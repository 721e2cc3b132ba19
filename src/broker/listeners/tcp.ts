// Native MQTT over TCP, for mobile apps, devices and servers.
import { createServer, type Server, type Socket } from 'node:net'

export function createTcpListener (noDelay: boolean, onConnection: (socket: Socket) => void): Server {
  return createServer({ noDelay }, onConnection)
}
