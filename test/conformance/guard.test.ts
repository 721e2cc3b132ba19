// PacketFrameGuard reads packets as bytes arrive: whatever the segmentation of the stream,
// it must reach the same verdict as on the whole stream.
import t from 'tap'
import { PacketFrameGuard, type GuardVerdict } from '../../src/broker/protocol/packet-frame-guard.js'
import { encode, mqttString, rawPacket } from './raw-client.js'

const valid = Buffer.concat([
  encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: 'guard', username: 'u', password: Buffer.from('p'), will: { topic: 'w/t', payload: Buffer.from('bye'), qos: 1, retain: true } }),
  encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/+/c', qos: 1 }, { topic: '#', qos: 2 }] }),
  encode({ cmd: 'publish', topic: 'a/b/c', payload: Buffer.alloc(300, 1), qos: 0, retain: false, dup: false }),
  encode({ cmd: 'publish', topic: '\u00e9t\u00e9/\uFEFF', payload: 'x', qos: 1, messageId: 2, retain: true, dup: true }),
  encode({ cmd: 'publish', topic: 'q2', payload: Buffer.alloc(0), qos: 2, messageId: 3, retain: false, dup: false }),
  encode({ cmd: 'pubrel', messageId: 3 }),
  encode({ cmd: 'puback', messageId: 9 }),
  encode({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['a/+/c', '#'] }),
  encode({ cmd: 'pingreq' }),
  encode({ cmd: 'disconnect' })
])

/** The verdict on `bytes` fed in chunks cut at `cuts`. */
function verdict (bytes: Buffer, cuts: number[]): GuardVerdict | null {
  const guard = new PacketFrameGuard(1024 * 1024)
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    const result = guard.scan(bytes.subarray(from, cut))
    if (result !== null) return result
    from = cut
  }
  return null
}

t.test('a valid stream passes, cut anywhere in two, or byte by byte', async (t) => {
  t.equal(verdict(valid, []), null, 'whole')
  let failures = 0
  for (let cut = 1; cut < valid.length; cut++) if (verdict(valid, [cut]) !== null) failures++
  t.equal(failures, 0, 'every two-chunk split')
  t.equal(verdict(valid, Array.from({ length: valid.length - 1 }, (_, i) => i + 1)), null, 'one byte at a time')
})

t.test('an invalid packet gets the same verdict however the stream is cut', async (t) => {
  const connect = encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'x' })
  const cases: Record<string, Buffer> = {
    'a topic name with U+0000': rawPacket(0x30, mqttString(Buffer.from([0x61, 0])), Buffer.from('payload')),
    'packet identifier 0': rawPacket(0x32, mqttString('a'), [0, 0], Buffer.from('payload')),
    'a wildcard in a topic name': rawPacket(0x30, mqttString('a/#'), Buffer.from('payload')),
    'an empty topic name': rawPacket(0x32, mqttString(''), [0, 1], Buffer.from('payload')),
    'SUBSCRIBE without filters': rawPacket(0x82, [0, 1]),
    'a PUBACK of 3 bytes': rawPacket(0x40, [0, 1, 2]),
    'a PUBREL with packet identifier 0': rawPacket(0x62, [0, 0])
  }
  for (const [what, bad] of Object.entries(cases)) {
    const bytes = Buffer.concat([connect, bad])
    const whole = verdict(bytes, [])
    t.equal(whole?.action, 'close', `${what}: closes`)
    const differing: number[] = []
    for (let cut = 1; cut < bytes.length; cut++) {
      if (JSON.stringify(verdict(bytes, [cut])) !== JSON.stringify(whole)) differing.push(cut)
    }
    t.same(differing, [], `${what}: same verdict at every cut`)
  }
  const level6 = Buffer.from(connect)
  level6[8] = 6 // the protocol level byte of "MQTT" CONNECT
  for (let cut = 1; cut < level6.length; cut++) t.match(verdict(level6, [cut]), { action: 'refuse', returnCode: 1 }, `protocol level 6, cut at ${cut}`)
})
