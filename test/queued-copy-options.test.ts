// A persistent session's queued copy is sent again on CONNECT as its live copy went: at the QoS
// its subscription granted [MQTT-3.8.4-6] and with RETAIN 1 only for a subscription with Retain
// As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13], a Shared Subscription too (held under its whole
// `$share/<ShareName>/<filter>` name, which no topic matches); a message No Local kept from its
// publisher is not sent to it from the queue either, by a route catch-up or on CONNECT [MQTT-3.8.3-3].
import t from 'tap'
import type { IPublishPacket } from 'mqtt'
import { Redis } from 'ioredis'
import { startBroker } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'
import { RawClient } from './conformance/raw-client.js'

const persistent = (clientId: string): { clientId: string, clean: false, properties: { sessionExpiryInterval: number } } => ({ clientId, clean: false, properties: { sessionExpiryInterval: 300 } })

for (const store of ['memory', 'redis'] as const) {
  t.test(`${store}: a retained QoS 2 message queued for a QoS 1 subscription with Retain As Published`, async (t) => {
    const broker = await startBroker(t, store === 'memory' ? {} : { redis: { url: (await startRedis(t)).url } })
    const port = broker.addresses.mqtt.port
    for (const [filter, topic] of [['$share/g/shared/#', 'shared/x'], ['plain/#', 'plain/x']] as const) {
      const subscriber = await RawClient.tcp(t, port, 5)
      await subscriber.connect(persistent(`reader-${topic}`))
      await subscriber.subscribeWith([{ topic: filter, qos: 1, rap: true }])
      const publisher = await RawClient.tcp(t, port, 5)
      await publisher.connect({ clientId: `writer-${topic}` })
      await publisher.publish(topic, 'v', { qos: 2, retain: true })
      const live = await subscriber.expect('publish')
      t.same([live.qos, live.retain], [1, true], `${filter}: the live copy`)
      // not acknowledged: sent again on the next CONNECT
      subscriber.destroy()
      publisher.destroy()
      const resumed = await RawClient.tcp(t, port, 5)
      await resumed.connect(persistent(`reader-${topic}`))
      const again = (await resumed.drain(800)).filter((packet): packet is IPublishPacket => packet.cmd === 'publish')
      t.same(again.map((packet) => [packet.qos, packet.retain, packet.dup]), [[1, true, true]], `${filter}: sent again once, as the live copy went`)
      for (const packet of again) resumed.send({ cmd: 'puback', messageId: packet.messageId })
      resumed.destroy()
    }
  })

  t.test(`${store}: a message No Local kept from its publisher is not sent to it, live, by a route catch-up, or on the next CONNECT`, async (t) => {
    const redis = store === 'memory' ? null : await startRedis(t)
    const broker = await startBroker(t, redis === null ? {} : { redis: { url: redis.url } })
    if (redis !== null) {
      // a node that beats and never acknowledges routes: the new subscription's catch-up holds its
      // live copies for the hold (1 s), then reads the queue, where the session's stored copy
      // waits for the held live copy, refused, to clear it. That read sent it (once in a CI run)
      const silent = new Redis(redis.url)
      t.teardown(() => silent.disconnect())
      const beat = async (): Promise<void> => { await silent.zadd('cluster:nodes', Date.now(), 'silent-node') }
      await beat()
      const beating = setInterval(() => { beat().catch(() => {}) }, 300)
      t.teardown(() => clearInterval(beating))
    }
    const port = broker.addresses.mqtt.port
    const client = await RawClient.tcp(t, port, 5)
    await client.connect(persistent('own-echo'))
    await client.subscribeWith([{ topic: 'echo/#', qos: 1, nl: true }])
    await client.publish('echo/1', 'mine', { qos: 1 })
    t.same((await client.drain(1500)).filter((packet) => packet.cmd === 'publish'), [], 'not sent live, nor by the catch-up')
    await client.disconnect()
    const resumed = await RawClient.tcp(t, port, 5)
    await resumed.connect(persistent('own-echo'))
    t.same((await resumed.drain(600)).filter((packet) => packet.cmd === 'publish'), [], 'nor on the next CONNECT')
    resumed.destroy()
  })

  t.test(`${store}: an own copy sent and not acknowledged is sent again on CONNECT though No Local came on since [MQTT-4.4.0-1]`, async (t) => {
    const broker = await startBroker(t, store === 'memory' ? {} : { redis: { url: (await startRedis(t)).url } })
    const port = broker.addresses.mqtt.port
    const client = await RawClient.tcp(t, port, 5)
    await client.connect(persistent('own-unacked'))
    await client.subscribeWith([{ topic: 'mine/1', qos: 1 }])
    await client.publish('mine/1', 'm', { qos: 1 })
    const live = await client.expect('publish')
    // not acknowledged; the subscription now keeps the client's own messages from it
    await client.subscribeWith([{ topic: 'mine/1', qos: 1, nl: true }])
    client.destroy()
    const resumed = await RawClient.tcp(t, port, 5)
    await resumed.connect(persistent('own-unacked'))
    const again = (await resumed.drain(800)).filter((packet): packet is IPublishPacket => packet.cmd === 'publish')
    t.same(again.map((packet) => [packet.messageId, packet.dup]), [[live.messageId, true]], 'sent again, with its Packet Identifier and DUP 1')
    resumed.destroy()
  })
}
