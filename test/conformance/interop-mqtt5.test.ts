// Interop, MQTT 5: real v5 clients — MQTT.js (protocolVersion 5), Paho Python (Debian's
// python3-paho-mqtt, MQTTv5) and mosquitto_pub/mosquitto_sub -V mqttv5 (TCP only: Debian's
// build has no WebSocket) — against one node, and against two nodes behind HAProxy
// (config/examples/haproxy.cfg). Every exchange is checked on the receiving side, properties
// included; in the cluster, reference clients sit on each node, so each exchange crosses nodes.
import tap from 'tap'
import type { IClientPublishOptions, IPublishPacket, MqttClient } from 'mqtt'
import type { BrokerHandle } from '../../src/server.js'
import { brokerUrl, closeClient, collect, openUrl, sleep, startBroker, waitFor } from '../helpers/broker.js'
import { startHaproxy } from '../helpers/haproxy.js'
import { startRedis } from '../helpers/redis.js'
import { exitedOk, handled, mosquittoSub, pahoScript, python, run, waitMs, type Subscription } from './interop-clients.js'
import { uniqueId } from './raw-client.js'
import type { Tap } from './targets.js'

/** The v5 message properties these tests send, as text (correlation data as UTF-8). */
interface MessageProperties {
  userProperties?: Record<string, string>
  messageExpiryInterval?: number
  contentType?: string
  responseTopic?: string
  correlationData?: string
}

interface Message { topic: string, qos: number, retain: boolean, payload: string, properties: MessageProperties }

/** Where the clients under test connect: the node itself, or the balancer in front of the nodes. */
interface Entry { mqttPort: number, httpPort: number, websocketPath: string }

interface Deployment {
  entry: Entry
  /** The nodes, where the reference clients connect directly. */
  nodes: BrokerHandle[]
}

interface ResumableSubscription extends Subscription<Message> {
  /** The CONNACK's Session Present flag, where the client reports it (mosquitto_sub does not). */
  sessionPresent: Promise<boolean | null>
}

interface Driver {
  name: string
  subscribe: (t: Tap, entry: Entry, topic: string, count: number, options?: { clientId?: string, sessionExpiry?: number }) => Promise<ResumableSubscription>
  publish: (t: Tap, entry: Entry, topic: string, payload: string, properties: MessageProperties) => Promise<void>
  /**
   * Connects with a will carrying a Will Delay Interval and user properties, and a session that
   * outlives the connection by `sessionExpiryS` (a will waits for its delay or the session's end,
   * whichever comes first [MQTT-3.1.3-9]); resolves with a function that kills the client.
   */
  withWill: (t: Tap, entry: Entry, topic: string, payload: string, will: { clientId: string, delayS: number, sessionExpiryS: number, userProperties?: Record<string, string> }) => Promise<() => void>
}

const sessionPresentLine = /^CONNECTED session_present=(\d)/

