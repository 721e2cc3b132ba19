// MQTT 5.0 conformance, SUBSCRIBE/SUBACK and UNSUBSCRIBE/UNSUBACK (sections 3.8 to 3.11) with
// their v5 reason codes, and topic matching (4.7): raw MQTT 5.0 over TCP, against a single node
// and a cluster node.
import type { BrokerHandle } from '../../../src/server.js'
import { uniqueId } from '../raw-client.js'
import { forEachTarget } from '../targets.js'

/** A message published by the broker itself (clients may not publish to $ topics). */
function brokerPublish (broker: BrokerHandle, topic: string, payload: string): Promise<void> {
  return new Promise((resolve, reject) => broker.aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false }, (err) => err ? reject(err) : resolve()))
}

forEachTarget((t, { target, connected }) => {
  t.test('[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.8.4-7] [MQTT-3.9.3-1] [MQTT-3.9.3-2] [MQTT-2.2.1-6] one SUBACK with the identifier and a reason code per filter, in order: the granted QoS, 0x87 for a filter not granted, a shared subscription granted as any other', async (t) => {
    const guarded = await target.broker(t, { acl: { roles: { anonymous: { pub: ['#'], sub: ['ok/#'] } } } })
    const client = await connected(t, {}, guarded)
    const suback = await client.subscribeWith([
      { topic: 'ok/a', qos: 2 },
      { topic: 'no/a', qos: 1 },
      { topic: '$share/group/ok/b', qos: 1 },
      { topic: 'ok/c', qos: 0 }
    ], undefined, 4242)
    t.equal(suback.messageId, 4242, 'the identifier of the SUBSCRIBE')
    t.same(suback.granted, [2, 0x87, 1, 0], 'granted QoS 2, 0x87 Not authorized, granted QoS 1 (shared), granted QoS 0')
    const publisher = await connected(t, {}, guarded)
    for (const topic of ['ok/a', 'no/a', 'ok/b', 'ok/c']) await publisher.publish(topic, topic, { qos: 1 })
    t.same((await client.messages(400)).map((m) => m.topic), ['ok/a', 'ok/b', 'ok/c'], 'each granted filter works as its own SUBSCRIBE; the refused ones deliver nothing')
  })

  t.test('[MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.10.4-6] [MQTT-3.11.3-1] [MQTT-3.11.3-2] [MQTT-2.2.1-6] one UNSUBACK with the identifier and a reason code per filter, in order: 0x00 for an exact match, which stops its messages, 0x11 for none', async (t) => {
    const base = `unsub/${uniqueId()}`
    const client = await connected(t)
    await client.subscribeWith([{ topic: `${base}/+`, qos: 1 }, { topic: `${base}/a`, qos: 1 }])
    client.send({ cmd: 'unsubscribe', messageId: 77, unsubscriptions: [`${base}/+`, `${base}/b`, `${base}/#`] })
    const unsuback = await client.expect('unsuback')
    t.equal(unsuback.messageId, 77, 'the identifier of the UNSUBSCRIBE')
    t.same(unsuback.granted, [0x00, 0x11, 0x11], 'Success for the exact match; 0x11 No subscription existed for the others (wildcards compared as characters)')
    const publisher = await connected(t)
    await publisher.publish(`${base}/a`, 'a', { qos: 1 })
    await publisher.publish(`${base}/c`, 'c', { qos: 1 })
    t.same((await client.messages(400)).map((m) => m.payload.toString()), ['a'], 'the remaining subscription delivers; the removed one adds nothing')
  })

  t.test('[MQTT-3.10.4-3] a QoS 2 delivery started before UNSUBSCRIBE is completed', async (t) => {
    const topic = `unsub-inflight/${uniqueId()}`
    const client = await connected(t)
    await client.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'in flight', { qos: 2 })
    const [message] = await client.nextMessages(1, { ack: false })
    client.send({ cmd: 'pubrec', messageId: message?.messageId as number })
    client.send({ cmd: 'unsubscribe', messageId: 5, unsubscriptions: [topic] })
    const answers = await client.drain(400)
    t.same(answers.map((p) => p.cmd).sort(), ['pubrel', 'unsuback'], 'the PUBREL of the started delivery comes, as the UNSUBACK does')
    client.send({ cmd: 'pubcomp', messageId: message?.messageId as number })
    t.same(await client.drain(200), [], 'completed')
  })

  t.test('[MQTT-4.7.2-1] [MQTT-4.7.3-4] filters starting with a wildcard do not match topic names starting with $; topics are matched as they are, without normalization', async (t) => {
    const open = await target.broker(t, { acl: { roles: { anonymous: { pub: ['#'], sub: ['#', '$test/#'] } } } })
    const level = uniqueId('L')
    const wild = await connected(t, {}, open)
    t.same((await wild.subscribeWith([{ topic: '#', qos: 1, nl: true }, { topic: `+/${level}`, qos: 1, nl: true }])).granted, [1, 1])
    const dollar = await connected(t, {}, open)
    t.same((await dollar.subscribeWith([{ topic: '$test/#', qos: 1 }])).granted, [1])
    await brokerPublish(open, `$test/${level}`, 'dollar')
    t.same((await dollar.nextMessages(1)).map((m) => m.payload.toString()), ['dollar'], 'a $ filter gets it')
    const exact = await connected(t, {}, open)
    await exact.subscribeWith([{ topic: `case/${level}`, qos: 1 }])
    const publisher = await connected(t, {}, open)
    await publisher.publish(`case/${level.toUpperCase()}`, 'other case', { qos: 1 })
    await publisher.publish(`case/${level}`, 'same case', { qos: 1 })
    t.same((await exact.messages(300)).map((m) => m.payload.toString()), ['same case'], 'no case folding')
    t.same((await wild.messages(300)).filter((m) => m.topic.startsWith('$')).map((m) => m.topic), [], 'the $ message reached neither # nor +/level')
  })
}, { level: 5 })
