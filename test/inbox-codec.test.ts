// The routed emitter's inbox format: every field a message carries survives the trip between
// nodes, several messages per batch.
import t from 'tap'
import { BatchReader, InboxBatch } from '../src/broker/cluster/inbox-codec.js'

type Message = Parameters<InboxBatch['add']>[0]

function decode (batch: Buffer): Array<Record<string, unknown>> {
  const reader = new BatchReader(batch)
  const decoded: Array<Record<string, unknown>> = []
  for (let message = reader.next(); message !== null; message = reader.next()) decoded.push(message)
  return decoded
}

function encode (messages: Message[]): Buffer {
  const batch = new InboxBatch()
  for (const message of messages) batch.add(message)
  return batch.encoded()
}

t.test('messages round-trip through one batch, fields and payload bytes intact', async (t) => {
  const messages = [
    { cmd: 'publish', brokerId: 'node-a', brokerCounter: 1, topic: 'chat/room1/typing', payload: Buffer.from('hi'), qos: 0, retain: false, dup: false },
    { cmd: 'publish', brokerId: 'node-a', brokerCounter: 2 ** 40 + 7, topic: 'größe/ünïcødé/€', payload: Buffer.alloc(0), qos: 2, retain: true, dup: true },
    { cmd: 'publish', brokerId: 'b', brokerCounter: 3, topic: 'x', payload: Buffer.from([0, 255, 1]), qos: 1, retain: false, dup: false, clientId: 'dev-1', messageId: undefined },
    { cmd: 'publish', brokerId: 'b', brokerCounter: 4, topic: 't/'.repeat(1000), payload: Buffer.alloc(70_000, 7), qos: 1, retain: true, dup: false }
  ]
  const batch = encode(messages)
  const decoded = decode(batch)
  t.equal(decoded.length, messages.length, 'as many messages out as in')
  for (const [i, message] of messages.entries()) {
    const { messageId: _dropped, ...expected } = message as typeof message & { messageId?: undefined }
    t.same(decoded[i], expected, `message ${i}`)
    t.ok(Buffer.isBuffer(decoded[i]?.payload), `message ${i}: the payload is a Buffer`)
  }
})

t.test('the clientId Aedes puts on every message travels in its own field, not as JSON', async (t) => {
  const message = { cmd: 'publish', brokerId: 'a', brokerCounter: 1, topic: 'a', payload: Buffer.from('x'), qos: 1, retain: false, dup: false, clientId: 'gerät-ü-1' }
  const batch = encode([message])
  t.notOk(batch.includes('{'), 'no JSON in the batch')
  t.same(decode(batch), [message])
})

t.test('a string payload arrives as its bytes', async (t) => {
  const decoded = decode(encode([{ cmd: 'publish', brokerId: 'a', brokerCounter: 1, topic: 'a', payload: 'text', qos: 0 } as never]))
  t.same(decoded[0]?.payload, Buffer.from('text'))
  t.equal(decoded[0]?.retain, false, 'absent flags read as false')
})

t.test('a message copied from another batch decodes the same in both', async (t) => {
  const first = new InboxBatch()
  const second = new InboxBatch()
  first.add({ cmd: 'publish', brokerId: 'a', brokerCounter: 1, topic: 'a/b', payload: Buffer.from('one'), qos: 1, retain: false, dup: false })
  second.add({ cmd: 'publish', brokerId: 'a', brokerCounter: 2, topic: 'c', payload: Buffer.from('two'), qos: 0, retain: false, dup: false })
  first.add({ cmd: 'publish', brokerId: 'a', brokerCounter: 3, topic: 'd/e', payload: Buffer.alloc(5000, 3), qos: 2, retain: true, dup: false })
  second.addLastOf(first)
  const topics = (batch: InboxBatch): unknown[] => {
    return decode(batch.encoded()).map((m) => [m.topic, m.brokerCounter, (m.payload as Buffer).length])
  }
  t.same(topics(first), [['a/b', 1, 3], ['d/e', 3, 5000]])
  t.same(topics(second), [['c', 2, 3], ['d/e', 3, 5000]], 'the copy follows what the batch held, past its first buffer')
})

t.test('a message without properties is as many bytes as before them: no section, no flag', async (t) => {
  const message = { cmd: 'publish', brokerId: 'node-a', brokerCounter: 1, topic: 'a/b', payload: Buffer.from('xyz'), qos: 1, retain: false, dup: false, clientId: 'c1' }
  // flags, counter, brokerId, cmd, topic, clientId, payload
  const size = 1 + 8 + (1 + 6) + (1 + 7) + (2 + 3) + (2 + 2) + (4 + 3)
  t.equal(encode([message]).length, size)
  t.equal(encode([{ ...message, properties: undefined }]).length, size, 'properties: undefined')
  // Topic Alias and Subscription Identifier belong to one connection or subscription [MQTT-3.3.2-7]
  const perConnection = encode([{ ...message, properties: { topicAlias: 3, subscriptionIdentifier: [1, 2] } }])
  t.equal(perConnection.length, size, 'only per-connection properties: nothing of them travels')
  t.notOk('properties' in (decode(perConnection)[0] ?? {}))
})

