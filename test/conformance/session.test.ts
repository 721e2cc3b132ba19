// MQTT 3.1.1 conformance, sessions (sections 3.1.2.4, 3.2.2.2, 4.1, 4.4, 4.5, 4.6): what is
// kept for CleanSession 0, re-delivery on reconnect, Session Present, over raw TCP, against a
// single node and a cluster node.
import { startBroker } from '../helpers/broker.js'
import { brokerDropped, stillConnected } from './expect.js'
import { uniqueId } from './raw-client.js'
import { forEachTarget } from './targets.js'

forEachTarget((t, { target, broker, raw, connected }) => {
  const persistent = (clientId: string): { clientId: string, clean: false } => ({ clientId, clean: false })

  t.test('[MQTT-3.1.2-4] CleanSession 0 resumes the session of the client identifier, or creates one', async (t) => {
    const clientId = uniqueId('resume')
    const topic = `resume/${uniqueId()}`
    const first = await raw(t)
    t.equal((await first.connect(persistent(clientId))).sessionPresent, false, 'no session yet: a new one')
    await first.subscribe({ [topic]: 1 })
    await first.disconnect()
    const again = await raw(t)
    t.equal((await again.connect(persistent(clientId))).sessionPresent, true, 'the session was stored')
    const publisher = await connected(t)
    await publisher.publish(topic, 'no need to subscribe again', { qos: 1 })
    t.same((await again.nextMessages(1)).map((m) => m.payload.toString()), ['no need to subscribe again'])
  })

  t.test('[MQTT-3.1.2-5] QoS 1 and QoS 2 messages matching the subscriptions of a disconnected CleanSession 0 client are stored for it', async (t) => {
    const clientId = uniqueId('away')
    const base = `away/${uniqueId()}`
    const client = await connected(t, persistent(clientId))
    await client.subscribe({ [`${base}/+`]: 2 })
    await client.disconnect()
    const publisher = await connected(t)
    await publisher.publish(`${base}/q1`, 'q1', { qos: 1 })
    await publisher.publish(`${base}/q2`, 'q2', { qos: 2 })
    await publisher.publish(`${base}/`, 'empty level', { qos: 1 })
    await publisher.publish(`${base}/q1/deeper`, 'no match', { qos: 1 })
    const back = await connected(t, persistent(clientId))
    const messages = await back.messages(400)
    t.same(messages.map((m) => m.payload.toString()), ['q1', 'q2', 'empty level'], 'in order; + matches the empty level [MQTT-4.7.1-3]')
    t.same(messages.map((m) => m.qos), [1, 2, 1])
  })

  t.test('[MQTT-3.1.2-6] [MQTT-3.1.4-3] CleanSession 1 discards the previous session, and its own session is not reused', async (t) => {
    const clientId = uniqueId('clean')
    const topic = `clean/${uniqueId()}`
    const client = await connected(t, persistent(clientId))
    await client.subscribe({ [topic]: 1 })
    await client.disconnect()
    const publisher = await connected(t)
    await publisher.publish(topic, 'queued', { qos: 1 })
    const fresh = await raw(t)
    t.equal((await fresh.connect({ clientId, clean: true })).sessionPresent, false)
    await publisher.publish(topic, 'after', { qos: 1 })
    t.same(await fresh.messages(300), [], 'neither the queued message nor the subscription survived')
    await fresh.subscribe({ [topic]: 1 })
    await fresh.disconnect()
    const later = await raw(t)
    t.equal((await later.connect(persistent(clientId))).sessionPresent, false, 'the clean session was not stored')
    await publisher.publish(topic, 'later', { qos: 1 })
    t.same(await later.messages(300), [], 'its subscription is gone with it')
  })

  t.test('[MQTT-3.1.2-7] retained messages are not part of the session: they outlive it', async (t) => {
    const topic = `outlive/${uniqueId()}`
    const clientId = uniqueId('ret')
    const publisher = await connected(t, { clientId, clean: true })
    await publisher.publish(topic, 'still here', { qos: 1, retain: true })
    await publisher.disconnect()
    const cleaner = await connected(t, { clientId, clean: true }) // the same id, a new session
    await cleaner.disconnect()
    const subscriber = await connected(t)
    await subscriber.subscribe({ [topic]: 1 })
    t.same((await subscriber.nextMessages(1)).map((m) => m.payload.toString()), ['still here'])
  })

  t.test('[MQTT-3.1.3-2] the client identifier identifies the session state', async (t) => {
    const base = `ids/${uniqueId()}`
    const a = uniqueId('a')
    const b = uniqueId('b')
    const clientA = await connected(t, persistent(a))
    await clientA.subscribe({ [`${base}/a`]: 1 })
    await clientA.disconnect()
    const clientB = await connected(t, persistent(b))
    await clientB.subscribe({ [`${base}/b`]: 1 })
    await clientB.disconnect()
    const publisher = await connected(t)
    await publisher.publish(`${base}/a`, 'for a', { qos: 1 })
    await publisher.publish(`${base}/b`, 'for b', { qos: 1 })
    const backB = await connected(t, persistent(b))
    t.same((await backB.messages(300)).map((m) => m.payload.toString()), ['for b'])
    const backA = await connected(t, persistent(a))
    t.same((await backA.messages(300)).map((m) => m.payload.toString()), ['for a'])
  })

  t.test('[MQTT-3.2.2-1] CleanSession 1: Session Present 0, even when a session was stored', async (t) => {
    const clientId = uniqueId('sp1')
    const owner = await connected(t, persistent(clientId))
    await owner.subscribe({ 'sp1/x': 1 })
    await owner.disconnect()
    const client = await raw(t)
    const connack = await client.connect({ clientId, clean: true })
    t.match(connack, { returnCode: 0, sessionPresent: false })
  })

  t.test('[MQTT-3.2.2-2] CleanSession 0 with a stored session: Session Present 1, also for a session without subscriptions', async (t) => {
    const withSubs = uniqueId('subs')
    const owner = await connected(t, persistent(withSubs))
    await owner.subscribe({ 'sp2/x': 1 })
    await owner.disconnect()
    const back = await raw(t)
    t.match(await back.connect(persistent(withSubs)), { returnCode: 0, sessionPresent: true }, 'a session with a subscription')
    const empty = uniqueId('empty')
    const first = await raw(t)
    t.match(await first.connect(persistent(empty)), { sessionPresent: false })
    await first.disconnect()
    const second = await raw(t)
    t.match(await second.connect(persistent(empty)), { returnCode: 0, sessionPresent: true }, 'a session without subscriptions is a session too')
    // a takeover while connected resumes the same session
    const third = await raw(t)
    t.match(await third.connect(persistent(empty)), { sessionPresent: true }, 'taken over while connected')
    if (target.cluster) {
      const other = await startBroker(t, { redis: broker.config.redis })
      const fourth = await raw(t, other)
      t.match(await fourth.connect(persistent(empty)), { sessionPresent: true }, 'resumed on another node')
    }
  })

  t.test('[MQTT-3.2.2-3] CleanSession 0 without a stored session: Session Present 0', async (t) => {
    const client = await raw(t)
    t.match(await client.connect(persistent(uniqueId('new'))), { returnCode: 0, sessionPresent: false })
    // unsubscribing from everything does not end the session
    await client.subscribe({ 'sp3/x': 1 })
    await client.unsubscribe(['sp3/x'])
    t.pass('subscribed and unsubscribed')
  })

  t.test('[MQTT-3.3.1-1] the server sets DUP 1 when it re-delivers a PUBLISH, and 0 on its first delivery', async (t) => {
    const clientId = uniqueId('dup')
    const topic = `redeliver/${uniqueId()}`
    const client = await connected(t, persistent(clientId))
    await client.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'q1', { qos: 1 })
    await publisher.publish(topic, 'q2', { qos: 2 })
    const first = await client.nextMessages(2, { ack: false })
    t.same(first.map((m) => m.dup), [false, false], 'first delivery: DUP 0')
    client.destroy()
    await brokerDropped(broker, clientId)
    await publisher.publish(topic, 'queued', { qos: 1 })
    const back = await connected(t, persistent(clientId))
    const again = await back.nextMessages(3, { ack: false })
    t.same(again.map((m) => [m.payload.toString(), m.dup, m.messageId]), [['q1', true, first[0]?.messageId], ['q2', true, first[1]?.messageId], ['queued', false, again[2]?.messageId]],
      're-delivered: DUP 1, same packet identifiers; never sent before: DUP 0')
    for (const m of again) await back.ack(m)
  })

  t.test('[MQTT-4.1.0-1] the server keeps the session state for the whole session', async (t) => {
    const clientId = uniqueId('keep')
    const topic = `keep/${uniqueId()}`
    let client = await connected(t, persistent(clientId))
    await client.subscribe({ [topic]: 1 })
    const publisher = await connected(t)
    for (let round = 0; round < 3; round++) {
      await client.disconnect()
      await publisher.publish(topic, `round ${round}`, { qos: 1 })
      client = await raw(t)
      t.match(await client.connect(persistent(clientId)), { sessionPresent: true })
      t.same((await client.nextMessages(1)).map((m) => m.payload.toString()), [`round ${round}`])
    }
    await client.disconnect()
    if (target.cluster) {
      // the state is in Redis: it outlives the node that held the connection
      const node = await startBroker(t, { redis: broker.config.redis })
      const onNode = await connected(t, persistent(clientId), node)
      await onNode.disconnect()
      await node.close()
      await publisher.publish(topic, 'while its node is gone', { qos: 1 })
      const back = await raw(t)
      t.match(await back.connect(persistent(clientId)), { sessionPresent: true })
      t.same((await back.nextMessages(1)).map((m) => m.payload.toString()), ['while its node is gone'])
    }
  })

  t.test('[MQTT-4.1.0-2] a session lasts at least as long as its network connection', async (t) => {
    const topic = `lasts/${uniqueId()}`
    const client = await connected(t, { clean: true })
    await client.subscribe({ [topic]: 1 })
    const publisher = await connected(t)
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      await publisher.publish(topic, String(i), { qos: 1 })
      t.same((await client.nextMessages(1)).map((m) => m.payload.toString()), [String(i)])
    }
  })

  t.test('[MQTT-4.4.0-1] on reconnect with CleanSession 0, unacknowledged PUBLISH and PUBREL packets are re-sent with their packet identifiers', async (t) => {
    const clientId = uniqueId('resend')
    const topic = `resend/${uniqueId()}`
    const client = await connected(t, persistent(clientId))
    await client.subscribe({ [topic]: 2 })
    const publisher = await connected(t)
    await publisher.publish(topic, 'unacked q1', { qos: 1 })
    await publisher.publish(topic, 'half-done q2', { qos: 2 })
    const [q1, q2] = await client.nextMessages(2, { ack: false })
    client.send({ cmd: 'pubrec', messageId: q2?.messageId as number })
    await client.expectAck('pubrel', q2?.messageId as number)
    client.destroy()
    const back = await connected(t, persistent(clientId))
    const resent = await back.drain(400)
    t.same(resent.map((p) => [p.cmd, p.messageId]).sort(), [['publish', q1?.messageId], ['pubrel', q2?.messageId]].sort())
  })

  t.test('[MQTT-4.4.0-1] each session re-sends a message with its own packet identifier, when several sessions got it', async (t) => {
    const topic = `own-ids/${uniqueId()}`
    const ids = [uniqueId('a'), uniqueId('b')]
    const clients = [await connected(t, persistent(ids[0] as string)), await connected(t, persistent(ids[1] as string))]
    for (const client of clients) await client.subscribe({ [topic]: 1 })
    const a = clients[0]
    const b = clients[1]
    if (a === undefined || b === undefined) throw new Error('two clients')
    // b's identifiers are ahead of a's, so the two sessions number the message differently
    const publisher = await connected(t)
    await publisher.publish(`${topic}-other`, 'x', { qos: 1 })
    await b.subscribe({ [`${topic}/warm`]: 1 })
    for (let i = 0; i < 3; i++) await publisher.publish(`${topic}/warm`, 'warm', { qos: 1 })
    await b.nextMessages(3)
    await publisher.publish(topic, 'both', { qos: 1 })
    const [ma] = await a.nextMessages(1, { ack: false })
    const [mb] = await b.nextMessages(1, { ack: false })
    t.not(ma?.messageId, mb?.messageId, 'different identifiers in the two sessions')
    a.destroy()
    b.destroy()
    await brokerDropped(broker, ids[0] as string)
    await brokerDropped(broker, ids[1] as string)
    for (const [i, first] of [[0, ma], [1, mb]] as const) {
      const back = await connected(t, persistent(ids[i] as string))
      const [again] = await back.nextMessages(1)
      t.match(again, { payload: Buffer.from('both'), dup: true, messageId: first?.messageId }, `session ${i}: its own identifier`)
      await back.disconnect()
    }
  })

  t.test('[MQTT-4.5.0-1] a message the server takes ownership of is added to the session of every matching subscriber, connected or not', async (t) => {
    const topic = `own/${uniqueId()}`
    const online = await connected(t)
    await online.subscribe({ [topic]: 1 })
    const offlineId = uniqueId('off')
    const offline = await connected(t, persistent(offlineId))
    await offline.subscribe({ [topic.replace(/[^/]+$/, '+')]: 1 })
    await offline.disconnect()
    const publisher = await connected(t)
    await publisher.publish(topic, 'owned', { qos: 1 })
    t.same((await online.nextMessages(1)).map((m) => m.payload.toString()), ['owned'])
    const back = await connected(t, persistent(offlineId))
    t.same((await back.nextMessages(1)).map((m) => m.payload.toString()), ['owned'])
  })

  t.test('[MQTT-4.6.0-1] re-sent PUBLISH packets go out in the order of the originals', async (t) => {
    const clientId = uniqueId('order')
    const topic = `resend-order/${uniqueId()}`
    const client = await connected(t, persistent(clientId))
    await client.subscribe({ [topic]: 1 })
    const publisher = await connected(t)
    for (let i = 0; i < 10; i++) await publisher.publish(topic, String(i), { qos: 1 })
    const sent = await client.nextMessages(10, { ack: false })
    client.destroy()
    const back = await connected(t, persistent(clientId))
    const resent = await back.nextMessages(10)
    t.same(resent.map((m) => m.payload.toString()), sent.map((m) => m.payload.toString()))
    t.same(resent.map((m) => m.messageId), sent.map((m) => m.messageId))
  })

  t.test('[MQTT-3.2.0-1] when a session resumes with queued messages, the CONNACK still comes first', async (t) => {
    const clientId = uniqueId('first')
    const topic = `first/${uniqueId()}`
    const client = await connected(t, persistent(clientId))
    await client.subscribe({ [topic]: 1 })
    await client.disconnect()
    const publisher = await connected(t)
    for (let i = 0; i < 20; i++) await publisher.publish(topic, String(i), { qos: 1 })
    const back = await raw(t)
    back.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: false, keepalive: 0 })
    const packets = await back.drain(400)
    t.equal(packets[0]?.cmd, 'connack')
    t.equal(packets.filter((p) => p.cmd === 'publish').length, 20)
  })

  t.test('[MQTT-3.8.4-6] [MQTT-3.3.5-1] messages stored for an offline session are delivered once, at the granted QoS', async (t) => {
    const clientId = uniqueId('granted')
    const base = `granted/${uniqueId()}`
    const client = await connected(t, persistent(clientId))
    t.same(await client.subscribe({ [`${base}/+`]: 1, [`${base}/#`]: 1, [`${base}/exact`]: 1 }), [1, 1, 1])
    await client.disconnect()
    const publisher = await connected(t)
    await publisher.publish(`${base}/exact`, 'q2 on q1 subscriptions', { qos: 2 })
    const back = await connected(t, persistent(clientId))
    const messages = await back.messages(400)
    t.same(messages.map((m) => [m.payload.toString(), m.qos]), [['q2 on q1 subscriptions', 1]])
  })

  t.test('[MQTT-3.8.4-5] a CleanSession 0 session keeps a subscription as granted, and none that failed', async (t) => {
    const limited = await target.broker(t, { acl: { roles: { anonymous: { pub: ['#'], sub: ['#'], limits: { maxSubscriptions: 1, maxQos: 1 } } } } })
    const clientId = uniqueId('granted')
    const base = `kept/${uniqueId()}`
    const client = await connected(t, persistent(clientId), limited)
    t.same(await client.subscribe({ [`${base}/a`]: 2, [`${base}/b`]: 1 }), [1, 0x80], 'QoS 2 granted as 1; the second over the limit failed')
    await client.disconnect()
    // published by the broker itself: the role's maxQos would refuse a QoS 2 publish
    for (const [level, qos] of [['a', 2], ['b', 1]] as const) {
      await new Promise<void>((resolve, reject) => limited.aedes.publish({ cmd: 'publish', topic: `${base}/${level}`, payload: Buffer.from(level), qos, retain: false, dup: false }, (err) => err ? reject(err) : resolve()))
    }
    const back = await connected(t, persistent(clientId), limited)
    t.same((await back.messages(400)).map((m) => [m.payload.toString(), m.qos]), [['a', 1]], 'queued only for the granted subscription, at its QoS')
  })

  t.test('[MQTT-3.3.5-1] overlapping subscriptions of a connected CleanSession 0 client: one copy at the highest QoS, and the session stays intact', async (t) => {
    const clientId = uniqueId('overlap')
    const base = `p-overlap/${uniqueId()}`
    const client = await connected(t, persistent(clientId))
    await client.subscribe({ [`${base}/#`]: 1, [`${base}/x`]: 2 })
    const publisher = await connected(t)
    await publisher.publish(`${base}/x`, 'one', { qos: 2 })
    await publisher.publish(`${base}/x`, 'two', { qos: 1 })
    const messages = await client.messages(400)
    t.same(messages.map((m) => [m.payload.toString(), m.qos]), [['one', 2], ['two', 1]])
    await stillConnected(t, client, 'after overlapping deliveries')
    await client.disconnect()
    const back = await connected(t, persistent(clientId))
    t.same(await back.messages(300), [], 'nothing left over to re-deliver')
  })

  t.test('[MQTT-3.3.1-3] a message queued for two sessions is a first delivery (DUP 0) for each', async (t) => {
    const topic = `two/${uniqueId()}`
    const online = uniqueId('on')
    const offline = uniqueId('off')
    const a = await connected(t, persistent(online))
    await a.subscribe({ [topic]: 1 })
    const b = await connected(t, persistent(offline))
    await b.subscribe({ [topic]: 1 })
    await b.disconnect()
    const publisher = await connected(t)
    await publisher.publish(topic, 'shared', { qos: 1 })
    const [live] = await a.nextMessages(1)
    t.equal(live?.dup, false)
    const back = await connected(t, persistent(offline))
    const [queued] = await back.nextMessages(1)
    t.equal(queued?.dup, false, 'not a re-delivery for the second session')
  })
})
