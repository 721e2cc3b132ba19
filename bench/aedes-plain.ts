// Plain Aedes, in memory, with no options: the baseline the project is compared with.
// TCP on a free port, and MQTT over WebSocket at /mqtt on a second one; prints both.
import { createServer as createHttpServer } from 'node:http'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'

const broker = await Aedes.createBroker()
const tcp = createServer(broker.handle)
const http = createHttpServer()
const wss = new WebSocketServer({ server: http, path: '/mqtt' })
wss.on('connection', (ws, req) => broker.handle(createWebSocketStream(ws), req))

const listen = (server: Server): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
console.log(`aedes-plain: MQTT over TCP listening on mqtt://127.0.0.1:${await listen(tcp)}`)
console.log(`aedes-plain: MQTT over WebSocket listening on ws://127.0.0.1:${await listen(http)}/mqtt`)

// Exit through process.exit so that `node --cpu-prof` writes its profile.
process.once('SIGTERM', () => broker.close(() => process.exit(0)))
