// The routed emitter's inbox format: every field a message carries survives the trip between
// nodes, several messages per batch.
import t from 'tap'
import { decodeBatch, encodeMessage } from '../src/broker/inbox-codec.js'

t.test('messages round-trip through one batch, fields and payload bytes intact', async (t) => {
  const messages = [
    { cmd: 'publish', brokerId: 'node-a', brokerCounter: 1, topic: 'chat/room1/typing', payload: Buffer.from('hi'), qos: 0, retain: false, dup: false },
    { cmd: 'publish', brokerId: 'node-a', brokerCounter: 2 ** 40 + 7, topic: 'größe/ünïcødé/€', payload: Buffer.alloc(0), qos: 2, retain: true, dup: true },
    { cmd: 'publish', brokerId: 'b', brokerCounter: 3, topic: 'x', payload: Buffer.from([0, 255, 1]), qos: 1, retain: false, dup: false, clientId: 'dev-1', messageId: undefined },
    { cmd: 'publish', brokerId: 'b', brokerCounter: 4, topic: 't/'.repeat(1000), payload: Buffer.alloc(70_000, 7), qos: 1, retain: true, dup: false }
  ]
  const batch = Buffer.concat(messages.map(encodeMessage))
  const decoded: Array<Record<string, unknown>> = []
  decodeBatch(batch, (message) => decoded.push(message))
  t.equal(decoded.length, messages.length, 'as many messages out as in')
  for (const [i, message] of messages.entries()) {
    const { messageId: _dropped, ...expected } = message as typeof message & { messageId?: undefined }
    t.same(decoded[i], expected, `message ${i}`)
    t.ok(Buffer.isBuffer(decoded[i]?.payload), `message ${i}: the payload is a Buffer`)
  }
})

t.test('a string payload arrives as its bytes', async (t) => {
  const decoded: Array<Record<string, unknown>> = []
  decodeBatch(encodeMessage({ cmd: 'publish', brokerId: 'a', brokerCounter: 1, topic: 'a', payload: 'text', qos: 0 } as never), (m) => decoded.push(m))
  t.same(decoded[0]?.payload, Buffer.from('text'))
  t.equal(decoded[0]?.retain, false, 'absent flags read as false')
})
