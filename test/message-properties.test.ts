// MQTT 5 message properties through HTTP publish and SSE, on one node and across two nodes on
// Redis: every property arrives as published (correlation data as bytes, user properties in
// order with their repeats), the expiry interval less the time waited; expired messages are
// not sent. v5 clients cannot connect yet: subscribers here are in-process `aedes.subscribe`
// and SSE streams.
import type { AedesPublishPacket } from 'aedes'
import jwt from 'jsonwebtoken'
import t from 'tap'
import type { BrokerHandle } from '../src/server.js'
import { collect, connectClient, startBroker, waitFor } from './helpers/broker.js'
import type { Teardown } from './helpers/loopback.js'
import { startRedis } from './helpers/redis.js'
import { events } from './helpers/sse.js'

const secret = 'message-properties-secret-0123456789abcdef'
const token = (sub: string): string => jwt.sign({ sub }, secret, { expiresIn: 600 })
const acl = { roles: { member: { pub: ['req/#'], sub: ['req/#'] } }, users: {}, defaultRoles: ['member'] }
const config = { auth: { anonymous: false, jwt: { secret } }, acl, http: { port: 0 } }

const correlationData = Buffer.from([0, 0xff, 0x80, 1, 2])
// every property HTTP publish takes, as JSON
const publishedProperties = {
  payloadFormatIndicator: true,
  messageExpiryInterval: 60,
  contentType: 'application/json',
  responseTopic: 'req/replies/gerät-1',
  correlationData: correlationData.toString('base64'),
  userProperties: { trace: 'abc-1', tag: ['b', 'a', 'b'], 'ünï €': '€' }
}

async function post (broker: BrokerHandle, body: unknown): Promise<{ status: number, json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${broker.addresses.http.port}/api/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token('backend')}` },
    body: JSON.stringify(body)
  })
  return { status: res.status, json: await res.json() as Record<string, unknown> }
}

/** What an in-process subscriber on `broker` receives on `filter`. */
async function subscribeInProcess (broker: BrokerHandle, filter: string): Promise<AedesPublishPacket[]> {
  const got: AedesPublishPacket[] = []
  await new Promise<void>((resolve) => broker.aedes.subscribe(filter, (packet: AedesPublishPacket, done: () => void) => { got.push(packet); done() }, resolve))
  return got
}

/** The `message` events of an SSE stream on `broker`, parsed as they come. */
async function sseMessages (t: Teardown, broker: BrokerHandle, filter: string): Promise<Array<Record<string, unknown>>> {
  const controller = new AbortController()
  t.teardown(() => controller.abort())
  const res = await fetch(`http://127.0.0.1:${broker.addresses.http.port}/api/v1/events?topic=${encodeURIComponent(filter)}&token=${token('reader')}`, { signal: controller.signal })
  const messages: Array<Record<string, unknown>> = []
  let subscribed = false
  void (async () => {
    for await (const e of events(res)) {
      if (e.event === 'subscribed') subscribed = true
      if (e.event === 'message') messages.push(JSON.parse(e.data ?? '') as Record<string, unknown>)
    }
  })().catch(() => {})
  await waitFor(() => subscribed, 'the SSE stream subscribed')
  return messages
}

/** The properties an MQTT 5 subscriber is sent for `publishedProperties`, with `left` seconds of expiry. */
function expectedPacketProperties (left: number): Record<string, unknown> {
  return { ...publishedProperties, messageExpiryInterval: left, correlationData }
}

