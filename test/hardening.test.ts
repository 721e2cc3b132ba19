// Hardening: the internet attacks the broker and each attack costs only the attacker's own
// connection. A canary pair of clients publishes and receives at QoS 1 throughout each test
// and must lose nothing. FUZZ_RUNS (default 60) sets the fuzzer's runs; `npm run test:soak`
// raises it.
import type { Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import fc from 'fast-check'
import jwt from 'jsonwebtoken'
import mqttPacket from 'mqtt-packet'
import mqtt from 'mqtt'
import t from 'tap'
import { WebSocket } from 'ws'
import { httpHeadersTimeoutMs } from '../src/bridge/http-server.js'
import { brokerUrl, closeClient, collect, connectClient, connectRefused, metricValue, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { startCanary } from './helpers/canary.js'
import { spawnBroker, type BrokerProcess } from './helpers/process.js'
import { idleTcpReader, idleWebSocketReader, rawRequest, rawTcpSocket } from './helpers/raw-clients.js'
import { startRedis } from './helpers/redis.js'

const fuzzRuns = Number(process.env.FUZZ_RUNS ?? 60)
const seed = Number(process.env.FUZZ_SEED ?? 20261123)

/** Sends bytes on a fresh connection; resolves when the broker closes it or after `ms`. */
async function sendAndWait (port: number, bytes: Buffer, ms: number): Promise<'closed' | 'open'> {
  const socket = await rawTcpSocket(port)
  socket.on('error', () => {})
  socket.on('data', () => {})
  const closed = new Promise<'closed'>((resolve) => socket.once('close', () => resolve('closed')))
  socket.write(bytes)
  const result = await Promise.race([closed, sleep(ms).then(() => 'open' as const)])
  socket.destroy()
  return result
}

const connectBytes = (clientId: string): Buffer => mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 30 })

/** Valid packets a client may send after CONNECT, as bytes, for mutation. */
const validPackets: Buffer[] = [
  mqttPacket.generate({ cmd: 'publish', topic: 'fuzz/a', payload: Buffer.from('x'), qos: 1, messageId: 7, retain: false, dup: false }),
  mqttPacket.generate({ cmd: 'publish', topic: 'fuzz/b', payload: Buffer.alloc(40), qos: 2, messageId: 9, retain: true, dup: false }),
  mqttPacket.generate({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'fuzz/#', qos: 1 }] }),
  mqttPacket.generate({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['fuzz/#'] }),
  mqttPacket.generate({ cmd: 'pubrel', messageId: 9 }),
  mqttPacket.generate({ cmd: 'pingreq' })
]

/** Attack inputs: random bytes, mutated or truncated valid packets, before or after CONNECT. */
const attack = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
  fc.tuple(fc.constantFrom(...validPackets), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.boolean(), fc.boolean())
    .map(([packet, flips, truncate, afterConnect]) => {
      const bytes = Buffer.from(packet)
      for (const [at, value] of flips) bytes[at % bytes.length] = value
      const body = truncate ? bytes.subarray(0, Math.max(1, bytes.length - 3)) : bytes
      return afterConnect ? Buffer.concat([connectBytes('fuzz-client'), body]) : body
    }),
  fc.constantFrom(
    Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), // a remaining length of 268,435,455 and nothing else
    Buffer.concat([connectBytes('twice'), connectBytes('twice')]), // a second CONNECT [MQTT-3.1.0-2]
    Buffer.concat([connectBytes('wild'), mqttPacket.generate({ cmd: 'publish', topic: 'a/#', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })])
  )
)

t.test('protocol fuzzing over TCP and WebSocket: each bad input costs only its connection', async (t) => {
  const broker = await startBroker(t, { limits: { connectTimeoutMs: 1000 } })
  const canary = await startCanary(t, broker)
  const port = broker.addresses.mqtt.port
  await fc.assert(fc.asyncProperty(attack, async (bytes) => {
    await sendAndWait(port, bytes, 150)
    return true
  }), { seed, numRuns: fuzzRuns })
  await fc.assert(fc.asyncProperty(attack, async (bytes) => {
    const ws = new WebSocket(`ws://127.0.0.1:${broker.addresses.http.port}/mqtt`, ['mqtt'])
    ws.on('error', () => {})
    await new Promise((resolve) => { ws.once('open', resolve); ws.once('close', resolve) })
    if (ws.readyState === WebSocket.OPEN) ws.send(bytes)
    await Promise.race([new Promise((resolve) => ws.once('close', resolve)), sleep(150)])
    ws.terminate()
    return true
  }), { seed: seed + 1, numRuns: Math.ceil(fuzzRuns / 2) })
  const { sent, missing } = await canary.stop()
  t.ok(sent > 10, `the canary sent ${sent} messages meanwhile`)
  t.same(missing, [], 'the canary lost nothing')
  t.equal(await sendAndWait(port, connectBytes('still-fine'), 200), 'open', 'the broker still accepts clients')
})

