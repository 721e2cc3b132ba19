// MQTT 3.1.1 conformance, SUBSCRIBE/SUBACK/UNSUBSCRIBE/UNSUBACK (sections 3.8-3.11) and topic
// filters and matching (section 4.7), over raw TCP, against a single node and a cluster node.
import type { BrokerHandle } from '../../src/server.js'
import { startBroker } from '../helpers/broker.js'
import { closedSilently, stillConnected } from './expect.js'
import { mqttString, rawPacket, uniqueId } from './raw-client.js'
import { forEachTarget } from './targets.js'

const ill = {
  'an invalid byte': Buffer.from([0x61, 0xfe]),
  'an encoded surrogate U+DABC': Buffer.from([0xed, 0xaa, 0xbc]),
  'a truncated sequence': Buffer.from([0x61, 0xe2, 0x82])
}

/** A message published by the broker itself (clients may not publish to $ topics). */
function brokerPublish (broker: BrokerHandle, topic: string, payload: string, retain: boolean): Promise<void> {
  return new Promise((resolve, reject) => broker.aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain, dup: false }, (err) => err ? reject(err) : resolve()))
}

forEachTarget((t, { target, broker, connected }) => {
  t.test('[MQTT-2.3.1-7] SUBACK and UNSUBACK carry the packet identifier of their SUBSCRIBE and UNSUBSCRIBE', async (t) => {
    const client = await connected(t)
    for (const messageId of [1, 300, 65535]) {
      // subscribe() and unsubscribe() fail unless the acknowledgement has `messageId`
      t.same(await client.subscribe({ [`ids/${messageId}`]: 1 }, messageId), [1], `SUBACK ${messageId}`)
      await client.unsubscribe([`ids/${messageId}`], messageId)
      t.pass(`UNSUBACK ${messageId}`)
    }
  })

  t.test('[MQTT-3.8.1-1] a SUBSCRIBE with fixed-header flags other than 0010 closes the connection', async (t) => {
    for (const first of [0x80, 0x83, 0x8a]) {
      const client = await connected(t)
      client.send(rawPacket(first, [0, 1], mqttString('a/b'), [0]))
      await closedSilently(t, client, `0x${first.toString(16)}`)
    }
  })

  t.test('[MQTT-3.8.3-1] a topic filter that is not a valid UTF-8 string closes the connection', async (t) => {
    for (const [what, bytes] of Object.entries({ ...ill, 'U+0000': Buffer.from([0x61, 0x00]) })) {
      const client = await connected(t)
      client.send(rawPacket(0x82, [0, 1], mqttString(bytes), [0]))
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-3.8.3-2] topic filters with wildcards are supported, so they are granted, not rejected', async (t) => {
    const client = await connected(t)
    t.same(await client.subscribe({ '#': 0, '+': 1, 'w/+/x': 2, 'w/#': 1 }), [0, 1, 2, 1])
  })

  t.test('[MQTT-3.8.3-3] a SUBSCRIBE without topic filters is a protocol violation: the connection closes', async (t) => {
    const client = await connected(t)
    client.send(rawPacket(0x82, [0, 1]))
    await closedSilently(t, client, 'SUBSCRIBE with no payload')
  })

  t.test('[MQTT-3.8.3-4] reserved bits set or QoS 3 in a requested QoS byte close the connection', async (t) => {
    for (const options of [0x03, 0x04, 0x80, 0x41]) {
      const client = await connected(t)
      client.send(rawPacket(0x82, [0, 1], mqttString('a/b'), [options]))
      await closedSilently(t, client, `requested QoS byte 0x${options.toString(16)}`)
    }
  })

  t.test('[MQTT-3.8.4-1] [MQTT-3.8.4-2] a SUBSCRIBE is answered with a SUBACK with its packet identifier', async (t) => {
    const client = await connected(t)
    client.send({ cmd: 'subscribe', messageId: 4242, subscriptions: [{ topic: 's/a', qos: 1 }] })
    const suback = await client.expect('suback')
    t.equal(suback.messageId, 4242)
    t.same(suback.granted, [1])
  })

  t.test('[MQTT-3.8.4-3] subscribing again to a filter replaces the subscription, re-sends retained messages, and does not interrupt the flow', async (t) => {
    const topic = `again/${uniqueId()}`
    const client = await connected(t)
    const publisher = await connected(t)
    await publisher.publish(topic, 'retained', { qos: 2, retain: true })
    t.same(await client.subscribe({ [topic]: 0 }), [0])
    const [first] = await client.nextMessages(1)
    t.match(first, { qos: 0, retain: true })
    t.same(await client.subscribe({ [topic]: 2 }), [2], 'the same filter at another QoS')
    const [again] = await client.nextMessages(1)
    t.match(again, { payload: Buffer.from('retained'), qos: 2, retain: true }, 'the retained message is re-sent, at the new QoS')
    await publisher.publish(topic, 'live', { qos: 2 })
    const live = await client.messages(300)
    t.same(live.map((m) => [m.payload.toString(), m.qos]), [['live', 2]], 'one subscription, replaced: one copy at the new QoS')
    // the flow is not interrupted while the subscription is replaced, again and again; in a
    // cluster the messages come from another node
    const streamTopic = `flow/${uniqueId()}`
    await client.subscribe({ [streamTopic]: 1 })
    const source = target.cluster ? await connected(t, {}, await startBroker(t, { redis: broker.config.redis })) : publisher
    for (let probe = 0; ; probe++) { // the route from the source's node is in place once a probe arrives
      await source.publish(streamTopic, 'probe', { qos: 0 })
      if ((await client.messages(100)).length > 0) break
      if (probe === 30) throw new Error('no route to the subscriber')
    }
    const total = 400
    const seen = new Set<string>()
    const receiving = (async () => {
      while (seen.size < total) {
        const packet = await client.next(3000)
        if (packet.cmd === 'publish') {
          seen.add(packet.payload.toString())
          await client.ack(packet)
        }
      }
    })()
    for (let i = 0; i < total; i++) {
      source.send({ cmd: 'publish', topic: streamTopic, payload: String(i), qos: 1, messageId: i + 1, retain: false, dup: false })
      if (i % 40 === 20) client.send({ cmd: 'subscribe', messageId: 900 + i, subscriptions: [{ topic: streamTopic, qos: i % 80 === 20 ? 2 : 1 }] })
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    await receiving.catch((err: Error) => t.fail(`${err.message} (${seen.size} of ${total} arrived)`))
    t.equal(seen.size, total, 'every message of the stream arrived')
  })

  t.test('[MQTT-3.8.4-4] a SUBSCRIBE with several filters is handled as several SUBSCRIBEs, with a single SUBACK', async (t) => {
    const base = `multi/${uniqueId()}`
    const client = await connected(t)
    client.send({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: `${base}/a`, qos: 0 }, { topic: `${base}/b`, qos: 1 }, { topic: `${base}/c`, qos: 2 }] })
    const suback = await client.expect('suback')
    t.same(suback.granted, [0, 1, 2])
    const publisher = await connected(t)
    for (const level of ['a', 'b', 'c']) await publisher.publish(`${base}/${level}`, level, { qos: 2 })
    const messages = await client.nextMessages(3)
    t.same(messages.map((m) => [m.payload.toString(), m.qos]), [['a', 0], ['b', 1], ['c', 2]])
    t.same(await client.drain(200), [], 'no other SUBACK')
  })

  t.test('[MQTT-3.8.4-5] the SUBACK has a return code for each filter: the granted QoS, or 0x80 for a failure', async (t) => {
    const broker = await target.broker(t, { acl: { roles: { anonymous: { pub: ['#'], sub: ['ok/#'] } } } })
    const client = await connected(t, {}, broker)
    t.same(await client.subscribe({ 'ok/a': 2, 'no/a': 1, 'ok/b': 0 }), [2, 0x80, 0], 'refused filter: 0x80')
    // the same filter twice in one SUBSCRIBE still gets one return code per filter
    client.send({ cmd: 'subscribe', messageId: 77, subscriptions: [{ topic: 'ok/x', qos: 0 }, { topic: 'ok/y', qos: 1 }, { topic: 'ok/x', qos: 2 }] })
    const suback = await client.expect('suback')
    t.equal(suback.granted.length, 3, 'three filters, three return codes')
    t.same(suback.granted.slice(1), [1, 2])
  })

  t.test('[MQTT-3.8.4-6] messages are delivered at the minimum of their QoS and the granted QoS', async (t) => {
    const base = `min/${uniqueId()}`
    const publisher = await connected(t)
    await publisher.publish(`${base}/retained`, 'r', { qos: 2, retain: true })
    const client = await connected(t)
    t.same(await client.subscribe({ [`${base}/q0`]: 0, [`${base}/q1`]: 1, [`${base}/wild/+`]: 1, [`${base}/+`]: 1 }), [0, 1, 1, 1])
    const [retained] = await client.nextMessages(1)
    t.match(retained, { topic: `${base}/retained`, qos: 1, retain: true }, 'a retained QoS 2 message on a QoS 1 subscription: QoS 1')
    await publisher.publish(`${base}/q0`, 'a', { qos: 2 })
    await publisher.publish(`${base}/wild/x`, 'b', { qos: 2 })
    await publisher.publish(`${base}/q1`, 'c', { qos: 0 })
    const messages = await client.messages(400)
    t.same(messages.map((m) => [m.payload.toString(), m.qos]).sort(), [['a', 1], ['b', 1], ['c', 0]], 'QoS 2 on QoS 0 and 1 filters (q0 also matches +: max 1); QoS 0 stays 0')
  })

  t.test('[MQTT-3.9.3-1] the return codes of a SUBACK are in the order of the filters', async (t) => {
    const broker = await target.broker(t, { acl: { roles: { anonymous: { pub: ['#'], sub: ['ok/#'] } } } })
    const client = await connected(t, {}, broker)
    const filters: Array<[string, 0 | 1 | 2]> = [['ok/1', 2], ['ok/2', 0], ['no/3', 2], ['ok/4', 1], ['ok/5', 2], ['no/6', 0]]
    client.send({ cmd: 'subscribe', messageId: 6, subscriptions: filters.map(([topic, qos]) => ({ topic, qos })) })
    t.same((await client.expect('suback')).granted, [2, 0, 0x80, 1, 2, 0x80])
  })

  t.test('[MQTT-3.9.3-2] SUBACK return codes are only 0x00, 0x01, 0x02 and 0x80', async (t) => {
    const broker = await target.broker(t, { acl: { roles: { anonymous: { pub: ['#'], sub: ['ok/#'] } } } })
    const client = await connected(t, {}, broker)
    const granted = await client.subscribe({ 'ok/a': 0, 'ok/b': 1, 'ok/c': 2, 'no/d': 2, 'ok/+/e': 2, 'ok/#': 1 })
    t.ok(granted.every((code) => [0, 1, 2, 0x80].includes(code)), JSON.stringify(granted))
  })

  t.test('[MQTT-3.10.1-1] an UNSUBSCRIBE with fixed-header flags other than 0010 closes the connection', async (t) => {
    for (const first of [0xa0, 0xa3, 0xab]) {
      const client = await connected(t)
      client.send(rawPacket(first, [0, 1], mqttString('a/b')))
      await closedSilently(t, client, `0x${first.toString(16)}`)
    }
  })

  t.test('[MQTT-3.10.3-1] a topic filter in an UNSUBSCRIBE that is not a valid UTF-8 string closes the connection', async (t) => {
    for (const [what, bytes] of Object.entries({ ...ill, 'U+0000': Buffer.from([0x00]) })) {
      const client = await connected(t)
      client.send(rawPacket(0xa2, [0, 1], mqttString(bytes)))
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-3.10.3-2] an UNSUBSCRIBE without topic filters is a protocol violation: the connection closes', async (t) => {
    const client = await connected(t)
    client.send(rawPacket(0xa2, [0, 1]))
    await closedSilently(t, client, 'UNSUBSCRIBE with no payload')
  })

  t.test('[MQTT-3.10.4-1] [MQTT-3.10.4-2] UNSUBSCRIBE deletes only a subscription whose filter is identical, character by character; then no new messages are sent', async (t) => {
    const base = `unsub/${uniqueId()}`
    const client = await connected(t)
    await client.subscribe({ [`${base}/+`]: 1 })
    const publisher = await connected(t)
    await client.unsubscribe([`${base}/a`, `${base.toUpperCase()}/+`, `${base}/#`, `${base}/+/`])
    await publisher.publish(`${base}/a`, 'still subscribed', { qos: 1 })
    t.same((await client.nextMessages(1)).map((m) => m.payload.toString()), ['still subscribed'], 'filters that only match or resemble it deleted nothing')
    await client.unsubscribe([`${base}/+`])
    await publisher.publish(`${base}/a`, 'after', { qos: 1 })
    t.same(await client.messages(300), [], 'the identical filter deleted it: nothing more is sent')
  })

  t.test('[MQTT-3.10.4-3] deliveries of QoS 1 and QoS 2 messages already started complete after UNSUBSCRIBE', async (t) => {
    const topic = `inflight/${uniqueId()}`
    const client = await connected(t)
    await client.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'q1', { qos: 1 })
    await publisher.publish(topic, 'q2', { qos: 2 })
    const [q1, q2] = await client.nextMessages(2, { ack: false })
    await client.unsubscribe([topic])
    client.send({ cmd: 'pubrec', messageId: q2?.messageId as number })
    t.equal((await client.expect('pubrel')).messageId, q2?.messageId, 'the QoS 2 delivery goes on: PUBREL')
    client.send({ cmd: 'pubcomp', messageId: q2?.messageId as number })
    client.send({ cmd: 'puback', messageId: q1?.messageId as number })
    await stillConnected(t, client, 'the QoS 1 delivery is acknowledged')
  })

  t.test('[MQTT-3.10.4-4] an UNSUBSCRIBE is answered with an UNSUBACK with its packet identifier', async (t) => {
    const client = await connected(t)
    await client.subscribe({ 'u/x': 0 })
    client.send({ cmd: 'unsubscribe', messageId: 31337, unsubscriptions: ['u/x'] })
    t.equal((await client.expect('unsuback')).messageId, 31337)
  })

  t.test('[MQTT-3.10.4-5] an UNSUBACK is sent even when no subscription was deleted', async (t) => {
    const client = await connected(t)
    client.send({ cmd: 'unsubscribe', messageId: 12, unsubscriptions: ['never/subscribed'] })
    t.equal((await client.expect('unsuback')).messageId, 12)
  })

  t.test('[MQTT-3.10.4-6] an UNSUBSCRIBE with several filters is handled as several, with a single UNSUBACK', async (t) => {
    const base = `multi-unsub/${uniqueId()}`
    const client = await connected(t)
    await client.subscribe({ [`${base}/a`]: 1, [`${base}/b`]: 1, [`${base}/c`]: 1 })
    client.send({ cmd: 'unsubscribe', messageId: 13, unsubscriptions: [`${base}/a`, `${base}/c`, `${base}/none`] })
    t.equal((await client.expect('unsuback')).messageId, 13)
    const publisher = await connected(t)
    for (const level of ['a', 'b', 'c']) await publisher.publish(`${base}/${level}`, level, { qos: 1 })
    t.same((await client.messages(300)).map((m) => m.payload.toString()), ['b'])
    t.same(await client.drain(100), [], 'no other UNSUBACK')
  })

  t.test('[MQTT-4.7.1-2] the multi-level wildcard is alone in the last level: elsewhere the connection closes; it matches the parent and all children', async (t) => {
    for (const filter of ['a/#/b', 'a#', 'a/b#', '#/a', '##']) {
      const client = await connected(t)
      client.send(rawPacket(0x82, [0, 1], mqttString(filter), [0]))
      await closedSilently(t, client, filter)
    }
    const base = `multi-level/${uniqueId()}`
    const client = await connected(t)
    await client.subscribe({ [`${base}/sport/#`]: 1 })
    const publisher = await connected(t)
    for (const topic of ['sport', 'sport/', 'sport/tennis', 'sport/tennis/player1', 'sports', 'other']) await publisher.publish(`${base}/${topic}`, topic, { qos: 1 })
    t.same((await client.messages(400)).map((m) => m.payload.toString()).sort(), ['sport', 'sport/', 'sport/tennis', 'sport/tennis/player1'])
  })

  t.test('[MQTT-4.7.1-3] the single-level wildcard occupies a whole level: elsewhere the connection closes; it matches one level, an empty one too', async (t) => {
    for (const filter of ['a+', '+a', 'a/b+', 'a/+b/c', '++']) {
      const client = await connected(t)
      client.send(rawPacket(0x82, [0, 1], mqttString(filter), [0]))
      await closedSilently(t, client, filter)
    }
    const base = `single-level/${uniqueId()}`
    const client = await connected(t)
    t.same(await client.subscribe({ [`${base}/+`]: 1, [`${base}/x/+/z`]: 1 }), [1, 1])
    const publisher = await connected(t)
    const topics = ['a', '', 'a/b', 'x/y/z', 'x//z', 'x/y/z/w']
    for (const topic of topics) await publisher.publish(`${base}/${topic}`, topic === '' ? '(empty)' : topic, { qos: 1 })
    await publisher.publish(base, 'parent', { qos: 1 })
    t.same((await client.messages(400)).map((m) => m.payload.toString()).sort(), ['(empty)', 'a', 'x//z', 'x/y/z'])
    // at the first and last level: "+/+" and "/+" match "/finance", "+" does not
    const level = uniqueId()
    const edge = await connected(t)
    await edge.subscribe({ '+/+': 1, '/+': 1, '+': 1 })
    await publisher.publish(`/${level}`, 'slash', { qos: 1 })
    const got = await edge.messages(400)
    t.same(got.filter((m) => m.topic === `/${level}`).length, 1, '"/finance" matched (once: overlapping subscriptions give one copy)')
    t.ok(got.every((m) => m.qos === 1))
  })

  t.test('[MQTT-4.7.2-1] filters starting with a wildcard do not match topic names starting with $', async (t) => {
    const broker = await target.broker(t, { acl: { roles: { anonymous: { pub: ['#'], sub: ['#', '$test/#'] } } } })
    const level = uniqueId()
    await brokerPublish(broker, `$test/${level}`, 'retained', true)
    const wild = await connected(t, {}, broker)
    t.same(await wild.subscribe({ '#': 1, '+/+': 1, [`+/${level}`]: 1 }), [1, 1, 1])
    const dollar = await connected(t, {}, broker)
    t.same(await dollar.subscribe({ '$test/#': 1 }), [1])
    const [retained] = await dollar.nextMessages(1)
    t.equal(retained?.topic, `$test/${level}`, 'a $ filter gets it')
    await brokerPublish(broker, `$test/${level}`, 'live', false)
    t.same((await dollar.nextMessages(1)).map((m) => m.payload.toString()), ['live'])
    const leaked = (await wild.messages(400)).filter((m) => m.topic.startsWith('$'))
    t.same(leaked.map((m) => m.topic), [], 'neither the retained nor the live $ message reached # or +/+')
  })

  t.test('[MQTT-4.7.3-1] an empty topic filter closes the connection', async (t) => {
    for (const [what, bytes] of Object.entries({ SUBSCRIBE: rawPacket(0x82, [0, 1], mqttString(''), [0]), UNSUBSCRIBE: rawPacket(0xa2, [0, 1], mqttString('')) })) {
      const client = await connected(t)
      client.send(bytes)
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-4.7.3-2] a topic filter with U+0000 closes the connection', async (t) => {
    const client = await connected(t)
    client.send(rawPacket(0x82, [0, 1], mqttString(Buffer.from([0x61, 0x2f, 0x00])), [0]))
    await closedSilently(t, client, 'U+0000 in a filter')
  })

  t.test('[MQTT-4.7.3-4] topic names and filters are matched as they are: no normalization', async (t) => {
    const base = `norm/${uniqueId()}`
    const client = await connected(t)
    const nfc = '\u00e9'
    const nfd = 'e\u0301'
    t.same(await client.subscribe({ [`${base}/a/b`]: 1, [`${base}/${nfc}`]: 1, [`${base}/A`]: 1, [`${base}/t`]: 1 }), [1, 1, 1, 1])
    const publisher = await connected(t)
    const topics = ['a//b', 'a/b/', nfd, 'a', 't/', ' t', 't ', 'a/b', nfc, 'A', 't']
    for (const topic of topics) await publisher.publish(`${base}/${topic}`, topic, { qos: 1 })
    t.same((await client.messages(500)).map((m) => m.payload.toString()).sort(), ['A', 'a/b', nfc, 't'].sort())
  })

  t.test('[MQTT-4.7.3-4] characters that are special elsewhere ([ ] * ? \\) match only themselves', async (t) => {
    const base = `chars/${uniqueId()}`
    const publisher = await connected(t)
    for (const [i, level] of ['[x]', '\\', '*', '?', '[^a]', 'a\\b'].entries()) {
      // one filter per group: no other subscription covers the topics of a group
      const client = await connected(t)
      t.same(await client.subscribe({ [`${base}/${i}/${level}/+`]: 1 }), [1])
      const others = ['x', 'a', 'ab', 'b', '']
      for (const topic of [...others.map((o) => `${o}/1`), `${level}/1`]) await publisher.publish(`${base}/${i}/${topic}`, topic, { qos: 1 })
      t.same((await client.messages(150)).map((m) => m.payload.toString()), [`${level}/1`], `filter level ${JSON.stringify(level)}`)
    }
  })
}, { mqemitterRedis: true })
