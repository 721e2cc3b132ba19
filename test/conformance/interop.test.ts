// Interop: the same end-to-end scenarios with real clients: MQTT.js, mosquitto_pub and
// mosquitto_sub (Debian's build has no WebSocket support, so TCP only), and Paho Python
// (python3-paho-mqtt), over TCP and WebSocket, against a single node and a cluster node.
import type { MqttClient } from 'mqtt'
import type { BrokerHandle } from '../../src/server.js'
import { brokerUrl, closeClient, collect, openUrl, waitFor } from '../helpers/broker.js'
import { exitedOk, handled, mosquittoSub, pahoScript, python, run, waitMs, type Subscription } from './interop-clients.js'
import type { RawClient } from './raw-client.js'
import { uniqueId } from './raw-client.js'
import { forEachTarget, type Tap } from './targets.js'

interface Message { topic: string, qos: number, retain: boolean, payload: string }

interface Driver {
  name: string
  subscribe: (t: Tap, broker: BrokerHandle, topic: string, count: number, options?: { clientId?: string, persistent?: boolean }) => Promise<Subscription<Message>>
  publish: (t: Tap, broker: BrokerHandle, topic: string, payload: string, qos: 0 | 1 | 2, retain: boolean) => Promise<void>
  /** Connects with a will on `topic`; resolves once connected, with a function that kills the client. */
  withWill: (t: Tap, broker: BrokerHandle, topic: string, payload: string) => Promise<() => void>
}

/** Lines of "topic TAB qos TAB retain TAB payload" as messages. */
function parseLines (lines: string[]): Message[] {
  return lines.filter((l) => l.split('\t').length === 4).map((l) => {
    const [topic, qos, retain, payload] = l.split('\t') as [string, string, string, string]
    return { topic, qos: Number(qos), retain: retain === '1' || retain === 'true', payload }
  })
}

function mqttjs (transport: 'tcp' | 'ws'): Driver {
  const open = async (t: Tap, broker: BrokerHandle, options = {}, beforeConnack?: (client: MqttClient) => void): Promise<MqttClient> => (await openUrl(t, brokerUrl(broker, transport), options, beforeConnack)).client
  return {
    name: `MQTT.js over ${transport === 'tcp' ? 'TCP' : 'WebSocket'}`,
    async subscribe (t, broker, topic, count, { clientId, persistent = false } = {}) {
      // listening before the CONNACK: a resumed session's messages may arrive with it
      let got: ReturnType<typeof collect> = []
      const client = await open(t, broker, { ...(clientId === undefined ? {} : { clientId }), clean: !persistent }, (c) => { got = collect(c) })
      const ready = client.subscribeAsync(topic, { qos: 2 }).then(() => {})
      const messages = waitFor(() => got.length >= count, `${count} messages`, waitMs).then(() => got.map((m) => ({ topic: m.topic, qos: m.packet.qos, retain: m.packet.retain, payload: m.payload })))
      return handled({ ready, messages, stop: async () => await closeClient(client, false) })
    },
    async publish (t, broker, topic, payload, qos, retain) {
      const client = await open(t, broker)
      await client.publishAsync(topic, payload, { qos, retain })
      await closeClient(client, false)
    },
    async withWill (t, broker, topic, payload) {
      const client = await open(t, broker, { will: { topic, payload: Buffer.from(payload), qos: 1, retain: false } })
      return () => client.stream.destroy()
    }
  }
}

const mosquitto: Driver = {
  name: 'mosquitto_pub/mosquitto_sub over TCP',
  async subscribe (t, broker, topic, count, { clientId, persistent = false } = {}) {
    const args = ['-h', '127.0.0.1', '-p', String(broker.addresses.mqtt.port), '-t', topic, '-q', '2', '-C', String(count), '-W', String(waitMs / 1000), '-F', '%t\t%q\t%r\t%p', '-d']
    if (clientId !== undefined) args.push('-i', clientId)
    if (persistent) args.push('-c')
    const proc = run(t, ...mosquittoSub(args))
    // -d: debug lines, among them the SUBACK's
    const ready = proc.line((l) => l.includes('SUBACK')).then(() => {})
    const messages = exitedOk('mosquitto_sub', proc.exited).then(() => parseLines(proc.lines))
    return handled({ ready, messages, stop: async () => { proc.kill() } })
  },
  async publish (t, broker, topic, payload, qos, retain) {
    const args = ['-h', '127.0.0.1', '-p', String(broker.addresses.mqtt.port), '-t', topic, '-m', payload, '-q', String(qos)]
    if (retain) args.push('-r')
    await exitedOk('mosquitto_pub', run(t, 'mosquitto_pub', args).exited)
  },
  async withWill (t, broker, topic, payload) {
    // a subscriber that stays connected, with a will
    const proc = run(t, ...mosquittoSub(['-h', '127.0.0.1', '-p', String(broker.addresses.mqtt.port), '-t', `idle/${uniqueId()}`, '-d', '--will-topic', topic, '--will-payload', payload, '--will-qos', '1']))
    await proc.line((l) => l.includes('SUBACK'))
    return proc.kill
  }
}