function mqttjs (transport: 'tcp' | 'ws'): Driver {
  const url = (entry: Entry): string => transport === 'tcp' ? `mqtt://127.0.0.1:${entry.mqttPort}` : `ws://127.0.0.1:${entry.httpPort}${entry.websocketPath}`
  return {
    name: `MQTT.js v5 over ${transport === 'tcp' ? 'TCP' : 'WebSocket'}`,
    async subscribe (t, entry, topic, count, { clientId, sessionExpiry } = {}) {
      // listening before the CONNACK: a resumed session's messages may arrive with it
      let got: ReturnType<typeof collect> = []
      const { client, connack } = await openUrl(t, url(entry), {
        protocolVersion: 5,
        ...(clientId === undefined ? {} : { clientId }),
        clean: sessionExpiry === undefined,
        ...(sessionExpiry === undefined ? {} : { properties: { sessionExpiryInterval: sessionExpiry } })
      }, (c) => { got = collect(c) })
      const ready = client.subscribeAsync(topic, { qos: 2 }).then(() => {})
      const messages = waitFor(() => got.length >= count, `${count} messages`, waitMs).then(() => got.map((m) => fromMqttjs(m.packet)))
      return { ...handled({ ready, messages, stop: async () => await closeClient(client, false) }), sessionPresent: Promise.resolve(connack.sessionPresent) }
    },
    async publish (t, entry, topic, payload, properties) {
      const { client } = await openUrl(t, url(entry), { protocolVersion: 5 })
      await client.publishAsync(topic, payload, { qos: 1, properties: toMqttjs(properties) })
      await closeClient(client, false)
    },
    async withWill (t, entry, topic, payload, { clientId, delayS, sessionExpiryS, userProperties }) {
      const { client } = await openUrl(t, url(entry), {
        protocolVersion: 5,
        clientId,
        clean: false,
        properties: { sessionExpiryInterval: sessionExpiryS },
        // (mqtt-packet encodes no CONNECT at all for an empty userProperties object)
        will: { topic, payload: Buffer.from(payload), qos: 1, retain: false, properties: { willDelayInterval: delayS, ...(userProperties === undefined ? {} : { userProperties }) } }
      })
      return () => client.stream.destroy()
    }
  }
}

const mosquitto: Driver = {
  name: 'mosquitto_pub/mosquitto_sub -V mqttv5 over TCP',
  async subscribe (t, entry, topic, count, { clientId, sessionExpiry } = {}) {
    // %j: one JSON object per message, its v5 properties included; -d: debug lines, the SUBACK's among them
    const args = ['-V', 'mqttv5', '-h', '127.0.0.1', '-p', String(entry.mqttPort), '-t', topic, '-q', '2', '-C', String(count), '-W', String(waitMs / 1000), '-F', '%j', '-d']
    if (clientId !== undefined) args.push('-i', clientId)
    if (sessionExpiry !== undefined) args.push('-c', '-x', String(sessionExpiry))
    const proc = run(t, ...mosquittoSub(args))
    const ready = proc.line((l) => l.includes('SUBACK')).then(() => {})
    const messages = exitedOk('mosquitto_sub', proc.exited).then(() => proc.lines.filter((l) => l.startsWith('{')).map(fromMosquittoJson))
    return { ...handled({ ready, messages, stop: async () => { proc.kill() } }), sessionPresent: Promise.resolve(null) }
  },
  async publish (t, entry, topic, payload, properties) {
    const args = ['-V', 'mqttv5', '-h', '127.0.0.1', '-p', String(entry.mqttPort), '-t', topic, '-m', payload, '-q', '1']
    for (const [key, value] of Object.entries(properties.userProperties ?? {})) args.push('-D', 'publish', 'user-property', key, value)
    if (properties.messageExpiryInterval !== undefined) args.push('-D', 'publish', 'message-expiry-interval', String(properties.messageExpiryInterval))
    if (properties.contentType !== undefined) args.push('-D', 'publish', 'content-type', properties.contentType)
    if (properties.responseTopic !== undefined) args.push('-D', 'publish', 'response-topic', properties.responseTopic)
    if (properties.correlationData !== undefined) args.push('-D', 'publish', 'correlation-data', properties.correlationData)
    await exitedOk('mosquitto_pub', run(t, 'mosquitto_pub', args).exited)
  },
  async withWill (t, entry, topic, payload, { clientId, delayS, sessionExpiryS, userProperties }) {
    // a subscriber that stays connected, with a will
    const args = ['-V', 'mqttv5', '-h', '127.0.0.1', '-p', String(entry.mqttPort), '-t', `idle/${uniqueId()}`, '-d', '-i', clientId, '-c', '-x', String(sessionExpiryS),
      '--will-topic', topic, '--will-payload', payload, '--will-qos', '1', '-D', 'will', 'will-delay-interval', String(delayS)]
    for (const [key, value] of Object.entries(userProperties ?? {})) args.push('-D', 'will', 'user-property', key, value)
    const proc = run(t, ...mosquittoSub(args))
    await proc.line((l) => l.includes('SUBACK'))
    return proc.kill
  }
}

