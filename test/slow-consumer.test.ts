// A client that stops reading costs only itself (issue #24, items 4 and 5): its unsent output
// is capped (limits.maxClientOutputBytes; QoS 0 beyond it is dropped and counted), and its
// writes never hold up delivery to other clients on its node or arriving from another node.
import { execFileSync } from 'node:child_process'
import { connect as tlsConnect } from 'node:tls'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import type { MqttClient } from 'mqtt'
import type { Aedes } from 'aedes'
import type { Duplex } from 'node:stream'
import { unsentOutputBytes } from '../src/broker/protocol/guarded-connection.js'
import { defaultOptions } from '../src/broker/config/defaults.js'
import { brokerUrl, connectClient, metricValue, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { connectBytes, idleTcpReader, idleWebSocketReader, subscribeBytes } from './helpers/raw-clients.js'
import { spawnBroker } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'

// What the broker may hold for one capped client: the cap, the message that crossed it, and
// the rest of that event-loop turn's batch (a few messages of 8 KiB).
const outputBound = defaultOptions.limits.maxClientOutputBytes + 256 * 1024

/** The bytes the broker holds unsent for a connected client (its output under the cap). */
function unsentFor (aedes: Aedes, clientId: string): number {
  const client = (aedes as unknown as { clients: Record<string, { conn: Duplex } | undefined> }).clients[clientId]
  if (client === undefined) throw new Error(`${clientId} is not connected`)
  return unsentOutputBytes(client.conn)
}

/** Publishes `count` QoS 0 messages, waiting for the publisher's own socket now and then. */
async function flood (pub: MqttClient, topic: string, count: number, payload: Buffer): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (i % 20 === 19) await pub.publishAsync(topic, payload, { qos: 0 })
    else pub.publish(topic, payload, { qos: 0 })
  }
}

