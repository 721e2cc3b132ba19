// Measures a broker's memory with clients that stop reading (issue #24, item 4): a built broker
// process (dist/, `npm run build` first), 5 raw TCP subscribers that never read, one publisher
// flooding 1 KiB messages (QoS 0, or 1 with subscriptions at QoS 1) and one reading canary subscriber, for 10 s. Prints the
// broker's RSS each second and what the canary received. Not a test: numbers for a report.
//   npx tsx scripts/slow-consumer-rss.ts [seconds] [qos]
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect as connectTcp, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import mqttPacket from 'mqtt-packet'
import { connect } from 'mqtt'

const seconds = Number(process.argv[2] ?? 10)
const qos = Number(process.argv[3] ?? 0) as 0 | 1
const idleReaders = 5
const payload = Buffer.alloc(1024, 'x')
const cli = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url))

const broker = spawn(process.execPath, [cli, 'start'], { env: { ...process.env, MQTT_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] })
const port = await new Promise<number>((resolve, reject) => {
  let output = ''
  broker.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString()
    const match = /MQTT over TCP listening on mqtt:\/\/[^\s]*:(\d+)/.exec(output)
    if (match !== null) resolve(Number(match[1]))
  })
  broker.once('exit', (code) => reject(new Error(`broker exited with ${code}`)))
})
const rssMiB = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${broker.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024

/** A subscriber over a raw socket that stops reading once subscribed. */
async function idleReader (i: number): Promise<Socket> {
  const socket = connectTcp(port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `idle-${i}`, keepalive: 0 }))
  socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'busy/#', qos }] }))
  await new Promise((resolve) => setTimeout(resolve, 100))
  socket.pause()
  return socket
}

const readers = await Promise.all(Array.from({ length: idleReaders }, async (_, i) => await idleReader(i)))
const canary = connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 })
await canary.subscribeAsync('busy/#', { qos })
let canaryGot = 0
canary.on('message', () => { canaryGot++ })
const publisher = connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 })
await new Promise((resolve) => publisher.once('connect', resolve))

let sent = 0
let publishing = true
const flood = (): void => {
  if (!publishing) return
  // a burst per turn, then yield, so the publisher's own socket keeps draining
  for (let i = 0; i < 50; i++, sent++) publisher.publish('busy/x', payload, { qos })
  setImmediate(flood)
}
console.log(`t=0s rss=${rssMiB().toFixed(0)} MiB`)
flood()
let peak = 0
for (let s = 1; s <= seconds; s++) {
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const rss = rssMiB()
  peak = Math.max(peak, rss)
  console.log(`t=${s}s rss=${rss.toFixed(0)} MiB sent=${sent} canary=${canaryGot}`)
}
publishing = false
console.log(`peak rss ${peak.toFixed(0)} MiB; canary received ${canaryGot} of ${sent}`)
for (const socket of readers) socket.destroy()
await Promise.all([canary.endAsync(true), publisher.endAsync(true)])
broker.kill('SIGTERM')