function paho (transport: 'tcp' | 'websockets'): Driver {
  const connection = (entry: Entry): string[] => ['--protocol', '5', ...(transport === 'tcp'
    ? ['--port', String(entry.mqttPort)]
    : ['--port', String(entry.httpPort), '--transport', 'websockets', '--path', entry.websocketPath])]
  const propertyArgs = (properties: MessageProperties): string[] => [
    ...Object.entries(properties.userProperties ?? {}).flatMap(([key, value]) => ['--user-property', `${key}=${value}`]),
    ...(properties.messageExpiryInterval === undefined ? [] : ['--message-expiry', String(properties.messageExpiryInterval)]),
    ...(properties.contentType === undefined ? [] : ['--content-type', properties.contentType]),
    ...(properties.responseTopic === undefined ? [] : ['--response-topic', properties.responseTopic]),
    ...(properties.correlationData === undefined ? [] : ['--correlation-data', properties.correlationData])
  ]
  return {
    name: `Paho Python MQTTv5 over ${transport === 'tcp' ? 'TCP' : 'WebSocket'}`,
    async subscribe (t, entry, topic, count, { clientId, sessionExpiry } = {}) {
      const args = [pahoScript, 'sub', ...connection(entry), '--topic', topic, '--qos', '2', '--count', String(count), '--timeout', String(waitMs / 1000)]
      if (clientId !== undefined) args.push('--client-id', clientId)
      if (sessionExpiry !== undefined) args.push('--session-expiry', String(sessionExpiry))
      const proc = run(t, python, args)
      const ready = proc.line((l) => l.startsWith('SUBSCRIBED')).then(() => {})
      const sessionPresent = proc.line((l) => sessionPresentLine.test(l)).then((l) => sessionPresentLine.exec(l)?.[1] === '1')
      const messages = exitedOk('paho sub', proc.exited).then(() => proc.lines.filter((l) => l.startsWith('{')).map(fromPahoJson))
      sessionPresent.catch(() => {})
      return { ...handled({ ready, messages, stop: async () => { proc.kill() } }), sessionPresent }
    },
    async publish (t, entry, topic, payload, properties) {
      await exitedOk('paho pub', run(t, python, [pahoScript, 'pub', ...connection(entry), '--topic', topic, '--qos', '1', '--message', payload, ...propertyArgs(properties)]).exited)
    },
    async withWill (t, entry, topic, payload, { clientId, delayS, sessionExpiryS, userProperties }) {
      const proc = run(t, python, [pahoScript, 'will', ...connection(entry), '--client-id', clientId, '--topic', topic, '--qos', '1', '--message', payload, '--timeout', '20',
        '--will-delay', String(delayS), '--session-expiry', String(sessionExpiryS), ...propertyArgs({ userProperties })])
      await proc.line((l) => l.startsWith('CONNECTED'))
      return proc.kill
    }
  }
}

function toMqttjs (properties: MessageProperties): NonNullable<IClientPublishOptions['properties']> {
  const { correlationData, ...rest } = properties
  return { ...rest, ...(correlationData === undefined ? {} : { correlationData: Buffer.from(correlationData) }) }
}

function fromMqttjs (packet: IPublishPacket): Message {
  const p = packet.properties ?? {}
  const userProperties = p.userProperties === undefined ? undefined : Object.fromEntries(Object.entries(p.userProperties).map(([k, v]) => [k, String(v)]))
  return {
    topic: packet.topic,
    qos: packet.qos,
    retain: packet.retain,
    payload: packet.payload.toString(),
    properties: defined({ userProperties, messageExpiryInterval: p.messageExpiryInterval, contentType: p.contentType, responseTopic: p.responseTopic, correlationData: p.correlationData?.toString() })
  }
}