function paho (transport: 'tcp' | 'websockets'): Driver {
  const base = (broker: BrokerHandle): string[] => transport === 'tcp'
    ? ['--port', String(broker.addresses.mqtt.port)]
    : ['--port', String(broker.addresses.http.port), '--transport', 'websockets', '--path', broker.config.http.websocketPath]
  return {
    name: `Paho Python over ${transport === 'tcp' ? 'TCP' : 'WebSocket'}`,
    async subscribe (t, broker, topic, count, { clientId, persistent = false } = {}) {
      const args = [pahoScript, 'sub', ...base(broker), '--topic', topic, '--qos', '2', '--count', String(count), '--timeout', String(waitMs / 1000)]
      if (clientId !== undefined) args.push('--client-id', clientId)
      if (persistent) args.push('--persistent')
      const proc = run(t, python, args)
      const ready = proc.line((l) => l.startsWith('SUBSCRIBED')).then(() => {})
      const messages = exitedOk('paho sub', proc.exited).then(() => parseLines(proc.lines))
      return handled({ ready, messages, stop: async () => { proc.kill() } })
    },
    async publish (t, broker, topic, payload, qos, retain) {
      const args = [pahoScript, 'pub', ...base(broker), '--topic', topic, '--qos', String(qos), '--message', payload]
      if (retain) args.push('--retain')
      await exitedOk('paho pub', run(t, python, args).exited)
    },
    async withWill (t, broker, topic, payload) {
      const proc = run(t, python, [pahoScript, 'will', ...base(broker), '--topic', topic, '--qos', '1', '--message', payload, '--timeout', '20'])
      await proc.line((l) => l.startsWith('CONNECTED'))
      return proc.kill
    }
  }
}

const drivers = [mqttjs('tcp'), mqttjs('ws'), mosquitto, paho('tcp'), paho('websockets')]

const brief = (messages: Message[]): string[] => messages.map((m) => `${m.topic.split('/').pop() ?? ''} q${m.qos} r${m.retain ? 1 : 0} ${m.payload}`).sort()

async function referenceSubscriber (t: Tap, connected: (t: Tap) => Promise<RawClient>, filter: string): Promise<RawClient> {
  const client = await connected(t)
  await client.subscribe({ [filter]: 2 })
  return client
}

forEachTarget((t, { broker, connected }) => {
  for (const driver of drivers) {
    t.test(`${driver.name}: subscribes and receives a retained message, then QoS 1 and QoS 2 messages`, async (t) => {
      const base = `interop/${uniqueId()}`
      const publisher = await connected(t)
      await publisher.publish(`${base}/retained`, 'kept', { qos: 1, retain: true })
      const subscription = await driver.subscribe(t, broker, `${base}/#`, 3)
      await subscription.ready
      await publisher.publish(`${base}/one`, 'at least once', { qos: 1 })
      await publisher.publish(`${base}/two`, 'exactly once', { qos: 2 })
      t.same(brief(await subscription.messages), ['one q1 r0 at least once', 'retained q1 r1 kept', 'two q2 r0 exactly once'])
    })

    t.test(`${driver.name}: publishes at QoS 0, 1 and 2, and retains`, async (t) => {
      const base = `interop/${uniqueId()}`
      const subscriber = await referenceSubscriber(t, connected, `${base}/#`)
      await driver.publish(t, broker, `${base}/q0`, 'zero', 0, false)
      await driver.publish(t, broker, `${base}/q1`, 'one', 1, false)
      await driver.publish(t, broker, `${base}/q2`, 'two', 2, true)
      const got = await subscriber.nextMessages(3, { ms: waitMs })
      t.same(brief(got.map((m) => ({ topic: m.topic, qos: m.qos, retain: m.retain, payload: m.payload.toString() }))), ['q0 q0 r0 zero', 'q1 q1 r0 one', 'q2 q2 r0 two'])
      const late = await connected(t)
      await late.subscribe({ [`${base}/q2`]: 2 })
      t.match((await late.nextMessages(1))[0], { payload: Buffer.from('two'), retain: true }, 'the retained message is stored')
    })

    t.test(`${driver.name}: resumes a persistent session with the messages queued meanwhile`, async (t) => {
      const base = `interop/${uniqueId()}`
      const clientId = uniqueId('interop')
      const publisher = await connected(t)
      const first = await driver.subscribe(t, broker, `${base}/#`, 1, { clientId, persistent: true })
      await first.ready
      await publisher.publish(`${base}/first`, 'first', { qos: 1 })
      t.same(brief(await first.messages), ['first q1 r0 first'])
      await first.stop()
      await waitFor(() => (broker.aedes as unknown as { clients: Record<string, unknown> }).clients[clientId] === undefined, 'the first connection to end', waitMs)
      await publisher.publish(`${base}/queued1`, 'queued 1', { qos: 1 })
      await publisher.publish(`${base}/queued2`, 'queued 2', { qos: 2 })
      const second = await driver.subscribe(t, broker, `${base}/#`, 2, { clientId, persistent: true })
      t.same(brief(await second.messages), ['queued1 q1 r0 queued 1', 'queued2 q2 r0 queued 2'])
    })

    t.test(`${driver.name}: its will is published when it dies`, async (t) => {
      const topic = `interop/${uniqueId()}/will`
      const subscriber = await referenceSubscriber(t, connected, topic)
      const kill = await driver.withWill(t, broker, topic, 'client died')
      kill()
      const [will] = await subscriber.nextMessages(1, { ms: waitMs })
      t.equal(will?.payload.toString(), 'client died')
    })
  }
})
