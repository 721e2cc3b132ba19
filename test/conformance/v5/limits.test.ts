// MQTT 5.0 conformance, the client's limits on what the broker sends (3.1.2.11: Maximum Packet
// Size, Receive Maximum; 4.9 flow control) and the optional properties that must not push a
// packet over the client's Maximum Packet Size. Raw MQTT 5.0 over TCP, against a single node and
// a cluster node.
import jwt from 'jsonwebtoken'
import type { Packet } from 'mqtt-packet'
import { encode, uniqueId } from '../raw-client.js'
import { forEachTarget } from '../targets.js'

const secret = 'conformance-v5-limits-0123456789abcdef'

/** The size of `packet` on the wire, as the broker sent it. */
const wireSize = (packet: Packet): number => encode(packet, 5).length

forEachTarget((t, { target, raw, connected }) => {
  t.test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a message larger than the client\'s Maximum Packet Size is not sent to it, as if it had been; the next one is', async (t) => {
    const topic = `mps/${uniqueId()}`
    const client = await connected(t, { properties: { maximumPacketSize: 256 } })
    await client.subscribe({ [topic]: 1 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'x'.repeat(1000), { qos: 1 })
    await publisher.publish(topic, 'small', { qos: 1 })
    t.same((await client.messages(500)).map((m) => m.payload.toString()), ['small'], 'only the message that fits')
  })

  t.test('[MQTT-3.3.4-9] [MQTT-4.9.0-1] [MQTT-4.9.0-2] the broker has at most the client\'s Receive Maximum QoS 1 and 2 PUBLISHes unacknowledged in flight to it', async (t) => {
    const topic = `rm/${uniqueId()}`
    const client = await connected(t, { properties: { receiveMaximum: 2 } })
    await client.subscribe({ [topic]: 1 })
    const publisher = await connected(t)
    for (let i = 0; i < 5; i++) await publisher.publish(topic, `m${i}`, { qos: 1 })
    const first = await client.messages(400, { ack: false })
    t.equal(first.length, 2, 'two in flight')
    for (const m of first) client.send({ cmd: 'puback', messageId: m.messageId as number })
    t.equal((await client.messages(400, { ack: false })).length, 2, 'two more once acknowledged')
  })

  t.test('[MQTT-3.3.4-10] [MQTT-4.9.0-3] with PUBLISHes unacknowledged, other packets are answered without delay', async (t) => {
    const topic = `quota/${uniqueId()}`
    const client = await connected(t, { properties: { receiveMaximum: 1 } })
    await client.subscribe({ [topic]: 1 })
    const publisher = await connected(t)
    for (let i = 0; i < 3; i++) await publisher.publish(topic, `m${i}`, { qos: 1 })
    const unacknowledged = await client.messages(300, { ack: false })
    t.ok(unacknowledged.length >= 1, `${unacknowledged.length} unacknowledged`)
    client.send({ cmd: 'pingreq' })
    t.equal((await client.expect('pingresp')).cmd, 'pingresp', 'PINGRESP')
    t.same((await client.subscribeWith([{ topic: `${topic}/other`, qos: 0 }])).granted, [0], 'SUBACK')
  })

  t.test('[MQTT-3.2.2-19] [MQTT-3.2.2-20] [MQTT-3.6.2-2] [MQTT-3.6.2-3] [MQTT-3.7.2-2] [MQTT-3.7.2-3] [MQTT-3.9.2-1] [MQTT-3.9.2-2] [MQTT-3.11.2-1] [MQTT-3.11.2-2] [MQTT-3.14.2-3] [MQTT-3.14.2-4] no Reason String or User Property pushes a CONNACK, PUBREL, PUBCOMP, SUBACK, UNSUBACK or DISCONNECT over the client\'s Maximum Packet Size', async (t) => {
    const limit = 24
    const clientId = uniqueId('tight')
    const client = await raw(t)
    const seen: Packet[] = [await client.connect({ clientId, properties: { maximumPacketSize: limit } })]
    const topic = `tight/${uniqueId()}`
    seen.push(await client.subscribeWith([{ topic, qos: 2 }, { topic: '$share/g/x', qos: 1 }]))
    client.send({ cmd: 'publish', topic: `x${uniqueId()}`, payload: 'p', qos: 2, retain: false, dup: false, messageId: 3 })
    await client.expect('pubrec')
    client.send({ cmd: 'pubrel', messageId: 3 })
    seen.push(await client.expect('pubcomp'))
    const publisher = await connected(t)
    await publisher.publish(topic, 'p', { qos: 2 })
    const message = await client.expect('publish')
    client.send({ cmd: 'pubrec', messageId: message.messageId as number })
    seen.push(await client.expect('pubrel'))
    client.send({ cmd: 'pubcomp', messageId: message.messageId as number })
    client.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['never/subscribed'] })
    seen.push(await client.expect('unsuback'))
    await connected(t, { clientId })
    seen.push(await client.expect('disconnect'))
    t.same(seen.map((p) => p.cmd), ['connack', 'suback', 'pubcomp', 'pubrel', 'unsuback', 'disconnect'])
    for (const packet of seen) t.ok(wireSize(packet) <= limit, `${packet.cmd}: ${wireSize(packet)} bytes, at most ${limit}`)
  })

  t.test('[MQTT-3.4.2-2] [MQTT-3.4.2-3] [MQTT-3.5.2-2] [MQTT-3.5.2-3] no Reason String or User Property pushes a PUBACK or PUBREC over the client\'s Maximum Packet Size', async (t) => {
    const limit = 24
    const client = await connected(t, { properties: { maximumPacketSize: limit } })
    client.send({ cmd: 'publish', topic: '$forged/1', payload: 'p', qos: 1, retain: false, dup: false, messageId: 1 })
    const puback = await client.expect('puback')
    client.send({ cmd: 'publish', topic: '$forged/2', payload: 'p', qos: 2, retain: false, dup: false, messageId: 2 })
    const pubrec = await client.expect('pubrec')
    for (const packet of [puback, pubrec]) t.ok(wireSize(packet) <= limit, `${packet.cmd} 0x${(packet.reasonCode ?? 0).toString(16)}: ${wireSize(packet)} bytes, at most ${limit}`)
  })

  t.test('[MQTT-3.15.2-2] [MQTT-3.15.2-3] no Reason String or User Property pushes an AUTH over the client\'s Maximum Packet Size', async (t) => {
    const withJwt = await target.broker(t, { auth: { anonymous: false, jwt: { secret } } })
    const user = uniqueId('user')
    const token = (): string => jwt.sign({ sub: user }, secret, { expiresIn: 600 })
    const limit = 24
    const client = await raw(t, withJwt)
    await client.connect({ properties: { maximumPacketSize: limit, authenticationMethod: 'JWT', authenticationData: Buffer.from(token()) } })
    client.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'JWT', authenticationData: Buffer.from(token()) } })
    const auth = await client.expect('auth')
    t.ok(wireSize(auth) <= limit, `AUTH: ${wireSize(auth)} bytes, at most ${limit}`)
  })
}, { level: 5 })