/** mosquitto_sub -F %j: properties under their spec names in kebab case. */
function fromMosquittoJson (line: string): Message {
  const m = JSON.parse(line) as { topic: string, qos: number, retain: number, payload: string, properties?: Record<string, unknown> }
  const p = m.properties ?? {}
  return {
    topic: m.topic,
    qos: m.qos,
    retain: m.retain === 1,
    payload: m.payload,
    properties: defined({
      userProperties: p['user-properties'] as Record<string, string> | undefined,
      messageExpiryInterval: p['message-expiry-interval'] as number | undefined,
      contentType: p['content-type'] as string | undefined,
      responseTopic: p['response-topic'] as string | undefined,
      correlationData: p['correlation-data'] as string | undefined
    })
  }
}

/** paho_client.py --protocol 5: paho's property names, user properties as pairs, correlation data in hex. */
function fromPahoJson (line: string): Message {
  const m = JSON.parse(line) as { topic: string, qos: number, retain: boolean, payload: string, properties: Record<string, unknown> }
  const p = m.properties
  const pairs = p.UserProperty as Array<[string, string]> | undefined
  const hex = p.CorrelationData as string | undefined
  return {
    topic: m.topic,
    qos: m.qos,
    retain: m.retain,
    payload: m.payload,
    properties: defined({
      userProperties: pairs === undefined ? undefined : Object.fromEntries(pairs),
      messageExpiryInterval: p.MessageExpiryInterval as number | undefined,
      contentType: p.ContentType as string | undefined,
      responseTopic: p.ResponseTopic as string | undefined,
      correlationData: hex === undefined ? undefined : Buffer.from(hex, 'hex').toString()
    })
  }
}

/** The properties that are present: absent ones are left out rather than undefined. */
function defined (properties: { [K in keyof MessageProperties]: MessageProperties[K] | undefined }): MessageProperties {
  return Object.fromEntries(Object.entries(properties).filter(([, v]) => v !== undefined)) as MessageProperties
}

/** What a receiver must see of what was sent; the expiry counts down while a message waits. */
function checkProperties (t: Tap, got: MessageProperties, sent: MessageProperties, what: string): void {
  const { messageExpiryInterval: sentExpiry, ...exact } = sent
  const { messageExpiryInterval: gotExpiry, ...rest } = got
  t.same(rest, exact, `${what}: user properties, content type, response topic and correlation data as sent`)
  if (sentExpiry !== undefined) {
    // [MQTT-3.3.2-6] the receiver gets the interval less the time the message waited in the broker
    t.ok(gotExpiry !== undefined && gotExpiry > 0 && gotExpiry <= sentExpiry, `${what}: message expiry interval ${String(gotExpiry)} in (0, ${sentExpiry}]`)
  }
}

const drivers = [mqttjs('tcp'), mqttjs('ws'), mosquitto, paho('tcp'), paho('websockets')]

/** A reference MQTT.js v5 client on a node. */
async function reference (t: Tap, node: BrokerHandle): Promise<MqttClient> {
  return (await openUrl(t, brokerUrl(node, 'tcp'), { protocolVersion: 5 })).client
}

/** Reference subscribers to `topic`, one on each node; resolves once all are subscribed. */
async function subscribersOnEveryNode (t: Tap, nodes: BrokerHandle[], topic: string): Promise<Array<ReturnType<typeof collect>>> {
  return await Promise.all(nodes.map(async (node) => {
    const client = await reference(t, node)
    const got = collect(client)
    await client.subscribeAsync(topic, { qos: 1 })
    return got
  }))
}

