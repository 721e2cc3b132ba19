// MQTT 5.0 conformance, CONNECT and CONNACK (sections 3.1, 3.2, 4.1), PINGREQ and the server's
// DISCONNECT on takeover: raw MQTT 5.0 over TCP, against a single node and a cluster node.
import { brokerDropped, stillConnected } from '../expect.js'
import { RawClient, connectPacket, mqttString, rawConnect, uniqueId } from '../raw-client.js'
import { forEachTarget } from '../targets.js'

forEachTarget((t, { target, broker, raw, connected }) => {
  t.test('[MQTT-3.1.4-5] [MQTT-3.2.0-1] [MQTT-3.2.0-2] [MQTT-3.2.2-1] [MQTT-3.2.2-8] [MQTT-3.2.2-9] [MQTT-3.2.2-10] [MQTT-2.2.2-1] an accepted CONNECT gets one CONNACK 0x00, first, with the broker\'s limits and no Maximum QoS: SUBSCRIBE at QoS 0, 1 and 2 is granted', async (t) => {
    const client = await raw(t)
    client.send(connectPacket({}, 5))
    client.send({ cmd: 'pingreq' })
    const connack = await client.expect('connack')
    t.equal(connack.reasonCode, 0, 'Success')
    t.equal(connack.sessionPresent, false)
    t.match(connack.properties, { receiveMaximum: 1000, maximumPacketSize: 1024 * 1024, topicAliasMaximum: 16, sharedSubscriptionAvailable: true }, 'the broker\'s limits')
    t.equal(connack.properties?.maximumQoS, undefined, 'no Maximum QoS: QoS 2 is supported')
    t.equal(connack.properties?.retainAvailable, undefined, 'no Retain Available: retained messages are supported')
    t.equal((await client.next()).cmd, 'pingresp', 'the PINGREQ sent right after the CONNECT is answered after the CONNACK')
    const filters = [0, 1, 2].map((qos) => ({ topic: `granted/${uniqueId()}`, qos: qos as 0 | 1 | 2 }))
    t.same((await client.subscribeWith(filters)).granted, [0, 1, 2], 'QoS 0, 1 and 2 granted')
    t.same((await client.drain(200)).map((p) => p.cmd), [], 'no second CONNACK')
  })

  t.test('[MQTT-3.12.4-1] a PINGREQ is answered with PINGRESP', async (t) => {
    const client = await connected(t)
    await stillConnected(t, client, 'PINGREQ')
    await stillConnected(t, client, 'again')
  })

  t.test('[MQTT-3.1.2-1] [MQTT-3.1.2-2] [MQTT-3.2.2-6] [MQTT-3.2.2-7] a wrong protocol name closes the connection; a protocol level the broker does not speak gets CONNACK 0x01 (the code every client version reads), then the close', async (t) => {
    const wrongName = await raw(t)
    wrongName.send(rawConnect({ protocolName: 'MQTX', level: 5, payload: [Buffer.from([0]), mqttString(uniqueId())] }))
    t.ok(await wrongName.closedWithin(), 'closed')
    t.same(wrongName.received, [], 'no CONNACK to a client that is not MQTT')
    const levels = await target.broker(t)
    const level6 = await RawClient.tcp(t, levels.addresses.mqtt.port, 4)
    level6.send(rawConnect({ level: 6, payload: [Buffer.from([0]), mqttString(uniqueId())] }))
    const connack = await level6.expect('connack')
    t.equal(connack.returnCode, 1, 'CONNACK 0x01 Unacceptable protocol version')
    t.equal(connack.sessionPresent, false, 'Session Present 0')
    t.ok(await level6.closedWithin(), 'closed')
  })

  t.test('[MQTT-3.1.3-2] [MQTT-3.1.3-5] Client Identifiers of 1 to 23 characters of 0-9, a-z, A-Z are allowed, and name the session', async (t) => {
    for (const clientId of ['a', 'Z9', '0123456789abcdefABCDEFG']) {
      const client = await raw(t)
      const connack = await client.connect({ clientId, clean: false, properties: { sessionExpiryInterval: 10 } })
      t.equal(connack.reasonCode, 0, `"${clientId}" accepted`)
      t.ok((broker.aedes as unknown as { clients: Record<string, unknown> }).clients[clientId] !== undefined, 'the broker holds the client under that id')
      await client.disconnect()
      const again = await raw(t)
      t.equal((await again.connect({ clientId, clean: false, properties: { sessionExpiryInterval: 0 } })).sessionPresent, true, 'its session is found under that id')
      await again.disconnect()
    }
  })

  t.test('[MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] a zero-length Client Identifier gets a unique Assigned Client Identifier in the CONNACK, and the connection goes on under it', async (t) => {
    const assigned: string[] = []
    for (let i = 0; i < 2; i++) {
      const client = await raw(t)
      const connack = await client.connect({ clientId: '' })
      t.equal(connack.reasonCode, 0)
      const id = connack.properties?.assignedClientIdentifier
      t.ok(typeof id === 'string' && id.length > 0, `Assigned Client Identifier ${String(id)}`)
      t.ok((broker.aedes as unknown as { clients: Record<string, unknown> }).clients[id as string] !== undefined, 'the broker holds the client under it')
      assigned.push(id as string)
    }
    t.not(assigned[0], assigned[1], 'each is new')
  })

  t.test('[MQTT-3.1.3-8] [MQTT-3.2.2-6] [MQTT-3.2.2-7] [MQTT-4.13.2-1] a Client Identifier the broker rejects (longer than limits.maxClientIdLength) gets CONNACK 0x85 with Session Present 0, then the close', async (t) => {
    const client = await raw(t)
    const connack = await client.connect({ clientId: 'x'.repeat(broker.config.limits.maxClientIdLength + 1) })
    t.equal(connack.reasonCode, 0x85, 'Client Identifier not valid')
    t.equal(connack.sessionPresent, false)
    t.ok(await client.closedWithin(), 'closed')
  })

  t.test('[MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.1.2-6] [MQTT-3.1.4-4] [MQTT-3.2.2-2] [MQTT-3.2.2-3] [MQTT-3.1.2-23] [MQTT-4.1.0-1] Clean Start 0 resumes the session kept for its Session Expiry Interval (Session Present 1) or creates one (0); Clean Start 1 discards it (0)', async (t) => {
    const clientId = uniqueId('cs')
    const topic = `cs/${uniqueId()}`
    const keep = { clientId, clean: false, properties: { sessionExpiryInterval: 60 } }
    const first = await raw(t)
    t.equal((await first.connect(keep)).sessionPresent, false, 'Clean Start 0, no session: a new one, Session Present 0')
    await first.subscribe({ [topic]: 1 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'while connected', { qos: 1 })
    t.same((await first.nextMessages(1)).map((m) => m.payload.toString()), ['while connected'], 'the session lives while the connection is open')
    await first.disconnect()
    await brokerDropped(broker, clientId)
    await publisher.publish(topic, 'while away', { qos: 1 })
    const resumed = await raw(t)
    t.equal((await resumed.connect(keep)).sessionPresent, true, 'Clean Start 0 with a session: Session Present 1')
    t.same((await resumed.nextMessages(1)).map((m) => m.payload.toString()), ['while away'], 'the session kept the subscription and the message')
    await resumed.disconnect()
    await brokerDropped(broker, clientId)
    const fresh = await raw(t)
    t.equal((await fresh.connect({ ...keep, clean: true })).sessionPresent, false, 'Clean Start 1: Session Present 0')
    await publisher.publish(topic, 'after the clean start', { qos: 1 })
    t.same(await fresh.messages(300), [], 'the old session, and its subscription, are gone')
  })

  t.test('[MQTT-4.1.0-2] [MQTT-3.1.2-23] a session with Session Expiry Interval 0 ends with its connection; one of 1 s is discarded once 1 s has passed after the close', async (t) => {
    for (const interval of [0, 1]) {
      const clientId = uniqueId('exp')
      const client = await raw(t)
      await client.connect({ clientId, clean: false, properties: { sessionExpiryInterval: interval } })
      await client.subscribe({ [`exp/${uniqueId()}`]: 1 })
      await client.disconnect()
      await brokerDropped(broker, clientId)
      // a cluster node deletes an ended session in a sweep just after the close: a reconnect
      // within those milliseconds still finds it (a known race, see the report of branch conf5)
      await new Promise((resolve) => setTimeout(resolve, 300))
      if (interval === 1) {
        const early = await raw(t)
        t.equal((await early.connect({ clientId, clean: false, properties: { sessionExpiryInterval: 1 } })).sessionPresent, true, 'within its interval the session is there')
        await early.disconnect()
        await brokerDropped(broker, clientId)
        await new Promise((resolve) => setTimeout(resolve, 2000))
      }
      const again = await raw(t)
      t.equal((await again.connect({ clientId, clean: false })).sessionPresent, false, `interval ${interval}: the session was discarded`)
    }
  })

  t.test('[MQTT-3.1.2-22] [MQTT-3.2.2-22] with no Server Keep Alive in the CONNACK the client\'s Keep Alive holds: 1.5 times it without a packet closes the connection', async (t) => {
    const client = await raw(t)
    const connack = await client.connect({ keepalive: 1 })
    t.equal(connack.properties?.serverKeepAlive, undefined, 'no Server Keep Alive')
    const start = Date.now()
    t.ok(await client.closedWithin(4000), 'closed')
    const after = Date.now() - start
    t.ok(after >= 1000, `not before the Keep Alive (${after} ms)`)
  })

  t.test('[MQTT-3.1.4-3] [MQTT-3.14.2-1] [MQTT-3.14.2-2] [MQTT-3.14.4-1] [MQTT-3.14.4-2] a second connection with the Client Identifier: the first gets DISCONNECT 0x8E, without Session Expiry Interval, as its last packet, then the close', async (t) => {
    const clientId = uniqueId('takeover')
    const first = await connected(t, { clientId, clean: false, properties: { sessionExpiryInterval: 30 } })
    const second = await connected(t, { clientId, clean: false, properties: { sessionExpiryInterval: 30 } })
    const disconnect = await first.expect('disconnect')
    t.equal(disconnect.reasonCode, 0x8E, 'Session taken over')
    t.equal(disconnect.properties?.sessionExpiryInterval, undefined, 'no Session Expiry Interval from the server')
    t.ok(await first.closedWithin(), 'the first connection is closed')
    t.same(first.received, [], 'nothing after the DISCONNECT')
    await stillConnected(t, second, 'the new connection')
  })

  t.test('[MQTT-3.1.2-28] [MQTT-3.1.2-29] Request Response Information 0: no Response Information; Request Problem Information 0: a refused PUBLISH gets PUBACK 0x87 without Reason String or User Property', async (t) => {
    const client = await raw(t)
    const connack = await client.connect({ properties: { requestResponseInformation: false, requestProblemInformation: false } })
    t.equal(connack.properties?.responseInformation, undefined, 'no Response Information')
    client.send({ cmd: 'publish', topic: '$forged/x', payload: 'p', qos: 1, retain: false, dup: false, messageId: 7 })
    const puback = await client.expect('puback')
    t.equal(puback.reasonCode, 0x87, 'Not authorized: a $ topic')
    t.equal(puback.properties?.reasonString, undefined, 'no Reason String')
    t.equal(puback.properties?.userProperties, undefined, 'no User Property')
    const asking = await connected(t, { properties: { requestProblemInformation: true } })
    asking.send({ cmd: 'publish', topic: '$forged/x', payload: 'p', qos: 1, retain: false, dup: false, messageId: 8 })
    t.equal((await asking.expect('puback')).reasonCode, 0x87, 'the same refusal for a client asking for problem information')
  })
}, { level: 5 })