t.test('MQTT 5 properties round-trip: every one, binary correlation data, repeated user property keys', async (t) => {
  const correlationData = Buffer.from([0, 0xff, 0xfe, 0x80, 0x7b])
  const properties = {
    payloadFormatIndicator: true,
    contentType: 'application/json; charset=ütf-8',
    responseTopic: 'reply/gerät/42',
    correlationData,
    // a key given several times holds its values in an array, in order; a one-value array stays one
    userProperties: { trace: 'abc', tag: ['x', 'y', 'x'], 'ünï €': ['only'], empty: '' }
  }
  const [decoded] = decode(encode([{ cmd: 'publish', brokerId: 'a', brokerCounter: 1, topic: 'req/1', payload: Buffer.from('{}'), qos: 1, retain: false, dup: false, properties }]))
  t.same(decoded?.properties, properties)
  const got = decoded?.properties as typeof properties
  t.ok(Buffer.isBuffer(got.correlationData), 'correlation data is a Buffer')
  t.same([...got.correlationData], [...correlationData], 'its bytes intact (not valid UTF-8)')
  t.same(Object.keys(got.userProperties), ['trace', 'tag', 'ünï €', 'empty'], 'user property keys in order')
  t.same(got.userProperties.tag, ['x', 'y', 'x'], 'repeated values in order')
  const [unset] = decode(encode([{ cmd: 'publish', brokerId: 'a', brokerCounter: 2, topic: 't', payload: Buffer.alloc(0), qos: 0, properties: { payloadFormatIndicator: false } }]))
  t.same(unset?.properties, { payloadFormatIndicator: false }, 'payloadFormatIndicator false travels too')
})

t.test('a user property named __proto__ is an own property, not a prototype', async (t) => {
  const userProperties = JSON.parse('{"__proto__": "x", "a": ["1", "2"]}') as Record<string, unknown>
  const [decoded] = decode(encode([{ cmd: 'publish', brokerId: 'a', brokerCounter: 1, topic: 't', payload: Buffer.alloc(0), qos: 0, properties: { userProperties } }]))
  const got = (decoded?.properties as { userProperties: Record<string, unknown> }).userProperties
  t.same(Object.keys(got), ['__proto__', 'a'])
  t.equal(Object.getOwnPropertyDescriptor(got, '__proto__')?.value, 'x')
  t.equal(Object.getPrototypeOf(got), Object.prototype)
})

t.test('the Message Expiry Interval travels as a deadline: the time waited is deducted, an expired message is skipped', async (t) => {
  const base = { cmd: 'publish', brokerId: 'a', topic: 't', payload: Buffer.from('p'), qos: 1, retain: false, dup: false }
  const now = Date.now()
  const batch = encode([
    // Aedes 2 stamps the deadline at publish: this one was published 30 s ago with 60 s to live
    { ...base, brokerCounter: 1, properties: { messageExpiryInterval: 60, contentType: 'text/plain' }, messageExpiry: now + 30_000 },
    { ...base, brokerCounter: 2, properties: { messageExpiryInterval: 5 }, messageExpiry: now - 1 },
    // no deadline yet (published just now, Aedes 1): it starts at encoding
    { ...base, brokerCounter: 3, properties: { messageExpiryInterval: 5 } },
    // 0 sets no expiry
    { ...base, brokerCounter: 4, properties: { messageExpiryInterval: 0, contentType: 'x' } }
  ])
  const decoded = decode(batch)
  t.same(decoded.map((m) => m.brokerCounter), [1, 3, 4], 'the expired message is not delivered [MQTT-3.3.2-5]')
  t.same(decoded[0]?.properties, { messageExpiryInterval: 30, contentType: 'text/plain' }, 'what is left of the interval [MQTT-3.3.2-6]')
  t.equal(decoded[0]?.messageExpiry, now + 30_000, 'the deadline stays on the message, as Aedes 2 keeps it for the offline queue')
  t.same(decoded[1]?.properties, { messageExpiryInterval: 5 })
  t.same(decoded[2]?.properties, { contentType: 'x' })

  const waiting = encode([{ ...base, brokerCounter: 5, properties: { messageExpiryInterval: 60 } }])
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const left = (decode(waiting)[0]?.properties as { messageExpiryInterval: number }).messageExpiryInterval
  t.ok(left <= 59 && left > 50, `a second spent in the inbox is deducted (${left} s left of 60)`)
})