function behaves (deployment: (t: Tap) => Promise<Deployment>, name: string): void {
  tap.test(name, async (t) => {
    const { entry, nodes } = await deployment(t)
    for (const driver of drivers) {
      t.test(`${driver.name}: publishes with user properties, message expiry, content type, response topic and correlation data`, async (t) => {
        const topic = `interop5/${uniqueId()}/data`
        const sent: MessageProperties = { userProperties: { app: 'interop', unit: '°C' }, messageExpiryInterval: 120, contentType: 'text/plain', responseTopic: `${topic}/reply`, correlationData: 'req-42' }
        const receivers = await subscribersOnEveryNode(t, nodes, topic)
        await driver.publish(t, entry, topic, 'twenty-one', sent)
        for (const [i, got] of receivers.entries()) {
          await waitFor(() => got.length >= 1, `the message on node ${i + 1}`, waitMs)
          const [message] = got.map((m) => fromMqttjs(m.packet))
          t.match(message, { topic, qos: 1, payload: 'twenty-one' }, `node ${i + 1} got the message`)
          checkProperties(t, message?.properties ?? {}, sent, `node ${i + 1}`)
        }
      })

      t.test(`${driver.name}: receives user properties, message expiry, content type, response topic and correlation data`, async (t) => {
        const base = `interop5/${uniqueId()}`
        const sent: MessageProperties = { userProperties: { app: 'interop', unit: '°C' }, messageExpiryInterval: 120, contentType: 'application/json', responseTopic: `${base}/reply`, correlationData: 'corr-7' }
        const subscription = await driver.subscribe(t, entry, `${base}/#`, nodes.length)
        await subscription.ready
        // one publisher on each node: in the cluster, a message comes from the other node too
        for (const [i, node] of nodes.entries()) {
          const publisher = await reference(t, node)
          await publisher.publishAsync(`${base}/from-node-${i + 1}`, `{"node":${i + 1}}`, { qos: 1, properties: toMqttjs(sent) })
        }
        const messages = [...await subscription.messages].sort((a, b) => a.topic.localeCompare(b.topic))
        t.same(messages.map((m) => [m.topic, m.payload]), nodes.map((_, i) => [`${base}/from-node-${i + 1}`, `{"node":${i + 1}}`]))
        for (const message of messages) checkProperties(t, message.properties, sent, message.topic)
      })

      t.test(`${driver.name}: request/response by response topic and correlation data`, async (t) => {
        const base = `interop5/${uniqueId()}`
        // the responder, on the last node: answers on the request's Response Topic with its
        // Correlation Data (MQTT 5.0 §4.10)
        const responder = await reference(t, nodes[nodes.length - 1] as BrokerHandle)
        await responder.subscribeAsync(`${base}/request`, { qos: 1 })
        responder.on('message', (_topic, payload, packet) => {
          const { responseTopic, correlationData } = packet.properties ?? {}
          if (responseTopic === undefined) return
          responder.publish(responseTopic, `re: ${payload.toString()}`, { qos: 1, properties: { ...(correlationData === undefined ? {} : { correlationData }), userProperties: { responder: 'reference' } } })
        })
        const replies = await driver.subscribe(t, entry, `${base}/reply/#`, 1)
        await replies.ready
        await driver.publish(t, entry, `${base}/request`, 'ping', { responseTopic: `${base}/reply/1`, correlationData: 'req-1' })
        const [reply] = await replies.messages
        t.match(reply, { topic: `${base}/reply/1`, payload: 're: ping' })
        t.same(reply?.properties, { correlationData: 'req-1', userProperties: { responder: 'reference' } }, 'the reply carries the request\'s correlation data')
      })

      t.test(`${driver.name}: resumes its session within the Session Expiry Interval, with the messages queued meanwhile`, async (t) => {
        const base = `interop5/${uniqueId()}`
        const clientId = uniqueId('interop5')
        const first = await driver.subscribe(t, entry, `${base}/#`, 1, { clientId, sessionExpiry: 300 })
        await first.ready
        const publishers = await Promise.all(nodes.map(async (node) => await reference(t, node)))
        await publishers[0]?.publishAsync(`${base}/first`, 'first', { qos: 1 })
        t.same((await first.messages).map((m) => m.payload), ['first'])
        t.not(await first.sessionPresent, true, 'a new session')
        await first.stop()
        await waitFor(() => nodes.every((node) => (node.aedes as unknown as { clients: Record<string, unknown> }).clients[clientId] === undefined), 'the first connection to end', waitMs)
        for (const [i, publisher] of publishers.entries()) await publisher.publishAsync(`${base}/queued-${i + 1}`, `queued on node ${i + 1}`, { qos: 1 })
        const second = await driver.subscribe(t, entry, `${base}/#`, nodes.length, { clientId, sessionExpiry: 300 })
        t.same((await second.messages).map((m) => m.payload).sort(), nodes.map((_, i) => `queued on node ${i + 1}`))
        t.not(await second.sessionPresent, false, 'session present (where the client reports it)')
      })

      t.test(`${driver.name}: its will waits for the Will Delay Interval and carries its user properties`, async (t) => {
        const topic = `interop5/${uniqueId()}/will`
        const delayS = 1
        const receivers = await subscribersOnEveryNode(t, nodes, topic)
        const kill = await driver.withWill(t, entry, topic, 'client died', { clientId: uniqueId('will'), delayS, sessionExpiryS: 60, userProperties: { reason: 'test kill' } })
        const killedAt = Date.now()
        kill()
        for (const [i, got] of receivers.entries()) {
          await waitFor(() => got.length >= 1, `the will on node ${i + 1}`, waitMs + delayS * 1000)
          const [will] = got.map((m) => fromMqttjs(m.packet))
          t.match(will, { topic, payload: 'client died' }, `node ${i + 1} got the will`)
          t.same(will?.properties, { userProperties: { reason: 'test kill' } }, `node ${i + 1}: the will's user properties, and no delay interval in the PUBLISH`)
        }
        // [MQTT-3.1.3-9] not before the delay (less a margin for timer and clock granularity)
        t.ok(Date.now() - killedAt >= delayS * 1000 - 100, `published after the ${delayS} s delay`)
      })

      t.test(`${driver.name}: back within the Will Delay Interval, on any node, its will is not sent`, async (t) => {
        const topic = `interop5/${uniqueId()}/will`
        const clientId = uniqueId('will')
        const delayS = 2
        const receivers = await subscribersOnEveryNode(t, nodes, topic)
        const kill = await driver.withWill(t, entry, topic, 'client died', { clientId, delayS, sessionExpiryS: 60 })
        kill()
        await waitFor(() => nodes.every((node) => (node.aedes as unknown as { clients: Record<string, unknown> }).clients[clientId] === undefined), 'the connection to end', waitMs)
        // [MQTT-3.1.3-9] a new connection to the session before the delay passed: no will
        const back = await driver.subscribe(t, entry, `${topic}/back`, 1, { clientId, sessionExpiry: 60 })
        await back.ready
        await sleep(delayS * 1000 + 1000)
        t.same(receivers.map((got) => got.length), nodes.map(() => 0), 'no node delivered the will')
        await back.stop()
      })
    }
  })
}

behaves(async (t) => {
  const node = await startBroker(t)
  return { entry: { mqttPort: node.addresses.mqtt.port, httpPort: node.addresses.http.port, websocketPath: node.config.http.websocketPath }, nodes: [node] }
}, 'single node')

behaves(async (t) => {
  const redis = await startRedis(t)
  const keyPrefix = `${uniqueId('t')}:`
  // one process, two nodes: each needs its own node id for the cluster to route between them
  const nodes = [await startBroker(t, { redis: { url: redis.url, keyPrefix }, nodeId: 'interop5-1' }), await startBroker(t, { redis: { url: redis.url, keyPrefix }, nodeId: 'interop5-2' })]
  const balancer = await startHaproxy(t, nodes.map((node) => ({ mqttPort: node.addresses.mqtt.port, httpPort: node.addresses.http.port })))
  return { entry: { ...balancer, websocketPath: nodes[0]?.config.http.websocketPath ?? '/mqtt' }, nodes }
}, 'two nodes (Redis) behind HAProxy')