t.test('a flood of connections that never send CONNECT: timed out, memory bounded, clients still served', async (t) => {
  const broker = await startBroker(t, { limits: { connectTimeoutMs: 800 } })
  const canary = await startCanary(t, broker)
  const before = process.memoryUsage().heapUsed
  const sockets: Socket[] = []
  for (let wave = 0; wave < 6; wave++) sockets.push(...await Promise.all(Array.from({ length: 250 }, () => rawTcpSocket(broker.addresses.mqtt.port))))
  const closed = sockets.map((s) => new Promise<void>((resolve) => { s.on('error', () => {}); s.once('close', () => resolve()) }))
  const legit = await connectClient(t, broker, 'tcp')
  t.ok(legit.connected, 'a legitimate client connects during the flood')
  const started = Date.now()
  await Promise.all(closed)
  t.ok(Date.now() - started < 3000, 'every idle connection closed after connectTimeout')
  t.ok(process.memoryUsage().heapUsed - before < 64 * 1024 * 1024, 'heap growth bounded')
  const { missing } = await canary.stop()
  t.same(missing, [], 'the canary lost nothing')
})

t.test('a CONNECT storm with forged tokens: all refused with CONNACK 4, counted, clients still served', async (t) => {
  const secret = 'hardening-secret-0123456789abcdef'
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] } })
  const good = { username: '', password: jwt.sign({ sub: 'canary' }, secret, { expiresIn: 600 }) }
  const canary = await startCanary(t, broker, good)
  const url = brokerUrl(broker, 'tcp')
  const codes: number[] = []
  for (let wave = 0; wave < 5; wave++) {
    codes.push(...await Promise.all(Array.from({ length: 40 }, () => connectRefused(t, url, { username: '', password: jwt.sign({ sub: 'mallory' }, randomBytes(16).toString('hex')) }))))
  }
  t.ok(codes.every((c) => c === 4), 'every forged token got CONNACK 4')
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(metrics, 'realtime_broker_auth_failures_total', { reason: 'bad_token' }), 200)
  const { missing } = await canary.stop()
  t.same(missing, [], 'the canary lost nothing')
})

t.test('connection churn leaves no memory behind', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const broker = await startBroker(t)
  // plain MQTT.js clients: the harness' teardown list would itself keep 1000 clients alive
  const cycle = async (i: number): Promise<void> => {
    const client = mqtt.connect(brokerUrl(broker, i % 2 === 0 ? 'tcp' : 'ws'), { clientId: `churn-${i % 50}`, clean: i % 3 !== 0, reconnectPeriod: 0 })
    await new Promise((resolve, reject) => { client.once('connect', resolve); client.once('error', reject) })
    await client.subscribeAsync(`churn/${i % 50}/#`, { qos: 1 })
    await closeClient(client, i % 4 === 0)
  }
  for (let i = 0; i < 200; i++) await cycle(i) // warm-up
  gc()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < 1000; i++) await cycle(i)
  await waitFor(() => broker.aedes.connectedClients === 0, 'all disconnected')
  await sleep(200)
  gc()
  const grown = process.memoryUsage().heapUsed - before
  t.ok(grown < 8 * 1024 * 1024, `heap grew ${(grown / 1024 / 1024).toFixed(1)} MiB over 1000 cycles`)
})

