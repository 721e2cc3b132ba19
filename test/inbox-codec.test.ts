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

t.test('MQTT 5 properties travel too, the binary Correlation Data as a Buffer [MQTT-3.3.2-16]', async (t) => {
  const properties = { correlationData: Buffer.from([0, 1, 0xfe, 0xff]), responseTopic: 'replies/1', userProperties: { b: ['1', '2'], a: 'x' }, payloadFormatIndicator: true, contentType: 'text/plain', messageExpiryInterval: 30 }
  const [decoded] = decode(encode([{ cmd: 'publish', brokerId: 'a', brokerCounter: 1, topic: 't', payload: Buffer.from('p'), qos: 1, retain: false, dup: false, properties }]))
  const out = decoded?.properties as typeof properties
  t.ok(Buffer.isBuffer(out.correlationData), 'a Buffer')
  t.same(out, properties, 'every property intact')
  t.same(Object.keys(out.userProperties), ['b', 'a'], 'User Properties in their order')
})