t.test('HTTP publish: MQTT 5 properties reach subscribers as published; SSE shows them', async (t) => {
  const broker = await startBroker(t, config)
  const got = await subscribeInProcess(broker, 'req/#')
  const sse = await sseMessages(t, broker, 'req/#')
  const mqtt311 = await connectClient(t, broker, 'tcp', { username: '', password: token('old') })
  await mqtt311.subscribeAsync('req/#', { qos: 1 })
  const old = collect(mqtt311)

  t.same(await post(broker, { topic: 'req/1', payload: { q: 1 }, qos: 1, ...publishedProperties }), { status: 200, json: { accepted: 1 } })
  await waitFor(() => got.length === 1 && sse.length === 1 && old.length === 1, 'delivery in process, over SSE and to the 3.1.1 client')
  const properties = got[0]?.properties
  t.same(properties, expectedPacketProperties(60))
  t.ok(Buffer.isBuffer(properties?.correlationData), 'correlation data is bytes')
  t.same(Object.keys(properties?.userProperties ?? {}), ['trace', 'tag', 'ünï €'], 'user properties in order')
  t.match(sse[0], { topic: 'req/1', payload: '{"q":1}', qos: 1, properties: { ...publishedProperties, messageExpiryInterval: 60 } }, 'the SSE event carries them, correlation data in base64')
  t.same(old[0]?.payload, '{"q":1}', 'a 3.1.1 subscriber gets the message, without properties')
  t.same(old[0]?.packet.properties, undefined)

  await post(broker, { topic: 'req/plain', payload: 1 })
  await waitFor(() => sse.length === 2, 'a message without properties')
  t.notOk('properties' in (sse[1] ?? {}), 'an event without properties has no properties key')

  // expired before it reached the stream: not sent [MQTT-3.3.2-5]
  await new Promise<void>((resolve) => broker.aedes.publish({ cmd: 'publish', topic: 'req/stale', payload: Buffer.from('old'), qos: 0, retain: false, dup: false, properties: { messageExpiryInterval: 1 }, messageExpiry: Date.now() - 1 } as AedesPublishPacket, () => resolve()))
  await post(broker, { topic: 'req/after', payload: 2, messageExpiryInterval: 5 })
  await waitFor(() => sse.length === 3, 'the message after the expired one')
  t.same(sse.map((e) => e.topic), ['req/1', 'req/plain', 'req/after'], 'the expired message was not sent')
  t.match(sse[2], { properties: { messageExpiryInterval: 5 } })

  // a retained message keeps its properties for a stream that subscribes later
  await post(broker, { topic: 'req/kept', payload: 3, retain: true, contentType: 'text/plain', correlationData: correlationData.toString('base64') })
  const late = await sseMessages(t, broker, 'req/kept')
  await waitFor(() => late.length === 1, 'the retained message')
  t.match(late[0], { topic: 'req/kept', retain: true, properties: { contentType: 'text/plain', correlationData: correlationData.toString('base64') } })
})