t.test('a subscriber that stops reading cannot stall delivery to others', async (t) => {
  const broker = await startBroker(t, { limits: { drainTimeoutMs: 1000 } })
  const stuck = await rawTcpSocket(broker.addresses.mqtt.port)
  stuck.on('error', () => {})
  stuck.write(connectBytes('stuck'))
  stuck.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] }))
  await sleep(200)
  stuck.pause() // never reads again
  const fast = await connectClient(t, broker, 'tcp')
  await fast.subscribeAsync('flood/#', { qos: 0 })
  const got = collect(fast)
  const pub = await connectClient(t, broker, 'tcp')
  const payload = Buffer.alloc(32 * 1024)
  for (let i = 0; i < 600; i++) pub.publish('flood/x', payload, { qos: 0 })
  await waitFor(() => got.length === 600, 'every message at the fast subscriber', 15_000)
  t.equal(got.length, 600)
  await waitFor(() => stuck.destroyed || stuck.readableEnded || broker.aedes.connectedClients === 2, 'the stuck subscriber dropped', 5000).catch(() => {})
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(metrics, 'realtime_broker_disconnects_total', { reason: 'slow_consumer' }), 1, 'the stuck subscriber was disconnected by drainTimeout')
})

t.test('WebSocket: a frame split across many TCP writes works; an oversized frame closes only its connection', async (t) => {
  const broker = await startBroker(t, { http: { port: 0, maxWebSocketFrame: 4096 } })
  const canary = await startCanary(t, broker)
  // a hand-made upgrade, then one masked binary frame written a byte at a time
  const socket = await rawTcpSocket(broker.addresses.http.port)
  socket.write(`GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`)
  const received: Buffer[] = []
  socket.on('data', (chunk: Buffer) => received.push(chunk))
  await waitFor(() => Buffer.concat(received).includes('\r\n\r\n'), 'the upgrade response')
  t.match(Buffer.concat(received).toString(), /^HTTP\/1\.1 101/)
  received.length = 0
  const frame = maskedBinaryFrame(connectBytes('byte-by-byte'))
  for (const byte of frame) {
    socket.write(Buffer.from([byte]))
    await sleep(1)
  }
  await waitFor(() => Buffer.concat(received).includes(Buffer.from([0x20, 0x02, 0x00, 0x00])), 'CONNACK in a WebSocket frame')
  socket.destroy()

  const big = new WebSocket(`ws://127.0.0.1:${broker.addresses.http.port}/mqtt`, ['mqtt'])
  await new Promise((resolve) => big.once('open', resolve))
  const code = new Promise<number>((resolve) => big.once('close', (c) => resolve(c)))
  big.send(Buffer.alloc(8192))
  t.equal(await code, 1009, 'message too big')
  const { missing } = await canary.stop()
  t.same(missing, [], 'the canary lost nothing')
})

