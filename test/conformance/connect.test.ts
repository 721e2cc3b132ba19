// MQTT 3.1.1 conformance, section 3.1-3.2 (CONNECT, CONNACK), fixed headers and UTF-8 strings
// in CONNECT, over raw TCP, against a single node and a cluster node.
import { startBroker } from '../helpers/broker.js'
import { closedSilently, refusedWith, stillConnected } from './expect.js'
import { connectPacket, encode, mqttString, rawConnect, rawPacket, uniqueId } from './raw-client.js'
import { forEachTarget } from './targets.js'

const ill = {
  'an invalid byte': Buffer.from([0x61, 0xff, 0x62]),
  'a truncated sequence': Buffer.from([0x61, 0xc3]),
  'an encoded surrogate U+D800': Buffer.from([0x61, 0xed, 0xa0, 0x80]),
  'an overlong encoding': Buffer.from([0xc0, 0xaf])
}
const nul = Buffer.from([0x61, 0x00, 0x62])

forEachTarget((t, { target, broker, raw, connected }) => {
  t.test('[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection', async (t) => {
    const first = {
      PINGREQ: encode({ cmd: 'pingreq' }),
      PUBLISH: encode({ cmd: 'publish', topic: 'a', payload: 'x', qos: 0, retain: false, dup: false }),
      SUBSCRIBE: encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }] }),
      DISCONNECT: encode({ cmd: 'disconnect' })
    }
    for (const [name, bytes] of Object.entries(first)) {
      const client = await raw(t)
      client.send(bytes)
      await closedSilently(t, client, name)
    }
  })

  t.test('[MQTT-3.1.0-2] a second CONNECT is a protocol violation: the client is disconnected', async (t) => {
    const client = await connected(t)
    client.send(connectPacket())
    await closedSilently(t, client, 'second CONNECT')
  })

  t.test('[MQTT-3.1.2-1] an incorrect protocol name closes the connection without CONNACK', async (t) => {
    for (const protocolName of ['MQTX', 'mqtt', 'MQTT ', '']) {
      const client = await raw(t)
      client.send(rawConnect({ protocolName }))
      await closedSilently(t, client, JSON.stringify(protocolName))
    }
  })

  t.test('[MQTT-3.1.2-2] an unsupported protocol level gets CONNACK 0x01, then disconnect', async (t) => {
    const cases: Array<[string, number]> = [['MQTT', 3], ['MQTT', 6], ['MQTT', 0], ['MQTT', 255], ['MQIsdp', 4], ['MQIsdp', 5]]
    for (const [protocolName, level] of cases) {
      const client = await raw(t)
      client.send(rawConnect({ protocolName, level }))
      await refusedWith(t, client, 1, `${protocolName} level ${level}`)
    }
  })

  t.test('[MQTT-3.1.2-3] a CONNECT with the reserved flag set closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0x03 }))
    await closedSilently(t, client, 'reserved flag 1')
  })

  t.test('[MQTT-3.1.2-9] Will Flag 1 without Will Topic and Will Message closes the connection', async (t) => {
    const id = mqttString(uniqueId())
    for (const [what, payload] of [['no will fields', [id]], ['no will message', [id, mqttString('w/t')]]] as const) {
      const client = await raw(t)
      client.send(rawConnect({ flags: 0x06, payload: [...payload] }))
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-3.1.2-11] Will Flag 0 with Will QoS, Will Retain or will fields present closes the connection', async (t) => {
    const id = mqttString(uniqueId())
    const cases: Array<[string, number, Buffer[]]> = [
      ['Will QoS 1', 0x0a, [id]],
      ['Will Retain', 0x22, [id]],
      ['Will Topic and Will Message present', 0x02, [id, mqttString('w/t'), mqttString('bye')]]
    ]
    for (const [what, flags, payload] of cases) {
      const client = await raw(t)
      client.send(rawConnect({ flags, payload }))
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-3.1.2-13] Will Flag 0 with Will QoS other than 0 closes the connection', async (t) => {
    for (const flags of [0x0a, 0x12]) {
      const client = await raw(t)
      client.send(rawConnect({ flags }))
      await closedSilently(t, client, `flags 0x${flags.toString(16)}`)
    }
  })

  t.test('[MQTT-3.1.2-14] Will QoS 3 closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0x1e, payload: [mqttString(uniqueId()), mqttString('w/t'), mqttString('bye')] }))
    await closedSilently(t, client, 'Will QoS 3')
  })

  t.test('[MQTT-3.1.2-15] Will Flag 0 with Will Retain 1 closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0x22 }))
    await closedSilently(t, client, 'Will Retain without Will Flag')
  })

  t.test('[MQTT-3.1.2-18] a user name present with User Name Flag 0 closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0x02, payload: [mqttString(uniqueId()), mqttString('alice')] }))
    await closedSilently(t, client, 'unannounced user name')
  })

  t.test('[MQTT-3.1.2-19] User Name Flag 1 without a user name closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0x82, payload: [mqttString(uniqueId())] }))
    await closedSilently(t, client, 'missing user name')
  })

  t.test('[MQTT-3.1.2-20] a password present with Password Flag 0 closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0x82, payload: [mqttString(uniqueId()), mqttString('alice'), mqttString('secret')] }))
    await closedSilently(t, client, 'unannounced password')
  })

  t.test('[MQTT-3.1.2-21] Password Flag 1 without a password closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0xc2, payload: [mqttString(uniqueId()), mqttString('alice')] }))
    await closedSilently(t, client, 'missing password')
  })

  t.test('[MQTT-3.1.2-22] Password Flag 1 with User Name Flag 0 closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0x42, payload: [mqttString(uniqueId()), mqttString('secret')] }))
    await closedSilently(t, client, 'password without user name')
  })

  t.test('[MQTT-3.1.3-1] the payload is read in the order Client Identifier, Will Topic, Will Message, User Name, Password', async (t) => {
    const topic = `order/${uniqueId()}`
    const watcher = await connected(t)
    await watcher.subscribe({ [topic]: 0 })
    const client = await raw(t)
    // every field present: a misread order would take the user name for the will topic
    const connack = await client.connect({ will: { topic, payload: Buffer.from('will message'), qos: 0, retain: false }, username: 'user-name', password: Buffer.from('password') })
    t.equal(connack.returnCode, 0)
    client.destroy()
    const [will] = await watcher.nextMessages(1)
    t.equal(will?.topic, topic, 'the will topic is the second field')
    t.equal(will?.payload.toString(), 'will message', 'the will message is the third field')
  })

  t.test('[MQTT-3.1.3-3] a CONNECT without a client identifier closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ payload: [] }))
    await closedSilently(t, client, 'no client identifier')
  })

  t.test('[MQTT-3.1.3-4] a client identifier that is not a valid UTF-8 string closes the connection', async (t) => {
    for (const [what, bytes] of Object.entries({ ...ill, 'U+0000': nul })) {
      const client = await raw(t)
      client.send(rawConnect({ payload: [mqttString(bytes)] }))
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-3.1.3-5] client identifiers of 1 to 23 bytes of 0-9a-zA-Z are allowed', async (t) => {
    const alphabet = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
    for (const clientId of ['0', 'Z', alphabet.slice(0, 23), alphabet.slice(39, 62), alphabet.slice(10, 33)]) {
      const client = await raw(t)
      const connack = await client.connect({ clientId, clean: false })
      t.equal(connack.returnCode, 0, `${clientId} accepted`)
      await client.disconnect()
    }
  })

  t.test('[MQTT-3.1.3-6] a zero-byte client identifier with CleanSession 1 is assigned a unique identifier', async (t) => {
    const topic = `anon/${uniqueId()}`
    const first = await connected(t, { clientId: '', clean: true })
    const second = await connected(t, { clientId: '', clean: true })
    t.same(await first.subscribe({ [topic]: 0 }), [0])
    t.same(await second.subscribe({ [topic]: 0 }), [0])
    const publisher = await connected(t)
    await publisher.publish(topic, 'hello')
    const [a] = await first.nextMessages(1)
    const [b] = await second.nextMessages(1)
    t.equal(a?.payload.toString(), 'hello', 'the first client is still connected: the two got different identifiers')
    t.equal(b?.payload.toString(), 'hello')
  })

  t.test('[MQTT-3.1.3-8] a zero-byte client identifier with CleanSession 0 gets CONNACK 0x02, then close', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0x00, payload: [mqttString('')] }))
    await refusedWith(t, client, 2, 'zero-byte id, CleanSession 0')
  })

  t.test('[MQTT-3.1.3-9] a client identifier the server rejects gets CONNACK 0x02, then close', async (t) => {
    const strict = await target.broker(t, { limits: { maxClientIdLength: 30 } })
    const client = await raw(t, strict)
    client.send(connectPacket({ clientId: 'x'.repeat(31) }))
    await refusedWith(t, client, 2, 'identifier over the configured length')
  })

  t.test('[MQTT-3.1.3-10] a Will Topic that is not a valid UTF-8 string closes the connection', async (t) => {
    for (const [what, bytes] of Object.entries({ ...ill, 'U+0000': nul })) {
      const client = await raw(t)
      client.send(rawConnect({ flags: 0x06, payload: [mqttString(uniqueId()), mqttString(bytes), mqttString('bye')] }))
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-3.1.3-11] a User Name that is not a valid UTF-8 string closes the connection', async (t) => {
    for (const [what, bytes] of Object.entries({ ...ill, 'U+0000': nul })) {
      const client = await raw(t)
      client.send(rawConnect({ flags: 0x82, payload: [mqttString(uniqueId()), mqttString(bytes)] }))
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-1.5.3-1] ill-formed UTF-8 in a CONNECT string closes the connection', async (t) => {
    for (const [what, bytes] of Object.entries(ill)) {
      const client = await raw(t)
      client.send(rawConnect({ flags: 0x86, payload: [mqttString(uniqueId()), mqttString('w/t'), mqttString('bye'), mqttString(bytes)] }))
      await closedSilently(t, client, `user name with ${what}`)
    }
  })

  t.test('[MQTT-1.5.3-2] U+0000 in a CONNECT string closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0x06, payload: [mqttString(uniqueId()), mqttString(nul), mqttString('bye')] }))
    await closedSilently(t, client, 'will topic with U+0000')
  })

  t.test('[MQTT-3.1.4-1] a CONNECT that does not conform closes the connection without CONNACK', async (t) => {
    const id = mqttString(uniqueId())
    const cases: Record<string, Buffer> = {
      'a remaining length shorter than its fields': rawPacket(0x10, mqttString('MQTT'), [4, 0x02, 0, 0], [0, 10, 0x61]),
      'a field overrunning the packet': rawPacket(0x10, mqttString('MQTT'), [4, 0x02, 0, 0], [0, 40], Buffer.from('abc')),
      'trailing bytes after the last field': rawConnect({ payload: [id, Buffer.from([0])] }),
      'a will topic with a wildcard': encode(connectPacket({ will: { topic: 'w/#', payload: Buffer.from('x'), qos: 0, retain: false } })),
      'a will topic with a + wildcard': encode(connectPacket({ will: { topic: 'w/+/x', payload: Buffer.from('x'), qos: 0, retain: false } })),
      'an empty will topic': rawConnect({ flags: 0x06, payload: [id, mqttString(''), mqttString('x')] })
    }
    for (const [what, bytes] of Object.entries(cases)) {
      const client = await raw(t)
      client.send(bytes)
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-3.1.4-2] a client connecting with the id of a connected client disconnects the existing one', async (t) => {
    const clientId = uniqueId('dup')
    const first = await connected(t, { clientId })
    const second = await connected(t, { clientId })
    t.ok(await first.closedWithin(), 'the existing client was disconnected')
    await stillConnected(t, second, 'the new client')
    if (target.cluster) {
      // the same on another node of the cluster
      const other = await startBroker(t, { redis: broker.config.redis })
      const third = await connected(t, { clientId }, other)
      t.ok(await second.closedWithin(3000), 'the client on the other node was disconnected')
      await stillConnected(t, third, 'the client on the second node')
    }
  })

  t.test('[MQTT-3.1.4-4] a valid CONNECT is acknowledged with CONNACK return code 0', async (t) => {
    const client = await raw(t)
    const connack = await client.connect({ keepalive: 30, username: 'someone', password: Buffer.from('x') })
    t.equal(connack.returnCode, 0)
    t.equal(connack.sessionPresent, false)
  })

  t.test('[MQTT-3.1.4-5] after a refused CONNECT, nothing the client sent after it is processed', async (t) => {
    const strict = await target.broker(t, { limits: { maxClientIdLength: 30 } })
    const topic = `refused/${uniqueId()}`
    const after = encode({ cmd: 'publish', topic, payload: 'must not be stored', qos: 1, messageId: 1, retain: true, dup: false })
    const refusals: Record<string, Buffer> = {
      'CONNACK 1 (protocol level)': rawConnect({ protocolName: 'MQTT', level: 6 }),
      'CONNACK 2 (zero-byte id, CleanSession 0)': rawConnect({ flags: 0x00, payload: [mqttString('')] }),
      'CONNACK 2 (identifier rejected by policy)': encode(connectPacket({ clientId: 'y'.repeat(31) }))
    }
    for (const [what, connect] of Object.entries(refusals)) {
      const client = await raw(t, strict)
      client.send(Buffer.concat([connect, after]))
      const connack = await client.expect('connack')
      t.not(connack.returnCode, 0, what)
      t.ok(await client.closedWithin(), `${what}: closed`)
      t.same(client.received, [], `${what}: no PUBACK`)
    }
    const checker = await connected(t, {}, strict)
    await checker.subscribe({ [topic]: 1 })
    t.same(await checker.messages(300), [], 'the PUBLISH sent after the refused CONNECTs was never processed')
  })

  t.test('[MQTT-3.2.0-1] the first packet the server sends is CONNACK', async (t) => {
    const client = await raw(t)
    // CONNECT, SUBSCRIBE and PINGREQ in one write: the answers come after the CONNACK
    client.send(Buffer.concat([encode(connectPacket()), encode({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'first/#', qos: 1 }] }), encode({ cmd: 'pingreq' })]))
    const packets = [await client.next(), await client.next(), await client.next()]
    t.equal(packets[0]?.cmd, 'connack', 'CONNACK first')
    t.same(packets.slice(1).map((p) => p.cmd).sort(), ['pingresp', 'suback'], 'then the other answers')
  })

  t.test('[MQTT-3.2.2-4] a CONNACK with a non-zero return code has Session Present 0, even when a session exists', async (t) => {
    const clientId = uniqueId('sp')
    const owner = await connected(t, { clientId, clean: false })
    await owner.subscribe({ 'sp/x': 1 })
    await owner.disconnect()
    const client = await raw(t)
    client.send(rawConnect({ protocolName: 'MQIsdp', level: 4, flags: 0x00, payload: [mqttString(clientId)] }))
    await refusedWith(t, client, 1, 'refused while a session exists')
  })

  t.test('[MQTT-3.2.2-5] after a CONNACK with a non-zero return code the server closes the connection', async (t) => {
    const client = await raw(t)
    client.send(rawConnect({ flags: 0x00, payload: [mqttString('')] }))
    await refusedWith(t, client, 2, 'CONNACK 2')
  })

  t.test('[MQTT-3.2.2-6] when no CONNACK return code applies (keep alive over the limit) the connection closes without CONNACK', async (t) => {
    const limited = await target.broker(t, { limits: { keepaliveLimitS: 60 } })
    for (const keepalive of [61, 0]) {
      const client = await raw(t, limited)
      client.send(connectPacket({ keepalive }))
      await closedSilently(t, client, `keep alive ${keepalive} with a limit of 60 s`)
    }
    const ok = await raw(t, limited)
    t.equal((await ok.connect({ keepalive: 60 })).returnCode, 0, 'keep alive within the limit accepted')
  })

  t.test('[MQTT-2.2.2-1] packets the server sends carry the reserved flag values of table 2.2', async (t) => {
    // RawClient parses with mqtt-packet, whose parser rejects any reserved-flag deviation
    const client = await connected(t)
    const topic = `flags/${uniqueId()}`
    t.same(await client.subscribe({ [topic]: 2 }), [2], 'SUBACK')
    await client.publish(topic, 'x', { qos: 2 }) // PUBREC, PUBCOMP
    const [message] = await client.nextMessages(1) // PUBLISH, PUBREL
    t.equal(message?.qos, 2)
    await client.unsubscribe([topic]) // UNSUBACK
    await stillConnected(t, client, 'PINGRESP')
  })

  t.test('[MQTT-2.2.2-2] invalid fixed-header flags close the connection', async (t) => {
    const headers: Record<string, Buffer> = {
      'PUBACK 0x41': rawPacket(0x41, [0, 1]),
      'PUBREC 0x52': rawPacket(0x52, [0, 1]),
      'PUBREL 0x60': rawPacket(0x60, [0, 1]),
      'PUBCOMP 0x78': rawPacket(0x78, [0, 1]),
      'SUBSCRIBE 0x80': rawPacket(0x80, [0, 1], mqttString('a'), [0]),
      'UNSUBSCRIBE 0xa3': rawPacket(0xa3, [0, 1], mqttString('a')),
      'PINGREQ 0xc4': rawPacket(0xc4),
      'DISCONNECT 0xe1': rawPacket(0xe1)
    }
    for (const [what, bytes] of Object.entries(headers)) {
      const client = await connected(t)
      client.send(bytes)
      await closedSilently(t, client, what)
    }
    const client = await raw(t)
    client.send(Buffer.concat([Buffer.from([0x11]), rawConnect().subarray(1)]))
    await closedSilently(t, client, 'CONNECT 0x11')
  })

  t.test('[MQTT-3.14.1-1] a DISCONNECT with reserved bits set disconnects the client (and publishes its will)', async (t) => {
    const topic = `disc/${uniqueId()}`
    const watcher = await connected(t)
    await watcher.subscribe({ [topic]: 0 })
    const client = await connected(t, { will: { topic, payload: Buffer.from('gone'), qos: 0, retain: false } })
    client.send(rawPacket(0xe2))
    t.ok(await client.closedWithin(), 'disconnected')
    const [will] = await watcher.nextMessages(1)
    t.equal(will?.payload.toString(), 'gone', 'not a valid DISCONNECT: the will is published')
  })

  t.test('[MQTT-4.8.0-1] a protocol violation closes the network connection', async (t) => {
    const violations: Record<string, Buffer> = {
      'CONNACK from a client': rawPacket(0x20, [0, 0]),
      'SUBACK from a client': rawPacket(0x90, [0, 1, 0]),
      'UNSUBACK from a client': rawPacket(0xb0, [0, 1]),
      'PINGRESP from a client': rawPacket(0xd0),
      'reserved type 0': rawPacket(0x00),
      'reserved type 15': rawPacket(0xf0),
      'remaining length of five bytes': Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])
    }
    for (const [what, bytes] of Object.entries(violations)) {
      const client = await connected(t)
      client.send(bytes)
      await closedSilently(t, client, what)
    }
  })

  t.test('[MQTT-7.1.1-1] MQTT over TCP: an ordered, lossless byte stream, in any segmentation', async (t) => {
    const client = await raw(t)
    const topic = `bytes/${uniqueId()}`
    const all = Buffer.concat([encode(connectPacket()), encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] }), encode({ cmd: 'publish', topic, payload: 'one byte at a time', qos: 0, retain: false, dup: false })])
    for (const byte of all) {
      client.send(Buffer.from([byte]))
      await new Promise((resolve) => setImmediate(resolve))
    }
    const cmds = (await client.drain(300)).map((p) => p.cmd)
    t.equal(cmds[0], 'connack', 'CONNACK first [MQTT-3.2.0-1]')
    // "The Server is permitted to start sending PUBLISH packets matching the Subscription before
    // the Server sends the SUBACK Packet" (3.8.4): with Redis, SUBACK waits for storage
    t.same(cmds.slice(1).sort(), ['publish', 'suback'], 'then the SUBACK and the message, each once')
  })

  t.test('[MQTT-7.0.0-2] a client that uses nothing outside the specification interoperates', async (t) => {
    const topic = `plain/${uniqueId()}`
    const client = await raw(t)
    t.equal((await client.connect({ clientId: 'plain', keepalive: 60 })).returnCode, 0)
    t.same(await client.subscribe({ [topic]: 1 }), [1])
    await client.publish(topic, 'hi', { qos: 1 })
    const [message] = await client.nextMessages(1)
    t.equal(message?.payload.toString(), 'hi')
  })

  t.test('MQTT 3.1 (MQIsdp, level 3) clients connect and exchange messages', async (t) => {
    const topic = `v31/${uniqueId()}`
    const client = await raw(t)
    const connack = await client.connect({ protocolId: 'MQIsdp', protocolVersion: 3, clientId: uniqueId('v31') })
    t.equal(connack.returnCode, 0)
    t.same(await client.subscribe({ [topic]: 2 }), [2])
    await client.publish(topic, 'v3.1', { qos: 2 })
    const [message] = await client.nextMessages(1)
    t.equal(message?.payload.toString(), 'v3.1')
  })

  t.test('MQTT 3.1 has no Session Present flag: a client resuming its session gets byte 1 of the CONNACK 0', async (t) => {
    const clientId = uniqueId('v31s')
    const first = await raw(t)
    t.equal((await first.connect({ protocolId: 'MQIsdp', protocolVersion: 3, clientId, clean: false })).returnCode, 0)
    t.same(await first.subscribe({ [`v31/${clientId}`]: 1 }), [1])
    await first.disconnect()
    const again = await raw(t)
    const connack = await again.connect({ protocolId: 'MQIsdp', protocolVersion: 3, clientId, clean: false })
    t.equal(connack.sessionPresent, false, 'byte 1 is 0 (3.1.1 would say 1 here [MQTT-3.2.2-2])')
  })

  t.test('MQTT 3.1: a client identifier of no or more than 23 characters gets CONNACK 0x02 (3.1 requires 1 to 23)', async (t) => {
    for (const clientId of ['', 'x'.repeat(24), '\u00e9'.repeat(24)]) {
      const client = await raw(t)
      client.send(rawConnect({ protocolName: 'MQIsdp', level: 3, flags: 0x02, payload: [mqttString(clientId)] }))
      await refusedWith(t, client, 2, `MQTT 3.1 with a client identifier of ${[...clientId].length} characters`)
    }
    const ok = await raw(t)
    ok.send(rawConnect({ protocolName: 'MQIsdp', level: 3, flags: 0x02, payload: [mqttString('\u00e9'.repeat(23))] }))
    t.equal((await ok.expect('connack')).returnCode, 0, '23 characters (46 bytes) accepted')
  })
})

