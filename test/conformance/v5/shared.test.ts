// MQTT 5.0 conformance, Shared Subscriptions (section 4.8.2) and No Local on them (3.8.3): raw
// MQTT 5.0 over TCP, against a single node and a cluster node.
import type { IPublishPacket } from 'mqtt-packet'
import { sleep } from '../../helpers/broker.js'
import { uniqueId } from '../raw-client.js'
import { forEachTarget } from '../targets.js'

const publishes = (packets: Array<{ cmd: string }>): IPublishPacket[] => packets.filter((packet): packet is IPublishPacket => packet.cmd === 'publish')

forEachTarget((t, { connected }) => {
  t.test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] a ShareName of at least one character without wildcards, followed by / and a filter: otherwise 0x8F Topic Filter invalid for that filter only', async (t) => {
    const client = await connected(t)
    const granted = await client.subscribe({ '$share//a': 1, '$share/+/a': 1, '$share/g': 1, '$share/g/': 1, '$share/g/a': 1 })
    t.same(granted, [0x8F, 0x8F, 0x8F, 0x8F, 1])
  })

  t.test('[MQTT-3.8.3-4] No Local 1 on a Shared Subscription: DISCONNECT 0x82 Protocol Error', async (t) => {
    const client = await connected(t)
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/nl', qos: 1, nl: true }] })
    const disconnect = await client.expect('disconnect')
    t.equal(disconnect.reasonCode, 0x82)
    t.ok(await client.closedWithin(), 'and the connection is closed')
  })

  t.test('[MQTT-4.8.2-3] each message goes to one member, at most at the QoS of that member\'s own subscription', async (t) => {
    const low = await connected(t)
    const high = await connected(t)
    const topic = uniqueId('q')
    await low.subscribe({ [`$share/g/${topic}/#`]: 0 })
    await high.subscribe({ [`$share/g/${topic}/#`]: 2 })
    const publisher = await connected(t)
    for (let i = 0; i < 10; i++) await publisher.publish(`${topic}/x`, String(i), { qos: 2 })
    const [lowGot, highGot] = await Promise.all([low.messages(500), high.messages(500)])
    t.same([...lowGot, ...highGot].map((m) => String(m.payload)).sort(), Array.from({ length: 10 }, (_, i) => String(i)).sort(), 'each message once to the group')
    t.ok(lowGot.length > 0 && lowGot.every((m) => m.qos === 0), 'the QoS 0 member\'s at QoS 0')
    t.ok(highGot.length > 0 && highGot.every((m) => m.qos === 2), 'the QoS 2 member\'s at QoS 2')
  })

  t.test('[MQTT-4.8.2-4] a QoS 2 delivery to a member with a persistent session, broken off by its connection, is completed when it reconnects, not sent to another member', async (t) => {
    const clientId = uniqueId('persistent')
    const topic = uniqueId('p')
    const member = await connected(t, { clientId, clean: false, properties: { sessionExpiryInterval: 60 } })
    await member.subscribe({ [`$share/g/${topic}`]: 2 })
    const other = await connected(t)
    await other.subscribe({ [`$share/g/${topic}`]: 2 })
    const publisher = await connected(t)
    // round robin: two messages, one to each member
    await publisher.publish(topic, 'a', { qos: 2 })
    await publisher.publish(topic, 'b', { qos: 2 })
    const [mine] = publishes(await member.drain(300))
    t.ok(mine !== undefined, 'the persistent member got one and answered nothing')
    member.destroy()
    const otherGot = await other.messages(500)
    t.equal(otherGot.length, 1, 'the other member got only its own')
    const back = await connected(t, { clientId, clean: false, properties: { sessionExpiryInterval: 60 } })
    const [again] = publishes(await back.drain(500))
    t.equal(String(again?.payload), String(mine?.payload), 'the same message again on reconnection')
    t.equal(again?.dup, true, 'as a duplicate')
  })

  t.test('[MQTT-4.8.2-5] a message sent to a member whose persistent session then ends before it reconnects goes to no other member', async (t) => {
    const topic = uniqueId('e')
    const member = await connected(t, { clientId: uniqueId('expiring'), clean: false, properties: { sessionExpiryInterval: 1 } })
    await member.subscribe({ [`$share/g/${topic}`]: 1 })
    const other = await connected(t)
    await other.subscribe({ [`$share/g/${topic}`]: 1 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'a', { qos: 1 })
    await publisher.publish(topic, 'b', { qos: 1 })
    t.equal(publishes(await member.drain(300)).length, 1, 'the member got one and acknowledged nothing')
    member.destroy()
    await sleep(1500)
    t.equal((await other.messages(500)).length, 1, 'the other member got only its own, none after the session ended')
  })

  t.test('[MQTT-4.8.2-6] a PUBACK with a reason code of 0x80 or more discards the message: not sent to another member', async (t) => {
    const topic = uniqueId('r')
    const refuser = await connected(t)
    await refuser.subscribe({ [`$share/g/${topic}`]: 1 })
    const other = await connected(t)
    await other.subscribe({ [`$share/g/${topic}`]: 1 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'a', { qos: 1 })
    await publisher.publish(topic, 'b', { qos: 1 })
    const [refused] = publishes(await refuser.drain(300))
    t.ok(refused !== undefined, 'one reached the refusing member')
    refuser.send({ cmd: 'puback', messageId: refused?.messageId as number, reasonCode: 0x80 })
    await sleep(100)
    // a session that ends with the connection: what it had not acknowledged would be redispatched
    refuser.destroy()
    t.equal((await other.messages(500)).length, 1, 'the other member got only its own')
  })
}, { level: 5 })