t.test('HTTP publish validates every property, naming the field', async (t) => {
  const broker = await startBroker(t, { ...config, limits: { maxPacketSize: 200_000 } })
  const refused = async (fields: Record<string, unknown>, error: RegExp, what: string): Promise<void> => {
    const answer = await post(broker, { topic: 'req/x', payload: 1, ...fields })
    t.equal(answer.status, 400, what)
    t.match(answer.json.error, error, what)
  }
  await refused({ payloadFormatIndicator: 1 }, /^body\.payloadFormatIndicator: expected true/, 'payloadFormatIndicator is a boolean')
  await refused({ payloadFormatIndicator: true, payload: undefined, payloadBase64: Buffer.from([0xff, 0xfe]).toString('base64') }, /payloadFormatIndicator: true, but the payload is not valid UTF-8/, 'a payload said to be UTF-8 is')
  for (const interval of [0, -1, 1.5, 2 ** 32, '60']) await refused({ messageExpiryInterval: interval }, /^body\.messageExpiryInterval: expected whole seconds from 1 to 4294967295/, `messageExpiryInterval ${JSON.stringify(interval)}`)
  await refused({ contentType: 5 }, /^body\.contentType: expected a string/, 'contentType is a string')
  await refused({ contentType: 'a\u0000b' }, /^body\.contentType: U\+0000 is not allowed \[MQTT-1\.5\.4-2\]/, 'no U+0000 in a string')
  await refused({ contentType: 'a\ud800' }, /^body\.contentType: not valid UTF-8 \(a lone surrogate\)/, 'a string has a UTF-8 form')
  await refused({ contentType: 'x'.repeat(65_536) }, /^body\.contentType: over 65535 bytes/, 'a string fits a two-byte length')
  for (const topic of ['req/+', 'req/#', '']) await refused({ responseTopic: topic }, /^body\.responseTopic: expected a topic name: not empty, no wildcards \(\+, #\) \[MQTT-3\.3\.2-14\]/, `responseTopic ${JSON.stringify(topic)}`)
  await refused({ correlationData: 'not base64!' }, /^body\.correlationData: expected base64/, 'correlationData is base64')
  await refused({ correlationData: Buffer.alloc(65_536).toString('base64') }, /^body\.correlationData: over 65535 bytes/, 'correlation data fits a two-byte length')
  await refused({ userProperties: ['a', 'b'] }, /^body\.userProperties: expected an object/, 'userProperties is an object')
  await refused({ userProperties: { a: 1 } }, /^body\.userProperties\["a"\]: expected a string/, 'a user property value is a string')
  await refused({ userProperties: { a: [] } }, /^body\.userProperties\["a"\]: expected a string or a non-empty array/, 'an array of values is not empty')
  await refused({ userProperties: { a: ['x', 2] } }, /^body\.userProperties\["a"\]\[1\]: expected a string/, 'each value of an array is a string')
  await refused({ userProperties: { 'k\u0000': 'v' } }, /^body\.userProperties key "k\\u0000": U\+0000 is not allowed/, 'a key is an MQTT string')
  // each value repeats its key on the wire: the packet outgrows the body
  await refused({ userProperties: { ['k'.repeat(10_000)]: Array.from({ length: 25 }, () => 'v') } }, /^body: the message with its properties is a PUBLISH of 250\d{3} bytes, over limits\.maxPacketSize \(200000\)/, 'the packet with its properties fits limits.maxPacketSize')
  const batch = await post(broker, { messages: [{ topic: 'req/a', contentType: 'text/plain' }, { topic: 'req/b', responseTopic: 'req/#' }] })
  t.equal(batch.status, 400, 'a batch')
  t.match(batch.json.error, /^messages\[1\]\.responseTopic/, 'names the message of the batch')

  const got = await subscribeInProcess(broker, 'req/#')
  const userProperties = JSON.parse('{"__proto__": "x", "": ""}') as Record<string, string>
  t.equal((await post(broker, { topic: 'req/ok', payload: 'ü', payloadFormatIndicator: true, userProperties, responseTopic: '$reply/x' })).status, 200, 'valid: an empty key and value, a key named __proto__, a $ response topic')
  await waitFor(() => got.length === 1, 'the valid message')
  const delivered = got[0]?.properties?.userProperties ?? {}
  t.same(Object.keys(delivered), ['__proto__', ''], '__proto__ is an own key')
  t.equal(Object.getPrototypeOf(delivered), Object.prototype)
})

t.test('two nodes on Redis: properties published on A reach subscribers on B; expired messages are not forwarded', async (t) => {
  const redis = await startRedis(t)
  const a = await startBroker(t, { ...config, redis: { url: redis.url }, nodeId: 'props-a' })
  const b = await startBroker(t, { ...config, redis: { url: redis.url }, nodeId: 'props-b' })
  const got = await subscribeInProcess(b, 'req/#')
  const sse = await sseMessages(t, b, 'req/#')
  // the route to B reaches A through Redis
  for (let i = 0; got.length === 0; i++) {
    if (i === 50) throw new Error('no route from node A to node B')
    await post(a, { topic: 'req/warmup', payload: i })
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await waitFor(() => sse.length > 0, 'the warm-up message over SSE')
  got.length = 0
  const sseBefore = sse.length

  t.same(await post(a, { topic: 'req/1', payload: { q: 1 }, qos: 1, ...publishedProperties }), { status: 200, json: { accepted: 1 } })
  await waitFor(() => got.some((p) => p.topic === 'req/1') && sse.some((e) => e.topic === 'req/1'), 'delivery on node B')
  const packet = got.find((p) => p.topic === 'req/1') as AedesPublishPacket
  t.equal(packet.brokerId, a.aedes.id, 'the message came from node A')
  const left = packet.properties?.messageExpiryInterval ?? 0
  t.ok(left > 50 && left <= 60, `what is left of the expiry interval (${left} s)`)
  t.same(packet.properties, expectedPacketProperties(left), 'every property arrives on node B')
  t.ok(Buffer.isBuffer(packet.properties?.correlationData), 'correlation data arrives as bytes')
  t.same(packet.properties?.userProperties?.tag, ['b', 'a', 'b'], 'repeated user properties in order')
  t.match(sse.find((e) => e.topic === 'req/1'), { properties: { ...publishedProperties, messageExpiryInterval: left } }, 'SSE on node B shows them')

  // past its deadline when node A routes it: not forwarded [MQTT-3.3.2-5]
  await new Promise<void>((resolve) => a.aedes.publish({ cmd: 'publish', topic: 'req/stale', payload: Buffer.from('old'), qos: 1, retain: false, dup: false, properties: { messageExpiryInterval: 1 }, messageExpiry: Date.now() - 1 } as AedesPublishPacket, () => resolve()))
  await post(a, { topic: 'req/after', payload: 2 })
  await waitFor(() => got.some((p) => p.topic === 'req/after') && sse.some((e) => e.topic === 'req/after'), 'the message after the expired one')
  t.notOk(got.some((p) => p.topic === 'req/stale'), 'the expired message did not reach node B')
  t.same(sse.slice(sseBefore).map((e) => e.topic), ['req/1', 'req/after'])

  // retained through node A (stored in Redis), read by a stream on node B that subscribes later
  await post(a, { topic: 'req/kept', payload: 3, retain: true, contentType: 'text/plain', correlationData: correlationData.toString('base64'), userProperties: { k: ['1', '2'] } })
  const late = await sseMessages(t, b, 'req/kept')
  await waitFor(() => late.length === 1, 'the retained message on node B')
  t.match(late[0], { topic: 'req/kept', retain: true, properties: { contentType: 'text/plain', correlationData: correlationData.toString('base64'), userProperties: { k: ['1', '2'] } } })
})
