// MQTT 3.1.1 conformance, section 6 (MQTT over WebSocket), against a single node and a
// cluster node.
import { brokerUrl } from '../helpers/broker.js'
import { RawClient, connectPacket, encode, uniqueId } from './raw-client.js'
import { forEachTarget } from './targets.js'

forEachTarget((t, { broker }) => {
  const url = brokerUrl(broker, 'ws')

  t.test('[MQTT-6.0.0-1] a text data frame closes the network connection', async (t) => {
    const { ws } = await RawClient.websocket(t, url)
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
    ws.send(encode(connectPacket()), { binary: false })
    const code = await Promise.race([closed, new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 2000))])
    t.not(code, 'timeout', `closed (close code ${code})`)
  })

  t.test('[MQTT-6.0.0-2] control packets need not be aligned with frames: split across frames, or several in one', async (t) => {
    const { client, ws } = await RawClient.websocket(t, url)
    const topic = `frames/${uniqueId()}`
    const connect = encode(connectPacket())
    const subscribe = encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
    const publish = encode({ cmd: 'publish', topic, payload: 'framed', qos: 1, messageId: 2, retain: false, dup: false })
    // CONNECT in three frames; the end of SUBSCRIBE, PUBLISH and PINGREQ in one frame
    ws.send(connect.subarray(0, 1))
    ws.send(connect.subarray(1, 5))
    ws.send(Buffer.concat([connect.subarray(5), subscribe.subarray(0, 4)]))
    ws.send(Buffer.concat([subscribe.subarray(4), publish, encode({ cmd: 'pingreq' })]))
    const packets = await client.drain(500)
    t.equal(packets[0]?.cmd, 'connack')
    t.same(packets.map((p) => p.cmd).sort(), ['connack', 'pingresp', 'puback', 'publish', 'suback'])
  })

  t.test('[MQTT-6.0.0-4] the server selects the "mqtt" WebSocket subprotocol', async (t) => {
    for (const offered of [['mqtt'], ['other', 'mqtt'], ['mqtt', 'mqttv3.1']]) {
      const { client, ws } = await RawClient.websocket(t, url, offered)
      t.equal(ws.protocol, 'mqtt', `offered ${offered.join(', ')}`)
      t.equal((await client.connect()).returnCode, 0)
    }
  })

  t.test('[MQTT-7.1.1-1] MQTT over WebSocket: messages flow between WebSocket and TCP clients', async (t) => {
    const topic = `ws-tcp/${uniqueId()}`
    const { client: wsClient } = await RawClient.websocket(t, url)
    await wsClient.connect()
    await wsClient.subscribe({ [topic]: 2 })
    const tcp = await RawClient.tcp(t, broker.addresses.mqtt.port)
    await tcp.connect()
    await tcp.publish(topic, 'across transports', { qos: 2 })
    t.same((await wsClient.nextMessages(1)).map((m) => m.payload.toString()), ['across transports'])
  })
})
