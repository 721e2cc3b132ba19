// MQTT 3.1.1 conformance, PUBLISH and its acknowledgements (sections 2.3, 3.3-3.7, 4.3, 4.6),
// retained messages and topic names, over raw TCP, against a single node and a cluster node.
import { closedSilently, stillConnected } from './expect.js'
import { encode, mqttString, rawPacket, uniqueId } from './raw-client.js'
import { forEachTarget } from './targets.js'

const ill = {
  'an invalid byte': Buffer.from([0x61, 0xff]),
  'an encoded surrogate U+DFFF': Buffer.from([0x61, 0xed, 0xbf, 0xbf]),
  'an overlong encoding of /': Buffer.from([0x61, 0xc0, 0xaf, 0x62])
}

/** A QoS > 0 PUBLISH by hand: first byte, topic bytes, packet identifier, payload. */
function rawPublish (firstByte: number, topic: Buffer | string, id: number | null, payload = 'x'): Buffer {
  const idBytes = id === null ? [] : [id >> 8, id & 0xff]
  return rawPacket(firstByte, mqttString(topic), idBytes, Buffer.from(payload))
}

forEachTarget((t, { target, connected }) => {
  t.test('[MQTT-2.3.1-1] SUBSCRIBE, UNSUBSCRIBE and PUBLISH (QoS > 0) with packet identifier 0 close the connection', async (t) => {
    const cases: Record<string, Buffer> = {
      'PUBLISH QoS 1': rawPublish(0x32, 'a/b', 0),
      'PUBLISH QoS 2': rawPublish(0x34, 'a/b', 0),
      SUBSCRIBE: rawPacket(0x82, [0, 0], mqttString('a/b'), [1]),
      UNSUBSCRIBE: rawPacket(0xa2, [0, 0], mqttString('a/b'))
    }
    for (const [what, bytes] of Object.entries(cases)) {
      const client = await connected(t)
      client.send(bytes)
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-2.3.1-1] [MQTT-2.3.1-6] a PUBACK, PUBREC, PUBREL or PUBCOMP with packet identifier 0 closes the connection', async (t) => {
    const cases: Record<string, Buffer> = {
      PUBACK: rawPacket(0x40, [0, 0]),
      PUBREC: rawPacket(0x50, [0, 0]),
      PUBREL: rawPacket(0x62, [0, 0]),
      PUBCOMP: rawPacket(0x70, [0, 0])
    }
    for (const [what, bytes] of Object.entries(cases)) {
      const client = await connected(t)
      client.send(bytes)
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-2.3.1-4] the server gives each in-flight QoS > 0 PUBLISH its own non-zero packet identifier', async (t) => {
    const topic = `ids/${uniqueId()}`
    const client = await connected(t)
    await client.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    for (let i = 0; i < 5; i++) await publisher.publish(topic, String(i), { qos: (i % 2 + 1) as 1 | 2 })
    const messages = await client.nextMessages(5, { ack: false })
    const ids = messages.map((m) => m.messageId)
    t.ok(ids.every((id) => typeof id === 'number' && id > 0), 'non-zero')
    t.equal(new Set(ids).size, 5, 'all different while unacknowledged')
  })

  t.test('[MQTT-2.3.1-5] a QoS 0 PUBLISH from the server has no packet identifier', async (t) => {
    const topic = `q0/${uniqueId()}`
    const client = await connected(t)
    await client.subscribe({ [topic]: 0 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'exact payload', { qos: 2 })
    const [message] = await client.nextMessages(1)
    t.equal(message?.qos, 0)
    t.equal(message?.messageId, undefined)
    t.equal(message?.payload.toString(), 'exact payload', 'no identifier bytes before the payload')
  })

  t.test('[MQTT-2.3.1-6] PUBACK, PUBREC and PUBREL carry the packet identifier of the PUBLISH', async (t) => {
    const topic = `acks/${uniqueId()}`
    const client = await connected(t)
    client.send({ cmd: 'publish', topic, payload: 'q1', qos: 1, messageId: 1234, retain: false, dup: false })
    t.equal((await client.expect('puback')).messageId, 1234, 'PUBACK')
    client.send({ cmd: 'publish', topic, payload: 'q2', qos: 2, messageId: 4321, retain: false, dup: false })
    t.equal((await client.expect('pubrec')).messageId, 4321, 'PUBREC')
    client.send({ cmd: 'pubrel', messageId: 4321 })
    t.equal((await client.expect('pubcomp')).messageId, 4321, 'PUBCOMP')
    // the server as sender: its PUBREL has the identifier of its PUBLISH
    await client.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'to you', { qos: 2 })
    const message = await client.expect('publish')
    client.send({ cmd: 'pubrec', messageId: message.messageId as number })
    t.equal((await client.expect('pubrel')).messageId, message.messageId, 'PUBREL')
    client.send({ cmd: 'pubcomp', messageId: message.messageId as number })
  })

  t.test('[MQTT-3.3.1-2] DUP is 0 on QoS 0 messages the server sends; a QoS 0 PUBLISH with DUP 1 closes the connection', async (t) => {
    const topic = `dup0/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 0 })
    const publisher = await connected(t)
    // a QoS 1 retransmission (DUP 1), delivered at QoS 0
    publisher.send({ cmd: 'publish', topic, payload: 'again', qos: 1, messageId: 3, retain: false, dup: true })
    await publisher.expectAck('puback', 3)
    const [message] = await subscriber.nextMessages(1)
    t.equal(message?.qos, 0)
    t.equal(message?.dup, false, 'DUP 0 on a QoS 0 message')
    publisher.send(rawPublish(0x38, topic, null))
    await closedSilently(t, publisher, 'QoS 0 with DUP 1')
  })

  t.test('[MQTT-3.3.1-3] the DUP flag of an incoming PUBLISH is not propagated to subscribers', async (t) => {
    const topic = `dup/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    publisher.send({ cmd: 'publish', topic, payload: 'q1 dup', qos: 1, messageId: 11, retain: false, dup: true })
    await publisher.expectAck('puback', 11)
    publisher.send({ cmd: 'publish', topic, payload: 'q2 dup', qos: 2, messageId: 12, retain: false, dup: true })
    await publisher.expectAck('pubrec', 12)
    publisher.send({ cmd: 'pubrel', messageId: 12 })
    await publisher.expectAck('pubcomp', 12)
    const messages = await subscriber.nextMessages(2)
    t.same(messages.map((m) => [m.payload.toString(), m.dup]), [['q1 dup', false], ['q2 dup', false]], 'a first delivery has DUP 0')
  })

  t.test('[MQTT-3.3.1-4] a PUBLISH with both QoS bits set closes the connection', async (t) => {
    const client = await connected(t)
    client.send(rawPublish(0x36, 'a/b', 1))
    await closedSilently(t, client, 'QoS 3')
  })

  t.test('[MQTT-3.3.1-5] a retained message is stored with its QoS and delivered to future subscribers', async (t) => {
    const topic = `ret/${uniqueId()}`
    const publisher = await connected(t)
    await publisher.publish(topic, 'kept', { qos: 1, retain: true })
    const subscriber = await connected(t)
    t.same(await subscriber.subscribe({ [topic]: 2 }), [2])
    const [message] = await subscriber.nextMessages(1)
    t.equal(message?.payload.toString(), 'kept')
    t.equal(message?.qos, 1, 'with the QoS it was published with')
  })

  t.test('[MQTT-3.3.1-6] a new subscription gets the last retained message of each matching topic', async (t) => {
    const base = `last/${uniqueId()}`
    const publisher = await connected(t)
    await publisher.publish(`${base}/1`, 'first', { qos: 1, retain: true })
    await publisher.publish(`${base}/1`, 'second', { qos: 1, retain: true })
    await publisher.publish(`${base}/2`, 'other', { qos: 1, retain: true })
    await publisher.publish(`${base}/3/deeper`, 'not matching', { qos: 1, retain: true })
    const subscriber = await connected(t)
    await subscriber.subscribe({ [`${base}/+`]: 1 })
    const messages = await subscriber.messages(400)
    t.same(messages.map((m) => `${m.topic.slice(base.length)}=${m.payload.toString()}`).sort(), ['/1=second', '/2=other'])
  })

  t.test('[MQTT-3.3.1-7] a QoS 0 message with RETAIN 1 replaces the retained message', async (t) => {
    const topic = `ret0/${uniqueId()}`
    const publisher = await connected(t)
    await publisher.publish(topic, 'old', { qos: 2, retain: true })
    await publisher.publish(topic, 'new', { qos: 0, retain: true })
    await stillConnected(t, publisher, 'publisher') // the QoS 0 message was processed
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 2 })
    const messages = await subscriber.messages(300)
    t.same(messages.map((m) => [m.payload.toString(), m.qos]), [['new', 0]], 'the old message was discarded; the new one is kept at QoS 0')
  })

  t.test('[MQTT-3.3.1-8] a message sent because of a new subscription has RETAIN 1', async (t) => {
    const topic = `r1/${uniqueId()}`
    const publisher = await connected(t)
    await publisher.publish(topic, 'retained', { qos: 1, retain: true })
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 1 })
    const [message] = await subscriber.nextMessages(1)
    t.equal(message?.retain, true)
  })

  t.test('[MQTT-3.3.1-9] a message sent to an established subscription has RETAIN 0, however it was published', async (t) => {
    const topic = `r0/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 1 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'retained', { qos: 1, retain: true })
    await publisher.publish(topic, 'plain', { qos: 1, retain: false })
    const messages = await subscriber.nextMessages(2)
    t.same(messages.map((m) => [m.payload.toString(), m.retain]), [['retained', false], ['plain', false]])
  })

  t.test('[MQTT-3.3.1-10] a zero-byte retained message is delivered as normal and removes the retained message', async (t) => {
    const topic = `clear/${uniqueId()}`
    const publisher = await connected(t)
    await publisher.publish(topic, 'to be cleared', { qos: 1, retain: true })
    const established = await connected(t)
    await established.subscribe({ [topic]: 1 })
    await established.nextMessages(1)
    await publisher.publish(topic, '', { qos: 1, retain: true })
    const [cleared] = await established.nextMessages(1)
    t.equal(cleared?.payload.length, 0, 'sent to the established subscriber')
    const future = await connected(t)
    await future.subscribe({ [topic]: 1 })
    t.same(await future.messages(300), [], 'future subscribers get no retained message')
  })

  t.test('[MQTT-3.3.1-11] a zero-byte retained message is not stored', async (t) => {
    const topic = `empty/${uniqueId()}`
    const publisher = await connected(t)
    await publisher.publish(topic, '', { qos: 1, retain: true })
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 1 })
    t.same(await subscriber.messages(300), [])
  })

  t.test('[MQTT-3.3.1-12] a PUBLISH with RETAIN 0 neither stores nor replaces the retained message', async (t) => {
    const topic = `keep/${uniqueId()}`
    const publisher = await connected(t)
    await publisher.publish(topic, 'retained', { qos: 1, retain: true })
    await publisher.publish(topic, 'not retained', { qos: 1, retain: false })
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 1 })
    const messages = await subscriber.messages(300)
    t.same(messages.map((m) => m.payload.toString()), ['retained'])
  })

  t.test('[MQTT-3.3.2-1] the topic name is a UTF-8 string: ill-formed UTF-8 or a missing topic closes the connection', async (t) => {
    for (const [what, bytes] of Object.entries(ill)) {
      const client = await connected(t)
      client.send(rawPublish(0x32, bytes, 1))
      await closedSilently(t, client, what)
    }
    const client = await connected(t)
    client.send(rawPacket(0x30, [0]))
    await closedSilently(t, client, 'no topic name')
  })

  t.test('[MQTT-3.3.2-2] a topic name with wildcard characters closes the connection', async (t) => {
    for (const topic of ['#', '+', 'a/#', 'a/+/b', 'a+b', 'a#']) {
      const client = await connected(t)
      client.send(rawPublish(0x32, topic, 1))
      await closedSilently(t, client, topic)
    }
  })

  t.test('[MQTT-3.3.2-3] the topic name sent to a subscriber matches its filter', async (t) => {
    const base = `match/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [`${base}/+/x`]: 1 })
    const publisher = await connected(t)
    for (const topic of [`${base}/1/x`, `${base}/1/y`, `${base}/1/x/z`, `${base}/2/x`]) await publisher.publish(topic, topic, { qos: 1 })
    const messages = await subscriber.messages(300)
    t.same(messages.map((m) => m.topic), [`${base}/1/x`, `${base}/2/x`], 'the topic names, each matching the filter')
  })

  t.test('[MQTT-3.3.4-1] the server answers a PUBLISH as its QoS says: nothing, PUBACK, or PUBREC', async (t) => {
    const topic = `resp/${uniqueId()}`
    const client = await connected(t)
    client.send({ cmd: 'publish', topic, payload: '0', qos: 0, retain: false, dup: false })
    client.send({ cmd: 'pingreq' })
    t.equal((await client.next()).cmd, 'pingresp', 'QoS 0: no acknowledgement')
    client.send({ cmd: 'publish', topic, payload: '1', qos: 1, messageId: 21, retain: false, dup: false })
    t.equal((await client.next()).cmd, 'puback', 'QoS 1: PUBACK')
    client.send({ cmd: 'publish', topic, payload: '2', qos: 2, messageId: 22, retain: false, dup: false })
    t.equal((await client.next()).cmd, 'pubrec', 'QoS 2: PUBREC')
  })

  t.test('[MQTT-3.3.5-1] overlapping subscriptions: the message is delivered at the maximum QoS of the matching ones', async (t) => {
    const base = `overlap/${uniqueId()}`
    const subscriber = await connected(t)
    t.same(await subscriber.subscribe({ [`${base}/#`]: 0, [`${base}/+/x`]: 2, [`${base}/a/x`]: 1 }), [0, 2, 1])
    const publisher = await connected(t)
    await publisher.publish(`${base}/a/x`, 'all three match', { qos: 2 })
    await publisher.publish(`${base}/b/x`, 'two match', { qos: 1 })
    await publisher.publish(`${base}/a/y`, 'one matches', { qos: 2 })
    const messages = await subscriber.messages(400)
    const byPayload = new Map<string, number[]>()
    for (const m of messages) byPayload.set(m.payload.toString(), [...byPayload.get(m.payload.toString()) ?? [], m.qos])
    t.same(byPayload.get('all three match')?.[0], 2, 'max of 0, 2, 1')
    t.same(byPayload.get('two match')?.[0], 1, 'min(published 1, max of 0 and 2)')
    t.same(byPayload.get('one matches')?.[0], 0, 'only the QoS 0 subscription')
    // the other way round: the broad filter has the higher QoS
    const other = await connected(t)
    await other.subscribe({ [`${base}/a/x`]: 0, [`${base}/#`]: 1 })
    await publisher.publish(`${base}/a/x`, 'broad wins', { qos: 2 })
    const [first] = await other.nextMessages(1)
    t.equal(first?.qos, 1)
  })

  t.test('[MQTT-3.3.5-2] a PUBLISH the client is not authorized to make is acknowledged or closes the connection', async (t) => {
    const roles = { anonymous: { pub: ['open/#'], sub: ['#'] } }
    for (const onPublishDenied of ['drop', 'disconnect'] as const) {
      const broker = await target.broker(t, { acl: { roles, onPublishDenied } })
      const subscriber = await connected(t, {}, broker)
      await subscriber.subscribe({ 'closed/#': 1 })
      const client = await connected(t, {}, broker)
      client.send({ cmd: 'publish', topic: 'closed/x', payload: 'no', qos: 1, messageId: 5, retain: false, dup: false })
      if (onPublishDenied === 'drop') {
        t.equal((await client.expect('puback')).messageId, 5, 'drop: a positive acknowledgement')
      } else {
        await closedSilently(t, client, 'disconnect: the connection is closed')
      }
      t.same(await subscriber.messages(200), [], `${onPublishDenied}: not delivered`)
    }
  })

  t.test('[MQTT-3.6.1-1] a PUBREL with fixed-header flags other than 0010 closes the connection', async (t) => {
    const client = await connected(t)
    client.send({ cmd: 'publish', topic: 'rel/x', payload: 'x', qos: 2, messageId: 8, retain: false, dup: false })
    await client.expect('pubrec')
    client.send(rawPacket(0x60, [0, 8]))
    await closedSilently(t, client, 'PUBREL 0x60')
  })

  t.test('[MQTT-4.3.1-1] QoS 0 delivery: the server sends PUBLISH with QoS 0 and DUP 0', async (t) => {
    const topic = `qos0/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 0 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'x', { qos: 0 })
    const [message] = await subscriber.nextMessages(1)
    t.match(message, { qos: 0, dup: false })
  })

  t.test('[MQTT-4.3.2-1] QoS 1 delivery: PUBLISH with a fresh packet identifier, QoS 1, DUP 0, unacknowledged until PUBACK', async (t) => {
    const topic = `qos1/${uniqueId()}`
    const clientId = uniqueId('q1')
    const subscriber = await connected(t, { clientId, clean: false })
    await subscriber.subscribe({ [topic]: 1 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'a', { qos: 1 })
    await publisher.publish(topic, 'b', { qos: 1 })
    const [a, b] = await subscriber.nextMessages(2, { ack: false })
    t.match(a, { qos: 1, dup: false })
    t.not(a?.messageId, b?.messageId, 'a new identifier for each message')
    subscriber.send({ cmd: 'puback', messageId: a?.messageId as number })
    await stillConnected(t, subscriber, 'after the PUBACK')
    subscriber.destroy()
    // b was never acknowledged: it is sent again on reconnect, a is not
    const again = await connected(t, { clientId, clean: false })
    const resent = await again.messages(300)
    t.same(resent.map((m) => [m.payload.toString(), m.messageId]), [['b', b?.messageId]])
  })

  t.test('[MQTT-4.3.2-2] QoS 1 reception: PUBACK with the packet identifier; the same identifier afterwards is a new message', async (t) => {
    const topic = `rx1/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 1 })
    const publisher = await connected(t)
    for (const dup of [false, true]) {
      publisher.send({ cmd: 'publish', topic, payload: `dup ${String(dup)}`, qos: 1, messageId: 77, retain: false, dup })
      await publisher.expectAck('puback', 77)
    }
    const messages = await subscriber.nextMessages(2)
    t.same(messages.map((m) => m.payload.toString()), ['dup false', 'dup true'], 'both delivered, DUP notwithstanding')
  })

  t.test('[MQTT-4.3.3-1] QoS 2 delivery: PUBREL after PUBREC with the same identifier, never the PUBLISH again after it', async (t) => {
    const topic = `qos2/${uniqueId()}`
    const clientId = uniqueId('q2')
    const subscriber = await connected(t, { clientId, clean: false })
    await subscriber.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'once', { qos: 2 })
    const message = await subscriber.expect('publish')
    t.match(message, { qos: 2, dup: false })
    subscriber.send({ cmd: 'pubrec', messageId: message.messageId as number })
    t.equal((await subscriber.expect('pubrel')).messageId, message.messageId, 'PUBREL with the same identifier')
    subscriber.destroy() // no PUBCOMP
    const again = await connected(t, { clientId, clean: false })
    const resent = await again.drain(300)
    t.same(resent.map((p) => [p.cmd, p.messageId]), [['pubrel', message.messageId]], 'the PUBREL is re-sent, not the PUBLISH')
    again.send({ cmd: 'pubcomp', messageId: message.messageId as number })
    await stillConnected(t, again, 'after PUBCOMP')
  })

  t.test('[MQTT-4.3.3-2] QoS 2 reception: PUBREC; duplicates before PUBREL acknowledged, not delivered again; PUBCOMP; then the identifier is new', async (t) => {
    const topic = `rx2/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    publisher.send({ cmd: 'publish', topic, payload: 'first', qos: 2, messageId: 99, retain: false, dup: false })
    await publisher.expectAck('pubrec', 99)
    publisher.send({ cmd: 'publish', topic, payload: 'first', qos: 2, messageId: 99, retain: false, dup: true })
    await publisher.expectAck('pubrec', 99)
    publisher.send({ cmd: 'pubrel', messageId: 99 })
    await publisher.expectAck('pubcomp', 99)
    publisher.send({ cmd: 'publish', topic, payload: 'second', qos: 2, messageId: 99, retain: false, dup: false })
    await publisher.expectAck('pubrec', 99)
    publisher.send({ cmd: 'pubrel', messageId: 99 })
    await publisher.expectAck('pubcomp', 99)
    const messages = await subscriber.messages(400)
    t.same(messages.map((m) => m.payload.toString()), ['first', 'second'])
  })

  t.test('[MQTT-4.6.0-5] [MQTT-4.6.0-6] every topic is ordered: messages reach subscribers in the order they were received', async (t) => {
    const topic = `order/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    for (const qos of [0, 1, 2] as const) {
      // pipelined: every PUBLISH sent before any acknowledgement
      for (let i = 0; i < 30; i++) publisher.send({ cmd: 'publish', topic, payload: `${qos}:${i}`, qos, retain: false, dup: false, ...(qos > 0 ? { messageId: 1000 * qos + i + 1 } : {}) })
      const received = await subscriber.nextMessages(30)
      t.same(received.map((m) => m.payload.toString()), Array.from({ length: 30 }, (_, i) => `${qos}:${i}`), `QoS ${qos} in order`)
    }
  })

  t.test('[MQTT-4.8.0-2] a transient error while processing a PUBLISH closes the connection', async (t) => {
    const broker = await target.broker(t)
    const { persistence } = broker.aedes as unknown as { persistence: { incomingStorePacket: (...args: unknown[]) => Promise<void> } }
    persistence.incomingStorePacket = async () => { throw new Error('storage unavailable') }
    const client = await connected(t, {}, broker)
    client.send({ cmd: 'publish', topic: 'transient/x', payload: 'x', qos: 2, messageId: 1, retain: false, dup: false })
    await closedSilently(t, client, 'storage failed: no PUBREC')
  })

  t.test('[MQTT-4.8.0-1] a PUBLISH or acknowledgement whose length does not match its fields closes the connection', async (t) => {
    const cases: Record<string, Buffer> = {
      'PUBLISH QoS 1 without room for its identifier': rawPacket(0x32, mqttString('a/b'), [0]),
      'PUBLISH with a topic longer than the packet': rawPacket(0x30, [0, 50], Buffer.from('a/b')),
      'PUBLISH with a one-byte body': rawPacket(0x30, [0]),
      'PUBACK with 3 bytes': rawPacket(0x40, [0, 1, 0]),
      'PUBREC with 1 byte': rawPacket(0x50, [1]),
      'PUBCOMP with no identifier': rawPacket(0x70),
      'PINGREQ with a body': rawPacket(0xc0, [0]),
      'DISCONNECT with a body': rawPacket(0xe0, [0])
    }
    for (const [what, bytes] of Object.entries(cases)) {
      const client = await connected(t)
      client.send(bytes)
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-1.5.3-1] ill-formed UTF-8 in a topic name closes the connection', async (t) => {
    for (const [what, bytes] of Object.entries(ill)) {
      const client = await connected(t)
      client.send(rawPublish(0x30, bytes, null))
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-1.5.3-2] [MQTT-4.7.3-2] U+0000 in a topic name closes the connection', async (t) => {
    const client = await connected(t)
    client.send(rawPublish(0x30, Buffer.from([0x61, 0x00]), null))
    await closedSilently(t, client, 'U+0000')
  })

  t.test('[MQTT-1.5.3-3] U+FEFF (0xEF 0xBB 0xBF) is kept in topic names, never stripped', async (t) => {
    const id = uniqueId()
    const subscriber = await connected(t)
    await subscriber.subscribe({ [`\uFEFFbom/${id}`]: 1, [`bom/${id}`]: 1 })
    const publisher = await connected(t)
    await publisher.publish(`\uFEFFbom/${id}`, 'with BOM', { qos: 1 })
    const [message] = await subscriber.nextMessages(1)
    t.equal(message?.topic, `\uFEFFbom/${id}`, 'delivered with the BOM in its topic name')
    t.same(await subscriber.messages(200), [], 'and not to the filter without it')
  })

  t.test('[MQTT-4.7.3-1] an empty topic name closes the connection', async (t) => {
    const client = await connected(t)
    client.send(rawPublish(0x32, '', 1))
    await closedSilently(t, client, 'empty topic name')
  })

  t.test('[MQTT-4.7.3-3] a topic name of 65,535 bytes, the most its length prefix can say, is handled', async (t) => {
    const broker = await target.broker(t, { limits: { maxTopicLength: 65535 } })
    const topic = 'l/' + 'x'.repeat(65533)
    const subscriber = await connected(t, {}, broker)
    t.same(await subscriber.subscribe({ 'l/#': 1 }), [1])
    const publisher = await connected(t, {}, broker)
    await publisher.publish(topic, 'long', { qos: 1 })
    const [message] = await subscriber.nextMessages(1)
    t.equal(message?.topic.length, 65535)
  })

  t.test('[MQTT-4.7.1-1] wildcards are never used within a topic name (PUBLISH closes)', async (t) => {
    for (const topic of ['sport/+', 'sport/#']) {
      const client = await connected(t)
      client.send(encode({ cmd: 'publish', topic, payload: 'x', qos: 0, retain: false, dup: false }))
      await closedSilently(t, client, topic)
    }
  })
})