/** QoS 1 messages stamped with their send time; records each one's delay at the subscribers. */
function canaryStream (pub: MqttClient, subs: MqttClient[]): { stop: () => Promise<{ sent: number, missing: number, slowestMs: number }> } {
  const received = subs.map(() => new Set<number>())
  let slowestMs = 0
  for (const [i, sub] of subs.entries()) {
    sub.on('message', (_topic, payload) => {
      const [n, sentAt] = payload.toString().split(':').map(Number) as [number, number]
      received[i]?.add(n)
      slowestMs = Math.max(slowestMs, Date.now() - sentAt)
    })
  }
  let running = true
  let sent = 0
  const loop = (async () => {
    while (running) {
      pub.publish('canary/n', `${sent++}:${Date.now()}`, { qos: 1 })
      await sleep(20)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      await waitFor(() => received.every((got) => got.size === sent), 'every canary message at every canary subscriber', 10_000).catch(() => {})
      const missing = received.reduce((sum, got) => sum + sent - got.size, 0)
      return { sent, missing, slowestMs }
    }
  }
}

t.test('idle TCP and WebSocket readers: their output is capped, QoS 0 beyond it dropped and counted, a canary pair unaffected', async (t) => {
  const broker = await startBroker(t)
  const idleTcp = await idleTcpReader(broker.addresses.mqtt.port, 'idle-tcp', 'flood/#')
  const idleWs = await idleWebSocketReader(brokerUrl(broker, 'ws'), 'idle-ws', 'flood/#')
  t.teardown(() => { idleTcp.destroy(); idleWs.terminate() })
  const canarySubs = await Promise.all((['tcp', 'ws'] as const).map(async (transport) => {
    const sub = await connectClient(t, broker, transport)
    await sub.subscribeAsync('canary/#', { qos: 1 })
    return sub
  }))
  const canary = canaryStream(await connectClient(t, broker, 'tcp'), canarySubs)
  const pub = await connectClient(t, broker, 'tcp')

  // 16 MiB for each idle reader: far more than the kernel's socket buffers take
  const floodStart = Date.now()
  await flood(pub, 'flood/x', 2000, Buffer.alloc(8 * 1024))
  const floodMs = Date.now() - floodStart
  await sleep(500)
  const held = ['idle-tcp', 'idle-ws'].map((id) => unsentFor(broker.aedes, id))
  const { sent, missing, slowestMs } = await canary.stop()

  t.ok(floodMs < 10_000, `the publisher was not held up by the idle readers (${floodMs} ms for 2000 messages)`)
  t.ok(held.every((bytes) => bytes > 0 && bytes <= outputBound), `the broker holds ${held.map((bytes) => `${(bytes / 1024).toFixed(0)} KiB`).join(' and ')} for the idle readers of 16 MiB each (cap 1 MiB)`)
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.ok(metricValue(metrics, 'realtime_broker_dropped_messages_total', { reason: 'slow_consumer' }) > 1000, 'QoS 0 beyond the cap was dropped and counted')
  t.ok(sent > 20, `the canary sent ${sent} messages meanwhile`)
  t.equal(missing, 0, 'the canary lost nothing, over TCP and WebSocket')
  t.ok(slowestMs < 2000, `every canary message arrived within 2 s (slowest ${slowestMs} ms)`)
  const clients = (broker.aedes as unknown as { clients: Record<string, unknown> }).clients
  t.ok(clients['idle-tcp'] !== undefined && clients['idle-ws'] !== undefined, 'the idle readers are still connected (limits.drainTimeoutMs not reached)')
})

t.test('TLS: an idle reader\'s output is capped the same way', async (t) => {
  const dir = t.testdir({})
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`], { stdio: 'ignore' })
  const broker = await startBroker(t, { mqtts: { port: 0, tls: { key: `${dir}/key.pem`, cert: `${dir}/cert.pem` } } })
  const idle = tlsConnect({ port: broker.addresses.mqtts?.port ?? 0, host: '127.0.0.1', rejectUnauthorized: false })
  t.teardown(() => idle.destroy())
  await new Promise((resolve, reject) => { idle.once('secureConnect', resolve); idle.once('error', reject) })
  idle.on('error', () => {})
  idle.write(connectBytes('idle-tls'))
  idle.write(subscribeBytes('flood/#'))
  await sleep(200)
  idle.pause()
  const pub = await connectClient(t, broker, 'tcp')
  await flood(pub, 'flood/x', 2000, Buffer.alloc(8 * 1024))
  await sleep(500)
  const held = unsentFor(broker.aedes, 'idle-tls')
  t.ok(held > 0 && held <= outputBound, `the broker holds ${(held / 1024).toFixed(0)} KiB for an idle reader of 16 MiB (cap 1 MiB)`)
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.ok(metricValue(metrics, 'realtime_broker_dropped_messages_total', { reason: 'slow_consumer' }) > 500, 'QoS 0 beyond the cap was dropped and counted')
  t.ok((broker.aedes as unknown as { clients: Record<string, unknown> }).clients['idle-tls'] !== undefined, 'the idle reader is still connected')
})

t.test('QoS 1 to an idle persistent session over the cap: its connection ends at once, its store keeps every message', async (t) => {
  const broker = await startBroker(t)
  const idle = await idleTcpReader(broker.addresses.mqtt.port, 'idle-q1', 'q1/#', { qos: 1, clean: false })
  t.teardown(() => idle.destroy())
  const pub = await connectClient(t, broker, 'tcp')
  // (no memory bound here: the in-memory session store and the publisher's own store each
  // hold the 6.4 MiB sent, so what the socket would have held is within their noise)
  const count = 800
  const started = Date.now()
  await Promise.all(Array.from({ length: count }, async (_, i) => await pub.publishAsync('q1/x', Buffer.alloc(8 * 1024, i % 256), { qos: 1 })))
  const clients = (broker.aedes as unknown as { clients: Record<string, unknown> }).clients
  await waitFor(() => clients['idle-q1'] === undefined, 'the idle reader\'s connection ended', 10_000).catch(() => {})
  t.equal(clients['idle-q1'], undefined, `the idle reader's connection ended, within ${Date.now() - started} ms: long before limits.drainTimeoutMs (30 s)`)
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(metrics, 'realtime_broker_disconnects_total', { reason: 'slow_consumer' }), 1, 'counted as a slow consumer')

  const received = new Set<number>()
  const { client: back } = await openUrl(t, brokerUrl(broker, 'tcp'), { clientId: 'idle-q1', clean: false }, (client) => {
    client.on('message', (_topic, payload) => received.add(payload[0] as number))
  })
  let messages = 0
  back.on('message', () => { messages++ })
  await waitFor(() => messages >= count, 'every message again from the session\'s store', 15_000).catch(() => {})
  t.ok(messages >= count, `the session got ${messages} of ${count} messages back on reconnect`)
  t.equal(received.size, 256, 'all payloads among them')
})

