// The floor of an idle MQTT connection's cost in Node: a raw `node:net` server that answers a
// CONNECT with CONNACK 0 and each PINGREQ (0xC0 0x00) with a PINGRESP, and closes a connection
// silent for 1.5 keepalives [MQTT-3.1.2-24] (the socket's own idle timer). No parser, no
// client object, no broker: what Node and the kernel cost per connection and per ping, which
// no broker on Node can go under (bench/idle-floor.ts). Prints its port like the brokers do.
import { createServer, type AddressInfo, type Socket } from 'node:net'

const connack = Buffer.from([0x20, 0x02, 0x00, 0x00])
const pingresp = Buffer.from([0xD0, 0x00])
const PINGREQ = 0xC0
const CONNECT = 0x10

function onData (this: Socket, chunk: Buffer): void {
  if (chunk[0] === CONNECT) {
    // keepalive: bytes 8-9 of a 3.1.1 CONNECT with a 1-byte remaining length (the generator's)
    const keepaliveS = chunk.readUInt16BE(8)
    if (keepaliveS > 0) this.setTimeout(keepaliveS * 1500)
    this.write(connack)
    return
  }
  for (let i = 0; i < chunk.length; i += 2) if (chunk[i] === PINGREQ) this.write(pingresp)
}

function onTimeout (this: Socket): void { this.destroy() }
function onError (): void {}

const server = createServer((socket) => {
  socket.setNoDelay(true)
  socket.on('data', onData)
  socket.on('timeout', onTimeout)
  socket.on('error', onError)
})
server.listen(0, '127.0.0.1', () => {
  console.log(`ping-server: MQTT over TCP listening on mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`)
})
// Exit through process.exit so that `node --cpu-prof` writes its profile.
process.once('SIGTERM', () => process.exit(0))
