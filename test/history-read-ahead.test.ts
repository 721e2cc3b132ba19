// Read-ahead (Aedes' patch, lib/client.js; docs/aedes-patches.md): while a publisher's QoS 1
// publishes on history topics wait for Redis, its next packets are read, up to Aedes'
// readAheadLimit of such publishes; PUBACKs still go in the order of the PUBLISHes, deliveries
// per topic in publish order, and a SUBSCRIBE sent after them takes effect after them.
import { Redis } from 'ioredis'
import type { Client } from 'aedes'
import t from 'tap'
import { clientById } from '../src/broker/aedes-adapter.js'
import { collect, connectClient, startBroker, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'

// Aedes' default (aedes.js, defaultOptions.readAheadLimit)
const readAheadLimit = 100

t.test('Redis history: a publisher is read ahead of its waiting publishes, bounded, and answered in order', async (t) => {
  const redis = await startRedis(t)
  const broker = await startBroker(t, { history: { topics: [{ filter: 'room/+/messages', size: 1000, ttlSeconds: 600 }] }, redis: { url: redis.url } })
  const subscriber = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  await subscriber.subscribeAsync('room/#', { qos: 1 })
  const delivered = collect(subscriber)
  const publisher = await connectClient(t, broker, 'tcp', { clientId: 'read-ahead-publisher' })
  const own = collect(publisher)
  const sent: number[] = []
  const acknowledged: number[] = []
  publisher.on('packetsend', (packet) => { if (packet.cmd === 'publish' && packet.messageId !== undefined) sent.push(packet.messageId) })
  publisher.on('packetreceive', (packet) => { if (packet.cmd === 'puback' && packet.messageId !== undefined) acknowledged.push(packet.messageId) })

  // Redis answers nothing for a while: every append waits
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.call('CLIENT', 'PAUSE', '1500', 'ALL')
  const count = 300
  const publishes = Array.from({ length: count }, async (_, i) => await publisher.publishAsync(`room/${i % 2}/messages`, `m${i}`, { qos: 1 }))
  // sent after the publishes: it must not see them
  const subscribed = publisher.subscribeAsync('room/0/messages', { qos: 1 })
  const held = clientById(broker.aedes, 'read-ahead-publisher') as Client & { _readAhead: number }
  await waitFor(() => held._readAhead === readAheadLimit, `${readAheadLimit} publishes read ahead (have ${held._readAhead})`, 1000)
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(held._readAhead, readAheadLimit, 'no more than the limit read ahead')
  t.equal(acknowledged.length, 0, 'none acknowledged while Redis waits')

  await Promise.all(publishes)
  await subscribed
  t.equal(sent.length, count)
  t.same(acknowledged, sent, 'PUBACKs in the order of the PUBLISHes')
  await waitFor(() => delivered.length === count, `${count} deliveries (have ${delivered.length})`)
  for (const topic of ['room/0/messages', 'room/1/messages']) {
    const ofTopic = delivered.filter((m) => m.topic === topic)
    t.same(ofTopic.map((m) => m.payload), Array.from({ length: count }, (_, i) => `m${i}`).filter((_, i) => `room/${i % 2}/messages` === topic), `${topic}: delivered in publish order`)
    t.same(ofTopic.map((m) => m.packet.properties?.userProperties?.offset), ofTopic.map((_, i) => String(i + 1)), `${topic}: stored in publish order`)
  }
  t.equal(held._readAhead, 0, 'nothing left waiting')

  await publisher.publishAsync('room/0/messages', 'after', { qos: 1 })
  await waitFor(() => own.length === 1, 'the publisher receives what it published after subscribing')
  t.same(own.map((m) => m.payload), ['after'], 'the SUBSCRIBE took effect after the publishes sent before it')
})
