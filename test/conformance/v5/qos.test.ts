// MQTT 5.0 conformance, the QoS protocols both ways (sections 4.3 to 4.6) with their v5 reason
// codes (3.4 to 3.7): raw MQTT 5.0 over TCP, against a single node and a cluster node.
import type { IPublishPacket } from 'mqtt-packet'
import { uniqueId, type RawClient } from '../raw-client.js'
import type { Teardown } from '../../helpers/loopback.js'
import { forEachTarget } from '../targets.js'

const pubackCodes = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
const pubrelCodes = [0x00, 0x92]

forEachTarget((t, { raw, connected }) => {
  /** A persistent subscriber holding a QoS 1 and a QoS 2 message it has not acknowledged. */
  async function unacknowledgedPair (t: Teardown, name: string): Promise<{ session: { clientId: string, clean: false, properties: { sessionExpiryInterval: number } }, subscriber: RawClient, one: IPublishPacket, two: IPublishPacket }> {
    const base = `${name}/${uniqueId()}`
    const session = { clientId: uniqueId(name), clean: false as const, properties: { sessionExpiryInterval: 60 } }
    const subscriber = await connected(t, session)
    await subscriber.subscribe({ [`${base}/+`]: 2 })
    const publisher = await connected(t)
    await publisher.publish(`${base}/one`, 'one', { qos: 1 })
    await publisher.publish(`${base}/two`, 'two', { qos: 2 })
    const [one, two] = await subscriber.nextMessages(2, { ack: false }) as [IPublishPacket, IPublishPacket]
    return { session, subscriber, one, two }
  }

  t.test('[MQTT-2.2.1-2] [MQTT-2.2.1-4] [MQTT-3.3.1-2] [MQTT-4.3.1-1] [MQTT-4.3.2-1] [MQTT-4.3.2-2] [MQTT-4.3.3-1] [MQTT-4.3.3-2] [MQTT-4.5.0-1] the broker sends QoS 0 without a Packet Identifier and DUP 0, QoS 1 and 2 each with its own unused non-zero identifier and DUP 0', async (t) => {
    const topic = `send/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    for (const qos of [0, 1, 1, 2, 2] as const) await publisher.publish(topic, `q${qos}`, { qos })
    const received = await subscriber.nextMessages(5, { ack: false })
    const zero = received.filter((m) => m.qos === 0)
    t.equal(zero.length, 1, 'one QoS 0')
    t.ok(zero.every((m) => m.messageId === undefined && !m.dup), 'QoS 0: no identifier, DUP 0')
    const inFlight = received.filter((m) => m.qos > 0)
    const ids = inFlight.map((m) => m.messageId)
    t.ok(ids.every((id) => typeof id === 'number' && id > 0), `non-zero identifiers ${ids.join(', ')}`)
    t.equal(new Set(ids).size, ids.length, 'each in-flight message its own identifier')
    t.ok(inFlight.every((m) => !m.dup), 'DUP 0 on the first delivery')
  })

  t.test('[MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-3.3.1-3] [MQTT-4.3.2-3] [MQTT-4.3.3-3] [MQTT-4.3.3-4] [MQTT-4.3.3-5] [MQTT-4.3.3-6] [MQTT-2.2.1-5] unacknowledged PUBLISH and PUBREL packets are re-sent on reconnect with Clean Start 0, with their identifiers, the PUBLISH with DUP 1; never the PUBLISH after its PUBREL', async (t) => {
    const { session, subscriber, one, two } = await unacknowledgedPair(t, 'resend')
    subscriber.send({ cmd: 'pubrec', messageId: two.messageId as number })
    const pubrel = await subscriber.expect('pubrel')
    t.equal(pubrel.messageId, two.messageId, 'PUBREL with the identifier of the PUBLISH after PUBREC')
    t.ok(pubrelCodes.includes(pubrel.reasonCode ?? 0), 'PUBREL reason code is one of its codes')
    t.same(await subscriber.drain(300), [], 'nothing re-sent while connected')
    subscriber.destroy()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const resumed = await raw(t)
    t.equal((await resumed.connect(session)).sessionPresent, true)
    const again = await resumed.drain(500)
    const publishes = again.filter((p): p is IPublishPacket => p.cmd === 'publish')
    t.same(publishes.map((p) => [p.messageId, p.dup, p.payload.toString()]), [[one.messageId, true, 'one']], 'the unacknowledged QoS 1 PUBLISH, same identifier, DUP 1')
    t.same(again.filter((p) => p.cmd === 'pubrel').map((p) => p.messageId), [two.messageId], 'the PUBREL, not the QoS 2 PUBLISH')
    resumed.send({ cmd: 'puback', messageId: one.messageId as number })
    resumed.send({ cmd: 'pubcomp', messageId: two.messageId as number })
    t.same(await resumed.drain(300), [], 'acknowledged: nothing more')
  })

  t.test('[MQTT-4.4.0-2] a PUBLISH the client answered with PUBACK or PUBREC of 0x80 or more is acknowledged: not re-sent on reconnect', async (t) => {
    const { session, subscriber, one, two } = await unacknowledgedPair(t, 'refusing')
    subscriber.send({ cmd: 'puback', messageId: one.messageId as number, reasonCode: 0x80 })
    subscriber.send({ cmd: 'pubrec', messageId: two.messageId as number, reasonCode: 0x80 })
    t.same((await subscriber.drain(300)).map((p) => p.cmd), [], 'no PUBREL after a failing PUBREC')
    subscriber.destroy()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const resumed = await raw(t)
    await resumed.connect(session)
    t.same((await resumed.drain(500)).map((p) => p.cmd), [], 'nothing re-sent')
  })

  t.test('[MQTT-3.3.4-1] [MQTT-4.3.2-4] [MQTT-4.3.2-5] [MQTT-3.4.2-1] QoS 1 reception: PUBACK with the identifier and a PUBACK reason code; the identifier afterwards is a new message, whatever its DUP', async (t) => {
    const topic = `recv1/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 1 })
    const client = await connected(t)
    for (const dup of [false, true]) {
      client.send({ cmd: 'publish', topic, payload: `dup ${String(dup)}`, qos: 1, retain: false, dup, messageId: 42 })
      const puback = await client.expect('puback')
      t.equal(puback.messageId, 42, 'PUBACK with the identifier')
      t.ok(pubackCodes.includes(puback.reasonCode ?? 0), `reason code 0x${(puback.reasonCode ?? 0).toString(16)}`)
    }
    t.same((await subscriber.nextMessages(2)).map((m) => m.payload.toString()), ['dup false', 'dup true'], 'both delivered')
  })

  t.test('[MQTT-4.3.3-8] [MQTT-4.3.3-10] [MQTT-4.3.3-11] [MQTT-4.3.3-12] [MQTT-3.5.2-1] [MQTT-3.7.2-1] QoS 2 reception: PUBREC; a duplicate before PUBREL acknowledged, not delivered again; PUBCOMP with the identifier; then the identifier is new', async (t) => {
    const topic = `recv2/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 2 })
    const client = await connected(t)
    for (const round of ['first', 'second']) {
      client.send({ cmd: 'publish', topic, payload: round, qos: 2, retain: false, dup: false, messageId: 9 })
      const pubrec = await client.expect('pubrec')
      t.equal(pubrec.messageId, 9, `${round}: PUBREC with the identifier`)
      t.ok(pubackCodes.includes(pubrec.reasonCode ?? 0), `${round}: a PUBREC reason code`)
      client.send({ cmd: 'publish', topic, payload: round, qos: 2, retain: false, dup: true, messageId: 9 })
      t.equal((await client.expect('pubrec')).messageId, 9, `${round}: the duplicate gets PUBREC`)
      client.send({ cmd: 'pubrel', messageId: 9 })
      const pubcomp = await client.expect('pubcomp')
      t.equal(pubcomp.messageId, 9, `${round}: PUBCOMP with the identifier`)
      t.ok(pubrelCodes.includes(pubcomp.reasonCode ?? 0), `${round}: a PUBCOMP reason code`)
    }
    t.same((await subscriber.messages(400)).map((m) => m.payload.toString()), ['first', 'second'], 'each delivered once; the reused identifier was a new message')
  })

  t.test('[MQTT-4.3.3-9] after a PUBREC of 0x80 or more the identifier is a new message', async (t) => {
    const topic = `recv2refused/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 2 })
    const client = await connected(t)
    client.send({ cmd: 'publish', topic: '$forged/qos2', payload: 'refused', qos: 2, retain: false, dup: false, messageId: 11 })
    t.equal((await client.expect('pubrec')).reasonCode, 0x87, 'a $ topic: PUBREC 0x87')
    client.send({ cmd: 'publish', topic, payload: 'new', qos: 2, retain: false, dup: false, messageId: 11 })
    t.ok(((await client.expect('pubrec')).reasonCode ?? 0) < 0x80, 'the same identifier: a new message, accepted')
    client.send({ cmd: 'pubrel', messageId: 11 })
    await client.expect('pubcomp')
    t.same((await subscriber.nextMessages(1)).map((m) => m.payload.toString()), ['new'])
  })

  t.test('[MQTT-4.3.3-13] the QoS 2 acknowledgement sequence goes on for a message whose expiry passed', async (t) => {
    const client = await connected(t)
    client.send({ cmd: 'publish', topic: `expiring/${uniqueId()}`, payload: 'p', qos: 2, retain: false, dup: false, messageId: 3, properties: { messageExpiryInterval: 1 } })
    await client.expect('pubrec')
    await new Promise((resolve) => setTimeout(resolve, 1300))
    client.send({ cmd: 'pubrel', messageId: 3 })
    t.equal((await client.expect('pubcomp')).messageId, 3, 'PUBCOMP')
  })

  t.test('[MQTT-4.6.0-5] [MQTT-4.6.0-6] every topic is ordered: messages reach each subscriber in the order received, per QoS', async (t) => {
    const topic = `order/${uniqueId()}`
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    for (const qos of [0, 1, 2] as const) {
      for (let i = 0; i < 20; i++) publisher.send({ cmd: 'publish', topic, payload: `${qos}-${i}`, qos, retain: false, dup: false, ...(qos > 0 ? { messageId: qos * 100 + i + 1 } : {}) })
    }
    const received = await subscriber.nextMessages(60, { ms: 5000 })
    for (const qos of [0, 1, 2]) {
      const payloads = received.filter((m) => m.payload.toString().startsWith(`${qos}-`)).map((m) => m.payload.toString())
      t.same(payloads, Array.from({ length: 20 }, (_, i) => `${qos}-${i}`), `QoS ${qos}: in order`)
    }
  })
}, { level: 5 })
