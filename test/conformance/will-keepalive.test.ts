// MQTT 3.1.1 conformance, will messages, keep alive and PINGREQ, DISCONNECT (sections
// 3.1.2.5-3.1.2.10, 3.12, 3.14), over raw TCP, against a single node and a cluster node.
import { closedSilently } from './expect.js'
import { rawPacket, uniqueId } from './raw-client.js'
import { forEachTarget } from './targets.js'

forEachTarget((t, { target, broker, raw, connected }) => {
  const will = (topic: string, payload = 'gone', options: { qos?: 0 | 1 | 2, retain?: boolean } = {}): { will: { topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean } } =>
    ({ will: { topic, payload: Buffer.from(payload), qos: options.qos ?? 0, retain: options.retain ?? false } })

  /** The will the store holds for `clientId`, if any. */
  async function storedWill (clientId: string): Promise<unknown> {
    const persistence = (broker.aedes as unknown as { persistence: { getWill: (client: { id: string }) => Promise<unknown> } }).persistence
    return await persistence.getWill({ id: clientId }) ?? null
  }

  /** Whether the store drops the will of `clientId` within a bounded time. */
  async function willRemoved (clientId: string, ms = 2000): Promise<boolean> {
    const deadline = Date.now() + ms
    while (await storedWill(clientId) !== null) {
      if (Date.now() > deadline) return false
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    return true
  }

  t.test('[MQTT-3.1.2-8] the will is stored on CONNECT and published when the connection closes without DISCONNECT', async (t) => {
    const topic = `will/${uniqueId()}`
    const watcher = await connected(t)
    await watcher.subscribe({ [topic]: 2 })
    const causes = {
      'the network connection dropped': (c: Awaited<ReturnType<typeof raw>>) => c.destroy(),
      'a protocol violation closed it': (c: Awaited<ReturnType<typeof raw>>) => c.send(rawPacket(0x20, [0, 0]))
    }
    for (const [cause, close] of Object.entries(causes)) {
      const clientId = uniqueId('w')
      const client = await connected(t, { clientId, ...will(topic, cause, { qos: 1 }) })
      t.ok(await storedWill(clientId), `${cause}: the will is stored while connected`)
      close(client)
      const [message] = await watcher.nextMessages(1)
      t.match(message, { payload: Buffer.from(cause), qos: 1 }, `${cause}: published, at the will QoS`)
    }
  })

  t.test('[MQTT-3.1.2-10] the will is removed once published, or when DISCONNECT is received', async (t) => {
    const topic = `will-removed/${uniqueId()}`
    const watcher = await connected(t)
    await watcher.subscribe({ [topic]: 0 })
    const published = uniqueId('pub')
    const client = await connected(t, { clientId: published, ...will(topic) })
    client.destroy()
    await watcher.nextMessages(1)
    t.ok(await willRemoved(published), 'removed after it was published')
    const disconnected = uniqueId('disc')
    const polite = await connected(t, { clientId: disconnected, ...will(topic) })
    await polite.disconnect()
    t.ok(await willRemoved(disconnected), 'removed on DISCONNECT')
    t.same(await watcher.messages(300), [], 'published once, and not on DISCONNECT')
  })

  t.test('[MQTT-3.1.2-12] with Will Flag 0 no will message is published when the connection ends', async (t) => {
    const quiet = await target.broker(t)
    const watcher = await connected(t, {}, quiet)
    await watcher.subscribe({ '#': 2 })
    const client = await connected(t, {}, quiet)
    client.destroy()
    t.same(await watcher.messages(400), [], 'nothing published')
  })

  t.test('[MQTT-3.1.2-16] Will Retain 0: the will is published as a non-retained message', async (t) => {
    const topic = `will-r0/${uniqueId()}`
    const watcher = await connected(t)
    await watcher.subscribe({ [topic]: 1 })
    const client = await connected(t, will(topic, 'not retained', { retain: false }))
    client.destroy()
    t.match((await watcher.nextMessages(1))[0], { payload: Buffer.from('not retained'), retain: false })
    const late = await connected(t)
    await late.subscribe({ [topic]: 1 })
    t.same(await late.messages(300), [], 'not kept as a retained message')
  })

  t.test('[MQTT-3.1.2-17] Will Retain 1: the will is published as a retained message', async (t) => {
    const topic = `will-r1/${uniqueId()}`
    const client = await connected(t, will(topic, 'retained will', { retain: true, qos: 1 }))
    client.destroy()
    const late = await connected(t)
    const deadline = Date.now() + 2000
    let got: Awaited<ReturnType<typeof late.messages>> = []
    while (got.length === 0 && Date.now() < deadline) {
      await late.subscribe({ [topic]: 1 })
      got = await late.messages(150)
    }
    t.match(got[0], { payload: Buffer.from('retained will'), retain: true }, 'a later subscriber gets it as a retained message')
  })

  t.test('[MQTT-3.14.4-3] on DISCONNECT the will is discarded without being published', async (t) => {
    const topic = `will-disc/${uniqueId()}`
    const watcher = await connected(t)
    await watcher.subscribe({ [topic]: 1 })
    const client = await connected(t, will(topic, 'must not appear', { qos: 1 }))
    client.send({ cmd: 'disconnect' })
    t.ok(await client.closedWithin(), 'the server closes the connection')
    t.same(await watcher.messages(400), [], 'no will')
  })

  t.test('[MQTT-3.1.2-24] keep alive: a client silent for 1.5 times its keep alive is disconnected as if the network failed', async (t) => {
    const topic = `keepalive/${uniqueId()}`
    const watcher = await connected(t)
    await watcher.subscribe({ [topic]: 0 })
    const silent = await connected(t, { keepalive: 1, ...will(topic, 'timed out') })
    const started = Date.now()
    t.ok(await silent.closedWithin(3000), 'disconnected')
    const elapsed = Date.now() - started
    t.ok(elapsed >= 1400 && elapsed <= 2500, `after about 1.5 s (${elapsed} ms)`)
    t.match((await watcher.nextMessages(1))[0], { payload: Buffer.from('timed out') }, 'as if the network failed: the will is published')
    // a client that sends a packet within the keep alive stays connected
    const pinging = await connected(t, { keepalive: 1 })
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 900))
      pinging.send({ cmd: 'pingreq' })
      t.equal((await pinging.expect('pingresp')).cmd, 'pingresp')
    }
    t.notOk(pinging.closed, 'still connected after 2.7 s with a keep alive of 1 s')
  })

  t.test('[MQTT-3.12.4-1] a PINGREQ is answered with a PINGRESP', async (t) => {
    const client = await connected(t)
    for (let i = 0; i < 3; i++) {
      client.send({ cmd: 'pingreq' })
      t.equal((await client.next()).cmd, 'pingresp')
    }
  })

  t.test('[MQTT-3.14.4-3] a DISCONNECT is the last packet the server processes: the server closes the connection', async (t) => {
    const topic = `after-disc/${uniqueId()}`
    const watcher = await connected(t)
    await watcher.subscribe({ [topic]: 1 })
    const client = await raw(t)
    await client.connect()
    client.send(Buffer.concat([rawPacket(0xe0), rawPacket(0x30, [0, topic.length], Buffer.from(topic), Buffer.from('late'))]))
    await closedSilently(t, client, 'after DISCONNECT')
    t.same(await watcher.messages(300), [], 'what followed the DISCONNECT was not processed')
  })
})
