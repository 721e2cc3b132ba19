// MQTT 5.0 conformance, the will (3.1.2.5, 3.1.3.2 with the Will Delay Interval) and the client's
// DISCONNECT (3.14): raw MQTT 5.0 over TCP, against a single node and a cluster node.
import type { IConnectPacket } from 'mqtt-packet'
import { brokerDropped } from '../expect.js'
import { uniqueId } from '../raw-client.js'
import { forEachTarget } from '../targets.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

forEachTarget((t, { broker, raw, connected }) => {
  /** A subscriber to `topic`, and a will on it for a new client. */
  async function willSetup (t: Parameters<typeof connected>[0], will: Partial<NonNullable<IConnectPacket['will']>> = {}, properties: IConnectPacket['properties'] = {}): Promise<{ topic: string, clientId: string, watcher: Awaited<ReturnType<typeof connected>>, client: Awaited<ReturnType<typeof connected>> }> {
    const topic = `will/${uniqueId()}`
    const clientId = uniqueId('will')
    const watcher = await connected(t)
    await watcher.subscribeWith([{ topic, qos: 1, rap: true }])
    const client = await connected(t, { clientId, will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false, ...will }, properties })
    return { topic, clientId, watcher, client }
  }

  t.test('[MQTT-3.1.2-7] [MQTT-3.1.2-8] [MQTT-3.1.2-14] [MQTT-3.1.3-10] the will is stored and published when the connection closes without DISCONNECT: Will Retain 0 as a non-retained message, with its properties, User Properties in order, without the Will Delay Interval', async (t) => {
    const properties = { contentType: 'text/plain', responseTopic: 'back/here', correlationData: Buffer.from([7, 0, 7]), userProperties: { zulu: ['1', '3'], alpha: '2' }, willDelayInterval: 0 }
    const { watcher, client } = await willSetup(t, { properties })
    client.destroy()
    const [will] = await watcher.nextMessages(1)
    t.equal(will?.payload.toString(), 'gone')
    t.equal(will?.retain, false, 'not retained')
    t.equal(will?.properties?.contentType, 'text/plain')
    t.equal(will?.properties?.responseTopic, 'back/here')
    t.same(will?.properties?.correlationData, Buffer.from([7, 0, 7]))
    t.same(Object.entries(will?.properties?.userProperties ?? {}), [['zulu', ['1', '3']], ['alpha', '2']], 'User Properties in their order')
    t.equal((will?.properties as Record<string, unknown> | undefined)?.willDelayInterval, undefined, 'no Will Delay Interval')
  })

  t.test('[MQTT-3.1.2-15] Will Retain 1: the will is published as a retained message', async (t) => {
    const { topic, watcher, client } = await willSetup(t, { retain: true })
    client.destroy()
    t.same((await watcher.nextMessages(1)).map((m) => m.retain), [true], 'retained (Retain As Published)')
    const late = await connected(t)
    await late.subscribe({ [topic]: 1 })
    t.same((await late.nextMessages(1)).map((m) => m.payload.toString()), ['gone'], 'kept as the retained message')
    const cleaner = await connected(t)
    await cleaner.publish(topic, '', { qos: 1, retain: true })
  })

  t.test('[MQTT-3.1.2-10] [MQTT-3.14.4-3] [MQTT-3.14.2-1] DISCONNECT 0x00 discards the will; DISCONNECT 0x04 (with will) publishes it', async (t) => {
    const normal = await willSetup(t)
    normal.client.send({ cmd: 'disconnect', reasonCode: 0 })
    t.ok(await normal.client.closedWithin(), 'closed')
    t.same(await normal.watcher.messages(500), [], 'no will after DISCONNECT 0x00')
    const withWill = await willSetup(t)
    withWill.client.send({ cmd: 'disconnect', reasonCode: 0x04 })
    t.same((await withWill.watcher.nextMessages(1)).map((m) => m.payload.toString()), ['gone'], 'the will after DISCONNECT 0x04')
  })

  t.test('[MQTT-3.1.3-9] [MQTT-3.1.2-8] a Will Delay Interval: a new connection before it passes cancels the will; without one the will comes once it has passed, or when the session ends first', async (t) => {
    const delayed = { properties: { willDelayInterval: 1 } }
    const session = { sessionExpiryInterval: 30 }
    const cancelled = await willSetup(t, delayed, session)
    cancelled.client.destroy()
    await brokerDropped(broker, cancelled.clientId)
    await connected(t, { clientId: cancelled.clientId, clean: false, properties: session })
    await sleep(1500)
    t.same(await cancelled.watcher.messages(200), [], 'reconnected within the delay: no will')

    const waited = await willSetup(t, delayed, session)
    const dropped = Date.now()
    waited.client.destroy()
    const [will] = await waited.watcher.nextMessages(1, { ms: 4000 })
    t.equal(will?.payload.toString(), 'gone', 'the will once the delay passed')
    t.ok(Date.now() - dropped >= 900, `not before the delay (${Date.now() - dropped} ms)`)

    const sessionFirst = await willSetup(t, { properties: { willDelayInterval: 30 } }, { sessionExpiryInterval: 1 })
    const droppedAt = Date.now()
    sessionFirst.client.destroy()
    await sessionFirst.watcher.nextMessages(1, { ms: 4000 })
    t.ok(Date.now() - droppedAt < 4000, 'the will when the session ended, before its 30 s delay')
  })

  t.test('[MQTT-3.1.2-23] [MQTT-4.1.0-2] the Session Expiry Interval of the client\'s DISCONNECT replaces the CONNECT\'s: 0 ends the session; a non-zero one after a CONNECT with 0 is refused', async (t) => {
    const ended = uniqueId('disc')
    const first = await connected(t, { clientId: ended, clean: false, properties: { sessionExpiryInterval: 60 } })
    await first.subscribe({ [`disc/${uniqueId()}`]: 1 })
    first.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } })
    t.ok(await first.closedWithin(), 'closed')
    await brokerDropped(broker, ended)
    await sleep(300)
    const again = await raw(t)
    t.equal((await again.connect({ clientId: ended, clean: false, properties: { sessionExpiryInterval: 60 } })).sessionPresent, false, 'DISCONNECT with 0: the session ended')

    const zero = uniqueId('disc')
    const second = await connected(t, { clientId: zero, clean: false, properties: { sessionExpiryInterval: 0 } })
    await second.subscribe({ [`disc/${uniqueId()}`]: 1 })
    second.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } })
    t.ok(await second.closedWithin(), 'closed')
    await brokerDropped(broker, zero)
    await sleep(300)
    const later = await raw(t)
    t.equal((await later.connect({ clientId: zero, clean: false })).sessionPresent, false, 'a CONNECT with 0 cannot be raised by DISCONNECT (a Protocol Error): no session kept')
  })
}, { level: 5 })
