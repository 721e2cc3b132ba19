// A publisher's QoS 1 publishes on several history topics wait for one Redis append call
// together: the store answers them in the order they came, across topics, so PUBACKs go in the
// order of the PUBLISHes [MQTT-4.6.0-2] and deliveries per topic in publish order [MQTT-4.6.0-6].
import { Redis } from 'ioredis'
import t from 'tap'
import { collect, connectClient, startBroker, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'

t.test('Redis history: publishes on two topics are answered in the order they came', async (t) => {
  const redis = await startRedis(t)
  const broker = await startBroker(t, { history: { topics: [{ filter: 'room/+/messages', size: 1000, ttlSeconds: 600 }] }, redis: { url: redis.url } })
  const subscriber = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  await subscriber.subscribeAsync('room/#', { qos: 1 })
  const delivered = collect(subscriber)
  const publisher = await connectClient(t, broker, 'tcp', { clientId: 'two-topic-publisher' })
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
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(acknowledged.length, 0, 'none acknowledged while Redis waits')

  await Promise.all(publishes)
  t.equal(sent.length, count)
  t.same(acknowledged, sent, 'PUBACKs in the order of the PUBLISHes')
  await waitFor(() => delivered.length === count, `${count} deliveries (have ${delivered.length})`)
  for (const topic of ['room/0/messages', 'room/1/messages']) {
    const ofTopic = delivered.filter((m) => m.topic === topic)
    t.same(ofTopic.map((m) => m.payload), Array.from({ length: count }, (_, i) => `m${i}`).filter((_, i) => `room/${i % 2}/messages` === topic), `${topic}: delivered in publish order`)
    t.same(ofTopic.map((m) => m.packet.properties?.userProperties?.offset), ofTopic.map((_, i) => String(i + 1)), `${topic}: stored in publish order`)
  }
})