t.test('an HTTP request flood is served without hurting MQTT clients', async (t) => {
  const broker = await startBroker(t)
  const canary = await startCanary(t, broker)
  let ok = 0
  for (let wave = 0; wave < 10; wave++) {
    const answers = await Promise.all(Array.from({ length: 100 }, async () => (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/healthz`)).status))
    ok += answers.filter((s) => s === 200).length
  }
  t.equal(ok, 1000)
  const { missing } = await canary.stop()
  t.same(missing, [], 'the canary lost nothing')
})

function maskedBinaryFrame (payload: Buffer): Buffer {
  const mask = randomBytes(4)
  const header = payload.length < 126 ? Buffer.from([0x82, 0x80 | payload.length]) : Buffer.from([0x82, 0x80 | 126, payload.length >> 8, payload.length & 0xff])
  const body = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)))
  return Buffer.concat([header, mask, body])
}


t.test('slowloris: 200 requests trickling their headers are cut at headersTimeout; WebSocket and TCP clients still exchange QoS 1', async (t) => {
  const broker = await startBroker(t)
  const canary = await startCanary(t, broker)
  const httpPort = broker.addresses.http.port
  // a WebSocket upgrade whose headers would take minutes at one byte a second
  const request = Buffer.from(`GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:${httpPort}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n')
  const slow = await Promise.all(Array.from({ length: 200 }, () => rawTcpSocket(httpPort)))
  const opened = Date.now()
  const ends = slow.map((socket) => new Promise<{ after: number, answer: string }>((resolve) => {
    let answer = ''
    socket.on('data', (chunk: Buffer) => { answer += chunk.toString() })
    socket.on('error', () => {})
    socket.once('close', () => resolve({ after: Date.now() - opened, answer }))
  }))
  let at = 0
  const trickle = setInterval(() => {
    const byte = request.subarray(at, at + 1)
    at++
    for (const socket of slow) if (!socket.destroyed) socket.write(byte)
  }, 1000)
  t.teardown(() => { clearInterval(trickle); for (const socket of slow) socket.destroy() })

  // meanwhile new WebSocket and TCP clients keep connecting and exchanging QoS 1 messages
  const rounds: number[] = []
  let allClosed = false
  const done = Promise.all(ends).then((results) => { allClosed = true; return results })
  for (let round = 0; !allClosed && Date.now() - opened < 15_000; round++) {
    const started = Date.now()
    const ws = await connectClient(t, broker, 'ws')
    const tcp = await connectClient(t, broker, 'tcp')
    const wsGot = collect(ws)
    const tcpGot = collect(tcp)
    await ws.subscribeAsync(`slow/${round}/ws`, { qos: 1 })
    await tcp.subscribeAsync(`slow/${round}/tcp`, { qos: 1 })
    await tcp.publishAsync(`slow/${round}/ws`, 'to ws', { qos: 1 })
    await ws.publishAsync(`slow/${round}/tcp`, 'to tcp', { qos: 1 })
    await waitFor(() => wsGot.length === 1 && tcpGot.length === 1, `round ${round} messages`, 3000)
    await Promise.all([closeClient(ws, false), closeClient(tcp, false)])
    rounds.push(Date.now() - started)
    await sleep(200)
  }
  const results = await Promise.race([done, sleep(16_000 - (Date.now() - opened)).then(() => null)])
  clearInterval(trickle)
  t.ok(results !== null, 'every trickling connection was closed')
  const latest = Math.max(...(results ?? []).map((r) => r.after))
  const earliest = Math.min(...(results ?? []).map((r) => r.after))
  t.ok(earliest >= httpHeadersTimeoutMs - 500 && latest <= httpHeadersTimeoutMs + 3000,
    `closed between ${earliest} and ${latest} ms after opening (headersTimeout ${httpHeadersTimeoutMs} ms, swept every second)`)
  t.ok((results ?? []).every((r) => r.answer.startsWith('HTTP/1.1 408')), 'each was answered 408 Request Timeout')
  t.ok(at < request.length, `no trickled request completed (${at} of ${request.length} bytes sent)`)
  t.ok(rounds.length >= 5, `${rounds.length} rounds of WebSocket + TCP clients exchanged QoS 1 messages meanwhile`)
  t.ok(Math.max(...rounds) < 2000, `each round took under 2 s (slowest ${Math.max(...rounds)} ms)`)
  const { missing } = await canary.stop()
  t.same(missing, [], 'the canary lost nothing')
})

t.test('a CONNECT trickling in byte by byte is cut at connectTimeout, over TCP and WebSocket', async (t) => {
  const connectTimeoutMs = 1000
  const broker = await startBroker(t, { limits: { connectTimeoutMs } })
  const canary = await startCanary(t, broker)
  const bytes = connectBytes('trickler-0123456789') // 33 bytes: 6.6 s at one byte per 200 ms
  const trickleTcp = async (): Promise<{ after: number, answered: boolean }> => {
    const socket = await rawTcpSocket(broker.addresses.mqtt.port)
    const opened = Date.now()
    let answered = false
    socket.on('data', () => { answered = true })
    socket.on('error', () => {})
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    for (let i = 0; i < bytes.length && !socket.destroyed; i++) {
      socket.write(bytes.subarray(i, i + 1))
      await Promise.race([sleep(200), closed])
    }
    await Promise.race([closed, sleep(2000)])
    socket.destroy()
    return { after: Date.now() - opened, answered }
  }
  const trickleWs = async (): Promise<{ after: number, answered: boolean }> => {
    const ws = new WebSocket(`ws://127.0.0.1:${broker.addresses.http.port}/mqtt`, ['mqtt'])
    ws.on('error', () => {})
    await new Promise((resolve) => ws.once('open', resolve))
    const opened = Date.now()
    let answered = false
    ws.on('message', () => { answered = true })
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()))
    for (let i = 0; i < bytes.length && ws.readyState === WebSocket.OPEN; i++) {
      ws.send(bytes.subarray(i, i + 1))
      await Promise.race([sleep(200), closed])
    }
    await Promise.race([closed, sleep(2000)])
    ws.terminate()
    return { after: Date.now() - opened, answered }
  }
  const results = await Promise.all([...Array.from({ length: 25 }, trickleTcp), ...Array.from({ length: 25 }, trickleWs)])
  const latest = Math.max(...results.map((r) => r.after))
  t.ok(results.every((r) => r.after >= connectTimeoutMs - 100), 'none closed before connectTimeout')
  t.ok(latest < connectTimeoutMs + 1000, `every trickling connection closed by ${latest} ms, long before its CONNECT could complete (6.6 s)`)
  t.notOk(results.some((r) => r.answered), 'none got a CONNACK')
  // the same CONNECT, trickled in faster than connectTimeout, is accepted
  const socket = await rawTcpSocket(broker.addresses.mqtt.port)
  socket.on('error', () => {})
  const connack = new Promise<Buffer>((resolve) => socket.once('data', resolve))
  for (let i = 0; i < bytes.length; i++) {
    socket.write(bytes.subarray(i, i + 1))
    await sleep(15)
  }
  t.same([...(await Promise.race([connack, sleep(2000).then(() => Buffer.alloc(0))]))], [0x20, 0x02, 0x00, 0x00], 'a CONNECT that completes in time gets CONNACK 0')
  socket.destroy()
  const { missing } = await canary.stop()
  t.same(missing, [], 'the canary lost nothing')
})

// The crash, memory and stall cases of round 2 on a 2-node cluster, where a dead or stalled
// node costs every client on it: a cross-node canary (publisher on A, persistent subscriber
// on B) runs throughout and must lose nothing and never wait long.
t.test('2-node cluster: crashing requests, idle readers and a slow reader cost only their own connections', async (t) => {
  const secret = 'hardening-cluster-secret-0123456789'
  const dir = mkdtempSync(join(tmpdir(), 'rb-hardening-'))
  const configFile = join(dir, 'config.yaml')
  writeFileSync(configFile, 'auth:\n  anonymous: true\nacl:\n  users:\n    ops: { roles: [admin] }\n')
  const redis = await startRedis(t)
  const [a, b] = await Promise.all(['ha', 'hb'].map((id) => spawnBroker(t, ['--redis', redis.url, '--config', configFile], { NODE_ID: id, JWT_SECRET: secret, LOG_LEVEL: 'warn' }))) as [BrokerProcess, BrokerProcess]
  const adminToken = jwt.sign({ sub: 'ops' }, secret, { expiresIn: 600 })

  // the canary: numbered QoS 1 messages A -> B, each carrying when it was sent
  const { client: canarySub } = await openUrl(t, `mqtt://127.0.0.1:${b.mqttPort}`, { clientId: 'cluster-canary-sub', clean: false })
  await canarySub.subscribeAsync('canary/#', { qos: 1 })
  const delays = new Map<number, number>()
  canarySub.on('message', (_topic, payload) => {
    const [n, sentAt] = payload.toString().split(':').map(Number) as [number, number]
    delays.set(n, Date.now() - sentAt)
  })
  const { client: canaryPub } = await openUrl(t, `mqtt://127.0.0.1:${a.mqttPort}`, { clientId: 'cluster-canary-pub' })
  for (let probe = 0; delays.size === 0; probe++) { // B's route is announced once a probe arrives
    await canaryPub.publishAsync('canary/probe', `-1:${Date.now()}`, { qos: 1 })
    if (probe === 50) throw new Error('no route from A to B')
    await sleep(100)
  }
  delays.clear()
  const acked: number[] = []
  let running = true
  const canary = (async () => {
    for (let i = 0; running; i++) {
      await canaryPub.publishAsync('canary/n', `${i}:${Date.now()}`, { qos: 1 })
      acked.push(i)
      await sleep(20)
    }
  })()

  // 1, 2: requests that threw synchronously in the request handler are answered 400
  for (const node of [a, b]) {
    t.match(await rawRequest(node.httpPort, 'GET //x:99999/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 400/, 'a request target that is no URL path: 400')
    t.match(await rawRequest(node.httpPort, 'GET //x:99999/mqtt HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n'), /^HTTP\/1\.1 400/, 'the same on a WebSocket upgrade: 400')
    for (const method of ['GET', 'DELETE']) {
      t.match(await rawRequest(node.httpPort, `${method} /api/v1/admin/clients/%E0%A4%A HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminToken}\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 400/, `${method} of a malformed client id in the admin API: 400`)
    }
  }
  t.equal(a.child.exitCode, null, 'node A is alive')
  t.equal(b.child.exitCode, null, 'node B is alive')

  // 4, 5: five TCP readers and one WebSocket reader on B that never read a busy topic, fed
  // from both nodes; B's memory stays bounded and the canary A -> B does not wait for them
  const bMetrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${b.httpPort}/metrics`)).text()
  const rssBefore = metricValue(await bMetrics(), 'realtime_broker_process_resident_memory_bytes')
  const idle: Socket[] = []
  for (let i = 0; i < 5; i++) idle.push(await idleTcpReader(b.mqttPort, `idle-${i}`, 'busy/#'))
  const ws = await idleWebSocketReader(`ws://127.0.0.1:${b.httpPort}/mqtt`, 'idle-ws', 'busy/#') // a browser tab that froze
  const floodUntil = Date.now() + 8000
  const payloadBytes = 1024
  const flood = async (port: number): Promise<number> => {
    const { client } = await openUrl(t, `mqtt://127.0.0.1:${port}`)
    const payload = Buffer.alloc(payloadBytes, 120)
    let sent = 0
    while (Date.now() < floodUntil) {
      for (let i = 0; i < 50; i++) client.publish('busy/x', payload, { qos: 0 })
      sent += 50
      await sleep(1)
    }
    return sent
  }
  const floods = await Promise.all([flood(a.mqttPort), flood(b.mqttPort)])
  const flooded = floods[0] + floods[1]
  t.ok(flooded > 10_000, `${flooded} messages flooded to busy/x`)
  // Bounded means shed, not held: B drops what the six readers cannot take, so the drops
  // approach six times what B received, less what each reader absorbs (maxClientOutputBytes,
  // ~1,000 of these, and the kernel's socket buffers: 10,000 is generous). RSS alone moves with
  // GC timing (the flood's own garbage reached ~0.5 byte per byte flooded on a loaded machine),
  // so it is checked only against holding the flood for each reader (6 bytes per byte).
  let text = await bMetrics()
  const received = (): number => flooded - metricValue(text, 'realtime_broker_dropped_messages_total', { reason: 'cluster_backpressure' })
  const shed = (): number => metricValue(text, 'realtime_broker_dropped_messages_total', { reason: 'slow_consumer' })
  const mustShed = (): number => 3 * (received() - 10_000)
  for (let wait = 0; wait < 100 && shed() < mustShed(); wait++) { // B may still be reading A's share
    await sleep(100)
    text = await bMetrics()
  }
  t.ok(shed() >= mustShed(), `B shed ${shed()} deliveries to the six stalled readers of the ${received()} messages it received`)
  const rssGrowth = metricValue(text, 'realtime_broker_process_resident_memory_bytes') - rssBefore
  t.ok(rssGrowth < 1.5 * flooded * payloadBytes, `node B's RSS grew ${Math.round(rssGrowth / 1048576)} MB for ${Math.round(flooded * payloadBytes / 1048576)} MB flooded, while six readers did not read`)
  t.ok(idle.some((s) => !s.destroyed), 'the idle readers were not all cut yet (the drain timeout is 30 s)')

  running = false
  await canary
  await waitFor(() => acked.every((i) => delays.has(i)), 'every canary message', 10_000).catch(() => {})
  const missing = acked.filter((i) => !delays.has(i))
  const worst = Math.max(...delays.values())
  t.ok(acked.length > 50, `the canary sent ${acked.length} messages`)
  t.same(missing, [], 'the canary lost nothing')
  // the canary shares B's inbox with the flood, so it waits behind it on a loaded machine; the
  // idle readers, though, would hold it until limits.drainTimeoutMs (30 s) cut them
  t.ok(worst < 10_000, `no canary message waited for the idle readers to be cut (worst ${worst} ms)`)
  t.equal(a.child.exitCode, null, 'node A is alive')
  t.equal(b.child.exitCode, null, 'node B is alive')
  for (const socket of idle) socket.destroy()
  ws.terminate()
})