t.test('retained messages sent on SUBSCRIBE beyond the cap wait for the reader, none is dropped', async (t) => {
  const broker = await startBroker(t)
  const pub = await connectClient(t, broker, 'tcp')
  const retained = 1000 // 8 MiB: more than the kernel's socket buffers and the cap
  await Promise.all(Array.from({ length: retained }, async (_, i) => await pub.publishAsync(`kept/${i}`, Buffer.alloc(8 * 1024, 1), { qos: 1, retain: true })))
  const reader = await idleTcpReader(broker.addresses.mqtt.port, 'slow-retained', 'kept/#')
  t.teardown(() => reader.destroy())
  await sleep(500) // the broker sends what it can while the reader does not read
  const parser = mqttPacket.parser()
  let publishes = 0
  parser.on('packet', (packet) => { if (packet.cmd === 'publish') publishes++ })
  reader.on('data', (chunk: Buffer) => parser.parse(chunk))
  reader.resume()
  await waitFor(() => publishes === retained, 'every retained message', 10_000).catch(() => {})
  t.equal(publishes, retained, 'every retained message arrived')
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(metrics, 'realtime_broker_dropped_messages_total', { reason: 'slow_consumer' }), 0, 'none dropped')
})

t.test('an idle reader that stays over the cap for limits.drainTimeoutMs is disconnected as a slow consumer', async (t) => {
  const broker = await startBroker(t, { limits: { drainTimeoutMs: 1000 } })
  const idleTcp = await idleTcpReader(broker.addresses.mqtt.port, 'idle-tcp', 'flood/#')
  const idleWs = await idleWebSocketReader(brokerUrl(broker, 'ws'), 'idle-ws', 'flood/#')
  t.teardown(() => { idleTcp.destroy(); idleWs.terminate() })
  const pub = await connectClient(t, broker, 'tcp')
  await flood(pub, 'flood/x', 2000, Buffer.alloc(8 * 1024))
  await waitFor(() => broker.aedes.connectedClients === 1, 'both idle readers disconnected', 5000)
  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(metrics, 'realtime_broker_disconnects_total', { reason: 'slow_consumer' }), 2, 'counted as slow consumers')
})

t.test('cluster: an idle reader on node B does not delay messages from node A to B', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all(['sa', 'sb'].map((id) => spawnBroker(t, ['--redis', redis.url], { NODE_ID: id, LOG_LEVEL: 'warn' })))
  if (a === undefined || b === undefined) throw new Error('two nodes')
  const idle = await idleTcpReader(b.mqttPort, 'idle-b', 'flood/#')
  t.teardown(() => idle.destroy())
  const { client: canarySub } = await openUrl(t, `mqtt://127.0.0.1:${b.mqttPort}`)
  await canarySub.subscribeAsync('canary/#', { qos: 1 })
  const { client: canaryPub } = await openUrl(t, `mqtt://127.0.0.1:${a.mqttPort}`)
  const { client: pub } = await openUrl(t, `mqtt://127.0.0.1:${a.mqttPort}`)
  await sleep(500) // the subscriptions' routes reach node A
  const canary = canaryStream(canaryPub, [canarySub])

  await flood(pub, 'flood/x', 2000, Buffer.alloc(8 * 1024))
  await sleep(3000)
  const { sent, missing, slowestMs } = await canary.stop()

  t.ok(sent > 20, `the canary sent ${sent} messages meanwhile`)
  t.equal(missing, 0, 'the canary lost nothing')
  t.ok(slowestMs < 2000, `every canary message from A reached B within 2 s (slowest ${slowestMs} ms)`)
  const metrics = await (await fetch(`http://127.0.0.1:${b.httpPort}/metrics`)).text()
  t.ok(metricValue(metrics, 'realtime_broker_dropped_messages_total', { reason: 'slow_consumer' }) > 0, 'node B dropped QoS 0 beyond the idle reader\'s cap')
  t.equal(metricValue(metrics, 'realtime_broker_clients_connected', { transport: 'tcp' }), 2, 'the idle reader is still connected to B (with the canary subscriber)')
})
