// MQTT 5.0 conformance, the format of what a client sends, end to end through the broker: a
// CONNECT by hand breaking a rule of 3.1.2/3.1.3, UTF-8 and Variable Byte Integer rules (1.5),
// long topics and byte-stream transport (4.2, 4.7.3), and MQTT over WebSocket (section 6). Raw
// MQTT 5.0 over TCP and WebSocket, against a single node and a cluster node.
import { brokerUrl } from '../../helpers/broker.js'
import { RawClient, connectPacket, encode, mqttString, rawConnect, rawPacket, uniqueId } from '../raw-client.js'
import { forEachTarget, type Tap } from '../targets.js'
import { rawTcpSocket } from '../../helpers/raw-clients.js'

const noProperties = Buffer.from([0])

/** A v5 CONNECT by hand: `flags` and the payload after the Client Identifier. */
const connect5 = (flags: number, ...rest: Buffer[]): Buffer => rawConnect({ level: 5, flags, payload: [noProperties, mqttString(uniqueId('wire')), ...rest] })

/** The broker refused the CONNECT as malformed: a CONNACK of 0x80 or more (Session Present 0), or none, then the close. */
async function refusedAsMalformed (t: Tap, client: RawClient, what: string): Promise<void> {
  const closed = await client.closedWithin()
  t.ok(closed, `${what}: closed`)
  const connack = client.received.find((p) => p.cmd === 'connack')
  if (connack !== undefined && connack.cmd === 'connack') {
    t.ok((connack.reasonCode ?? 0) >= 0x80, `${what}: CONNACK 0x${(connack.reasonCode ?? 0).toString(16)}`)
    t.equal(connack.sessionPresent, false, `${what}: Session Present 0`)
  }
  t.same(client.received.filter((p) => p.cmd !== 'connack'), [], `${what}: nothing else`)
}

forEachTarget((t, { broker, raw, connected }) => {
  const refuses = async (t: Tap, bytes: Buffer, what: string): Promise<void> => {
    const client = await raw(t)
    client.send(bytes)
    await refusedAsMalformed(t, client, what)
  }
  const willFields = [noProperties, mqttString('will/topic'), mqttString('gone')]

  t.test('[MQTT-3.1.2-3] [MQTT-3.1.4-1] a v5 CONNECT with the reserved flag set is refused as malformed', async (t) => {
    await refuses(t, connect5(0x03), 'reserved flag 1')
  })

  t.test('[MQTT-3.1.2-9] [MQTT-3.1.3-1] Will Flag 1 without Will Properties, Will Topic and Will Payload is refused as malformed', async (t) => {
    await refuses(t, connect5(0x06), 'no will fields')
  })

  t.test('[MQTT-3.1.2-11] [MQTT-3.1.2-13] Will Flag 0 with Will QoS or Will Retain set is refused as malformed', async (t) => {
    await refuses(t, connect5(0x02 | 0x08), 'Will QoS 1 without a will')
    await refuses(t, connect5(0x02 | 0x20), 'Will Retain without a will')
  })

  t.test('[MQTT-3.1.2-12] Will QoS 3 is refused as malformed', async (t) => {
    await refuses(t, connect5(0x02 | 0x04 | 0x18, ...willFields), 'Will QoS 3')
  })

  t.test('[MQTT-3.1.2-16] [MQTT-3.1.2-17] [MQTT-3.1.2-18] [MQTT-3.1.2-19] User Name and Password present exactly when their flags say', async (t) => {
    await refuses(t, connect5(0x02, mqttString('user')), 'a User Name with User Name Flag 0')
    await refuses(t, connect5(0x02 | 0x80), 'User Name Flag 1 without a User Name')
    await refuses(t, connect5(0x02 | 0x80, mqttString('user'), mqttString('secret')), 'a Password with Password Flag 0')
    await refuses(t, connect5(0x02 | 0x80 | 0x40, mqttString('user')), 'Password Flag 1 without a Password')
    const both = await raw(t)
    both.send(connect5(0x02 | 0x80 | 0x40, mqttString('user'), mqttString('secret')))
    t.equal((await both.expect('connack')).reasonCode, 0, 'both present with both flags: accepted (anonymous broker)')
  })

  t.test('[MQTT-3.1.3-3] [MQTT-3.1.3-4] a CONNECT without a Client Identifier is refused as malformed', async (t) => {
    await refuses(t, rawConnect({ level: 5, flags: 0x02, payload: [noProperties] }), 'no payload')
  })

  t.test('[MQTT-3.1.3-11] [MQTT-3.1.3-12] [MQTT-1.5.4-1] ill-formed UTF-8 in the Will Topic or the User Name is refused as malformed', async (t) => {
    const illFormed = Buffer.from([0x61, 0xc0, 0xaf])
    await refuses(t, connect5(0x02 | 0x04, noProperties, mqttString(illFormed), mqttString('gone')), 'Will Topic')
    await refuses(t, connect5(0x02 | 0x80, mqttString(illFormed)), 'User Name')
  })

  t.test('[MQTT-1.5.4-3] U+FEFF (0xEF 0xBB 0xBF) is kept in topic names, never stripped', async (t) => {
    const level = uniqueId()
    const client = await connected(t)
    await client.subscribe({ [`bom/\uFEFF${level}`]: 0, [`bom/${level}`]: 0 })
    const publisher = await connected(t)
    await publisher.publish(`bom/\uFEFF${level}`, 'with', { qos: 1 })
    const received = await client.messages(300)
    t.same(received.map((m) => [m.topic, m.payload.toString()]), [[`bom/\uFEFF${level}`, 'with']], 'delivered to the topic with U+FEFF only')
  })

  t.test('[MQTT-1.5.5-1] the broker writes each Variable Byte Integer in the fewest bytes', async (t) => {
    const socket = await rawTcpSocket(broker.addresses.mqtt.port, t)
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    const topic = `vbi/${uniqueId()}`
    socket.write(Buffer.concat([
      encode(connectPacket({}, 5), 5),
      encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] }, 5),
      encode({ cmd: 'publish', topic, payload: 'x'.repeat(200), qos: 0, retain: false, dup: false }, 5)
    ]))
    const minimal = (value: number): number => value < 128 ? 1 : value < 16384 ? 2 : value < 2097152 ? 3 : 4
    let bytes = Buffer.alloc(0)
    const deadline = Date.now() + 2000
    const lengths: Array<[number, number]> = []
    while (lengths.length < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      bytes = Buffer.concat([bytes, ...chunks.splice(0)])
      // walk the packets read so far: each one's Remaining Length, and the bytes it took
      lengths.length = 0
      for (let at = 0; at < bytes.length;) {
        let value = 0
        let multiplier = 1
        let used = 0
        let byte
        do {
          byte = bytes[at + 1 + used]
          if (byte === undefined) break
          value += (byte & 127) * multiplier
          multiplier *= 128
          used++
        } while ((byte & 128) !== 0)
        if (byte === undefined || at + 1 + used + value > bytes.length) break
        lengths.push([value, used])
        at += 1 + used + value
      }
    }
    t.equal(lengths.length, 3, 'CONNACK, SUBACK and the PUBLISH of 200 bytes')
    for (const [value, used] of lengths) t.equal(used, minimal(value), `Remaining Length ${value} in ${used} byte(s)`)
    socket.destroy()
  })

  t.test('[MQTT-4.7.3-3] a topic name of 65,535 bytes, the most its length prefix can say, is handled: delivered, or refused with a reason code', async (t) => {
    const client = await connected(t)
    const topic = 'l'.repeat(65535)
    client.send(rawPacket(0x32, mqttString(topic), [0, 1], noProperties, Buffer.from('long')))
    const answer = await client.next()
    t.ok(answer.cmd === 'puback' || (answer.cmd === 'disconnect' && (answer.reasonCode ?? 0) >= 0x80), `${answer.cmd} 0x${('reasonCode' in answer ? answer.reasonCode ?? 0 : 0).toString(16)}`)
    await connected(t)
  })

  t.test('[MQTT-4.2-1] MQTT 5.0 over TCP: an ordered, lossless byte stream, in any segmentation', async (t) => {
    const client = await raw(t)
    const topic = `bytes/${uniqueId()}`
    const all = Buffer.concat([encode(connectPacket({}, 5), 5), encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] }, 5), encode({ cmd: 'publish', topic, payload: 'one byte at a time', qos: 0, retain: false, dup: false }, 5)])
    for (const byte of all) {
      client.send(Buffer.from([byte]))
      await new Promise((resolve) => setImmediate(resolve))
    }
    const cmds = (await client.drain(300)).map((p) => p.cmd)
    t.equal(cmds[0], 'connack')
    t.same(cmds.slice(1).sort(), ['publish', 'suback'])
  })

  const url = brokerUrl(broker, 'ws')
  t.test('[MQTT-6.0.0-1] MQTT 5.0 over WebSocket: a text data frame closes the network connection', async (t) => {
    const { ws } = await RawClient.websocket(t, url, ['mqtt'], 5)
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
    ws.send(encode(connectPacket({}, 5), 5), { binary: false })
    const code = await Promise.race([closed, new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 2000))])
    t.not(code, 'timeout', `closed (close code ${code})`)
  })

  t.test('[MQTT-6.0.0-2] [MQTT-6.0.0-4] MQTT 5.0 over WebSocket: the "mqtt" subprotocol is selected; packets need not be aligned with frames', async (t) => {
    const { client, ws } = await RawClient.websocket(t, url, ['other', 'mqtt'], 5)
    t.equal(ws.protocol, 'mqtt', 'the mqtt subprotocol')
    const topic = `frames5/${uniqueId()}`
    const connect = encode(connectPacket({ properties: { userProperties: { framed: 'yes' } } }, 5), 5)
    const subscribe = encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1, nl: false }], properties: { subscriptionIdentifier: 9 } }, 5)
    const publish = encode({ cmd: 'publish', topic, payload: 'framed', qos: 1, messageId: 2, retain: false, dup: false, properties: { contentType: 'text/plain' } }, 5)
    ws.send(connect.subarray(0, 1))
    ws.send(connect.subarray(1, 5))
    ws.send(Buffer.concat([connect.subarray(5), subscribe.subarray(0, 4)]))
    ws.send(Buffer.concat([subscribe.subarray(4), publish, encode({ cmd: 'pingreq' }, 5)]))
    const packets = await client.drain(500)
    t.equal(packets[0]?.cmd, 'connack')
    t.same(packets.map((p) => p.cmd).sort(), ['connack', 'pingresp', 'puback', 'publish', 'suback'])
    const message = packets.find((p) => p.cmd === 'publish')
    t.match(message, { properties: { contentType: 'text/plain', subscriptionIdentifier: 9 } }, 'with its properties')
  })
}, { level: 5 })
