// Stream history and recovery (docs/history.md), over the memory store and over Redis with two
// nodes: positions on delivered messages, the HTTP history endpoint, recovery from a position
// (exactly once, in order, no gap at the seam with the live stream), "not recovered" past the
// history or across epochs, and idempotent publishes.
import { Redis } from 'ioredis'
import type { IClientPublishOptions, MqttClient } from 'mqtt'
import t from 'tap'
import type { BrokerHandle } from '../src/server.js'
import { formatCursor, parseCursor } from '../src/bridge/sse-history.js'
import { isRecovered } from '../src/broker/history/history-store.js'
import { collect, connectClient, metricValue, sleep, startBroker, waitFor } from './helpers/broker.js'
import type { Teardown } from './helpers/loopback.js'
import { startRedis } from './helpers/redis.js'
import { startRedisCluster } from './helpers/redis-cluster.js'
import { events } from './helpers/sse.js'

const topics = [{ filter: 'chat/+/messages', size: 50, ttlSeconds: 3600 }]

interface HistoryBody {
  epoch: string
  offset: number
  recovered?: boolean
  messages: Array<{ offset: number, topic: string, payload: string, encoding: string, qos: number, properties?: { userProperties?: Record<string, string> } }>
}

async function history (broker: BrokerHandle, query: Record<string, string | number>): Promise<{ status: number, body: HistoryBody }> {
  const search = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]))
  const res = await fetch(`http://127.0.0.1:${broker.addresses.http.port}/api/v1/history?${search.toString()}`)
  return { status: res.status, body: await res.json() as HistoryBody }
}

async function publishAll (client: MqttClient, topic: string, payloads: string[], options: IClientPublishOptions = { qos: 1 }): Promise<void> {
  for (const payload of payloads) await client.publishAsync(topic, payload, options)
}

const position = (packet: { properties?: { userProperties?: Record<string, string | string[]> } }): { offset: number, epoch: string } | undefined => {
  const user = packet.properties?.userProperties
  return user?.offset === undefined ? undefined : { offset: Number(user.offset), epoch: String(user.epoch) }
}

t.test('memory store: positions, reads and recovery on one node', async (t) => {
  const broker = await startBroker(t, { history: { topics, idempotencyWindowSeconds: 120, maxReadLimit: 1000 } })
  const v5 = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  const v3 = await connectClient(t, broker, 'tcp')
  await v5.subscribeAsync('chat/#', { qos: 1 })
  await v3.subscribeAsync('chat/#', { qos: 1 })
  const got5 = collect(v5)
  const got3 = collect(v3)
  const publisher = await connectClient(t, broker, 'tcp')
  await publishAll(publisher, 'chat/r1/messages', ['a', 'b', 'c'])
  await publisher.publishAsync('chat/r1/typing', 'x', { qos: 1 })
  await waitFor(() => got5.length === 4 && got3.length === 4, 'four messages each')

  const positions = got5.filter((m) => m.topic === 'chat/r1/messages').map((m) => position(m.packet))
  const epoch = positions[0]?.epoch as string
  t.ok(epoch.length > 0, 'an epoch')
  t.same(positions, [1, 2, 3].map((offset) => ({ offset, epoch })), 'v5 subscribers get offset and epoch as user properties')
  t.equal(got5.find((m) => m.topic === 'chat/r1/typing')?.packet.properties?.userProperties, undefined, 'a topic without history gets nothing added')
  t.same(got3.map((m) => m.payload), ['a', 'b', 'c', 'x'], 'MQTT 3.1.1 subscribers see the messages as before')

  const newest = await history(broker, { topic: 'chat/r1/messages', limit: 2 })
  t.equal(newest.status, 200)
  t.match(newest.body, { epoch, offset: 3, messages: [{ offset: 2, topic: 'chat/r1/messages', payload: 'b', encoding: 'utf8', qos: 1 }, { offset: 3, payload: 'c' }] }, 'the newest `limit`, oldest first')
  t.equal(newest.body.recovered, undefined, 'no recovery verdict without since')

  const after1 = await history(broker, { topic: 'chat/r1/messages', limit: 10, since: 1, epoch })
  t.match(after1.body, { recovered: true, messages: [{ offset: 2 }, { offset: 3 }] })
  t.equal(after1.body.messages.length, 2)
  t.match((await history(broker, { topic: 'chat/r1/messages', limit: 10, since: 3, epoch })).body, { recovered: true, messages: [] }, 'a reader that missed nothing is recovered')
  t.match((await history(broker, { topic: 'chat/r1/messages', limit: 10, since: 1, epoch: 'other' })).body, { recovered: false }, 'another epoch: resync')
  t.match((await history(broker, { topic: 'chat/r1/messages', limit: 10, since: 9 })).body, { recovered: false }, 'an offset from the future: resync')

  // a publisher's own offset/epoch properties are replaced by the broker's
  const forger = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  await forger.publishAsync('chat/r1/messages', Buffer.from([0xff, 0x00, 0xfe]), { qos: 1, properties: { userProperties: { offset: '999', epoch: 'forged', trace: 't1' } } })
  await waitFor(() => got5.length === 5, 'the forged message')
  t.same(got5[4]?.packet.properties?.userProperties, { trace: 't1', offset: '4', epoch }, 'positions are the broker\'s')
  const binary = await history(broker, { topic: 'chat/r1/messages', limit: 1 })
  t.match(binary.body.messages[0], { offset: 4, encoding: 'base64', payload: Buffer.from([0xff, 0x00, 0xfe]).toString('base64'), properties: { userProperties: { trace: 't1' } } }, 'binary payloads in base64, said so; the stored properties without the position')

  // past the history's size: a reader at offset 1 missed messages that are gone
  await publishAll(publisher, 'chat/r1/messages', Array.from({ length: 60 }, (_, i) => `m${i}`), { qos: 0 })
  await waitFor(() => got5.length === 65, 'sixty more')
  const gone = await history(broker, { topic: 'chat/r1/messages', limit: 1000, since: 1, epoch })
  t.match(gone.body, { recovered: false, offset: 64 }, 'a gap beyond the history: not recovered')
  const all = await history(broker, { topic: 'chat/r1/messages', limit: 1000 })
  t.equal(all.body.messages.length, 50, 'a topic holds `size` messages')
  t.equal(all.body.messages[0]?.offset, 15)

  t.equal((await history(broker, { topic: 'chat/r1/typing', limit: 1 })).status, 404, 'a topic without history')
  t.equal((await history(broker, { topic: 'chat/+/messages', limit: 1 })).status, 400, 'a filter is no topic')
  t.equal((await history(broker, { topic: 'chat/r1/messages', limit: 0 })).status, 400, 'limit from 1')
  t.equal((await history(broker, { topic: 'chat/r1/messages', limit: 1001 })).status, 400, 'limit up to history.maxReadLimit')
  t.equal((await history(broker, { topic: 'chat/r1/messages', since: -1 })).status, 400, 'since is an offset')

  const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
  t.equal(metricValue(metrics, 'realtime_broker_history_appended_total'), 64)
  t.equal(metricValue(metrics, 'realtime_broker_history_recoveries_total', { result: 'ok' }), 2)
  t.equal(metricValue(metrics, 'realtime_broker_history_recoveries_total', { result: 'not_recovered' }), 3)
  t.equal(metricValue(metrics, 'realtime_broker_history_stream_length_max'), 50)
})

t.test('history reads are authorized like a subscription', async (t) => {
  const broker = await startBroker(t, {
    history: { topics, idempotencyWindowSeconds: 120, maxReadLimit: 1000 },
    acl: { roles: { anonymous: { pub: ['#'], sub: ['chat/open/#'] } }, users: {}, defaultRoles: [] }
  })
  t.equal((await history(broker, { topic: 'chat/open/messages', limit: 5 })).status, 200)
  t.equal((await history(broker, { topic: 'chat/closed/messages', limit: 5 })).status, 403)
})

t.test('without history topics nothing changes', async (t) => {
  const broker = await startBroker(t)
  const sub = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  await sub.subscribeAsync('chat/#', { qos: 1 })
  const got = collect(sub)
  const pub = await connectClient(t, broker, 'tcp')
  await pub.publishAsync('chat/r1/messages', 'a', { qos: 1 })
  await waitFor(() => got.length === 1, 'the message')
  t.equal(got[0]?.packet.properties?.userProperties, undefined)
  t.equal((await history(broker, { topic: 'chat/r1/messages' })).status, 404, 'no history route')
})

/**
 * What a recovering client does (the browser SDK does the same): subscribe first, buffering live
 * messages, then read history after its last offset page by page; deliver those, then the
 * buffered and later live messages whose offset is past the last delivered (dedupe at the seam).
 */
async function recover (t: Teardown, broker: BrokerHandle, topic: string, from: { offset: number, epoch: string }): Promise<{ delivered: Array<{ offset: number, payload: string }>, recovered: boolean, client: MqttClient }> {
  const client = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  const delivered: Array<{ offset: number, payload: string }> = []
  let last = from.offset
  let buffering = true
  const buffered: Array<{ offset: number, payload: string }> = []
  const take = (message: { offset: number, payload: string }): void => {
    if (message.offset <= last) return
    delivered.push(message)
    last = message.offset
  }
  client.on('message', (_topic, payload, packet) => {
    const at = position(packet)
    if (at === undefined) return
    const message = { offset: at.offset, payload: payload.toString() }
    if (buffering) buffered.push(message)
    else take(message)
  })
  await client.subscribeAsync(topic, { qos: 1 })
  let recovered = true
  for (;;) {
    const page = await history(broker, { topic, since: last, epoch: from.epoch, limit: 300 })
    if (page.body.recovered !== true) { recovered = false; break }
    for (const message of page.body.messages) take({ offset: message.offset, payload: message.payload })
    if (page.body.messages.length === 0 || last >= page.body.offset) break
  }
  buffering = false
  for (const message of buffered) take(message)
  return { delivered, recovered, client }
}

for (const emitter of ['routed', 'mqemitter-redis'] as const) t.test(`Redis, two nodes (${emitter} emitter): same offsets on both, recovery exactly once and in order across nodes`, async (t) => {
  const redis = await startRedis(t)
  const config = { history: { topics: [{ filter: 'room/+/messages', size: 5000, ttlSeconds: 600 }], idempotencyWindowSeconds: 120, maxReadLimit: 1000 }, redis: { url: redis.url, emitter } }
  const a = await startBroker(t, { ...config, nodeId: 'history-a' })
  const b = await startBroker(t, { ...config, nodeId: 'history-b' })
  const topic = 'room/1/messages'

  const early = await connectClient(t, b, 'tcp', { protocolVersion: 5 })
  await early.subscribeAsync(topic, { qos: 1 })
  const earlyGot = collect(early)
  const onA = await connectClient(t, a, 'tcp')
  const onB = await connectClient(t, b, 'tcp')
  await new Promise((resolve) => setTimeout(resolve, 300)) // the subscription reaches node a through Redis
  // published alternately through both nodes: one counter per topic, cluster-wide
  for (let i = 0; i < 10; i++) await (i % 2 === 0 ? onA : onB).publishAsync(topic, `p${i}`, { qos: 1 })
  await waitFor(() => earlyGot.length === 10, 'ten messages')
  const seen = earlyGot.map((m) => position(m.packet))
  const epoch = seen[0]?.epoch as string
  t.same(seen.map((p) => p?.offset), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'offsets 1 to 10 whichever node took the publish')
  t.ok(seen.every((p) => p?.epoch === epoch), 'one epoch')
  await early.endAsync()

  // 1,000 messages while the subscriber is away, then more while it recovers on the other node
  const missed = Array.from({ length: 1000 }, (_, i) => `m${i}`)
  await Promise.all([publishAll(onA, topic, missed.filter((_, i) => i % 2 === 0)), publishAll(onB, topic, missed.filter((_, i) => i % 2 === 1))])
  const live = Array.from({ length: 200 }, (_, i) => `l${i}`)
  const publishingLive = publishAll(onB, topic, live)
  const { delivered, recovered, client } = await recover(t, a, topic, { offset: 10, epoch })
  await publishingLive
  await waitFor(() => delivered.length === 1200, `1,200 messages (have ${delivered.length})`, 10_000)
  t.ok(recovered, 'recovered')
  t.same(delivered.map((m) => m.offset), Array.from({ length: 1200 }, (_, i) => 11 + i), 'every offset after 10 once, in order')
  t.same(new Set(delivered.map((m) => m.payload)), new Set([...missed, ...live]), 'every message once')
  t.same(delivered.slice(1000).map((m) => m.payload), live, 'the live ones in publish order after the missed ones')
  await client.endAsync()

  // the same history through either node
  const viaA = await history(a, { topic, limit: 5 })
  const viaB = await history(b, { topic, limit: 5 })
  t.same(viaA.body, viaB.body, 'both nodes read the same history')
  t.equal(viaA.body.offset, 1210)

  // Redis loses its data: a new epoch, and positions of the old one are not taken for new ones
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.flushall()
  await onA.publishAsync(topic, 'after-loss', { qos: 1 })
  const after = await history(b, { topic, limit: 10, since: 1210, epoch })
  t.equal(after.body.recovered, false, 'an old epoch is not recovered')
  t.not(after.body.epoch, epoch, 'a new epoch')
  t.match((await history(b, { topic, limit: 10 })).body.messages, [{ offset: 1, payload: 'after-loss' }], 'offsets start again in the new epoch')
})

t.test('idempotent publishes: a retry within the window is acknowledged, stored and delivered once', async (t) => {
  const redis = await startRedis(t)
  const config = { history: { topics, idempotencyWindowSeconds: 120, maxReadLimit: 1000 }, redis: { url: redis.url } }
  const a = await startBroker(t, { ...config, nodeId: 'idem-a' })
  const b = await startBroker(t, { ...config, nodeId: 'idem-b' })
  const sub = await connectClient(t, a, 'tcp', { protocolVersion: 5 })
  await sub.subscribeAsync('chat/+/messages', { qos: 1 })
  const got = collect(sub)
  const onA = await connectClient(t, a, 'tcp', { protocolVersion: 5 })
  const onB = await connectClient(t, b, 'tcp', { protocolVersion: 5 })
  const keyed = { qos: 1 as const, properties: { userProperties: { 'idempotency-key': 'k-1' } } }
  await onA.publishAsync('chat/i/messages', 'once', keyed)
  // the retry after a lost PUBACK, through the other node: acknowledged all the same
  await onB.publishAsync('chat/i/messages', 'once', keyed)
  await onB.publishAsync('chat/j/messages', 'other topic, same key', keyed)

  const post = async (broker: BrokerHandle, key: string, body: unknown): Promise<number> => (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/api/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(body)
  })).status
  t.equal(await post(a, 'h-1', { topic: 'chat/i/messages', payload: 'http once', qos: 1 }), 200)
  t.equal(await post(b, 'h-1', { topic: 'chat/i/messages', payload: 'http once', qos: 1 }), 200, 'a repeated request is answered as the first')
  t.equal(await post(a, '', { topic: 'chat/i/messages', payload: 'x' }), 400, 'an empty key is refused')

  await waitFor(() => got.length >= 3, 'the messages')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(got.map((m) => m.payload).sort(), ['"http once"', 'once', 'other topic, same key'], 'each delivered once (HTTP publishes the payload as JSON)')
  const stored = await history(b, { topic: 'chat/i/messages', limit: 10 })
  t.same(stored.body.messages.map((m) => [m.offset, m.payload]), [[1, 'once'], [2, '"http once"']], 'each stored once')
})

t.test('SSE: event ids are positions, and a reader reconnecting with Last-Event-ID resumes from them', async (t) => {
  const broker = await startBroker(t, { history: { topics, idempotencyWindowSeconds: 120, maxReadLimit: 1000 } })
  const base = `http://127.0.0.1:${broker.addresses.http.port}/api/v1/events?topic=${encodeURIComponent('chat/r1/#')}`
  const publisher = await connectClient(t, broker, 'tcp')
  type Received = { id: string | undefined, event: string | undefined, data: { topic?: string, payload?: string, properties?: { userProperties?: Record<string, string> }, recovered?: boolean } }
  const open = async (headers: Record<string, string>, until: (got: Received[]) => boolean): Promise<{ got: Received[], close: () => void }> => {
    const controller = new AbortController()
    const res = await fetch(base, { headers, signal: controller.signal })
    t.equal(res.status, 200)
    const got: Received[] = []
    const reading = (async () => {
      for await (const event of events(res)) {
        if (event.data !== undefined) got.push({ id: event.id, event: event.event, data: JSON.parse(event.data) as Received['data'] })
        if (until(got)) return
      }
    })().catch(() => {})
    return { got, close: () => controller.abort(), ...{ reading } }
  }
  const first = await open({}, (got) => got.filter((e) => e.event === 'message').length === 3)
  await waitFor(() => first.got.length === 1, 'subscribed')
  await publishAll(publisher, 'chat/r1/messages', ['a', 'b'])
  await publisher.publishAsync('chat/r1/typing', 'x', { qos: 1 })
  await waitFor(() => first.got.filter((e) => e.event === 'message').length === 3, 'three events')
  first.close()
  const messages = first.got.filter((e) => e.event === 'message')
  const epoch = messages[0]?.data.properties?.userProperties?.epoch as string
  t.equal(first.got[0]?.id, '1', 'a plain counter until a message of a history topic')
  t.equal(messages[0]?.id, `${epoch}:1:chat%2Fr1%2Fmessages`, 'then the position')
  t.equal(messages[2]?.id, `${epoch}:2:chat%2Fr1%2Fmessages`, 'an event of a topic without history carries the position too: the last id stays a position')

  await publishAll(publisher, 'chat/r1/messages', ['c', 'd', 'e'])
  const resumed = await open({ 'last-event-id': messages[2]?.id as string }, (got) => got.some((e) => e.data.payload === 'f'))
  await waitFor(() => resumed.got.some((e) => e.event === 'recovery'), 'the recovery event')
  await publisher.publishAsync('chat/r1/messages', 'f', { qos: 1 })
  await waitFor(() => resumed.got.some((e) => e.data.payload === 'f'), 'the live message')
  resumed.close()
  const after = resumed.got.filter((e) => e.event === 'message' || e.event === 'recovery')
  t.same(after.map((e) => e.event === 'recovery' ? `recovered:${String(e.data.recovered)}` : e.data.payload), ['c', 'd', 'e', 'recovered:true', 'f'], 'the missed messages once, in order, then the live ones')
  t.equal(after.at(-1)?.id, `${epoch}:6:chat%2Fr1%2Fmessages`)

  // more missed than the history holds (size 50): told to resync
  await publishAll(publisher, 'chat/r1/messages', Array.from({ length: 60 }, (_, i) => `m${i}`), { qos: 0 })
  const tooLate = await open({ 'last-event-id': messages[2]?.id as string }, (got) => got.some((e) => e.event === 'recovery'))
  await waitFor(() => tooLate.got.some((e) => e.event === 'recovery'), 'the recovery event')
  tooLate.close()
  t.match(tooLate.got.find((e) => e.event === 'recovery')?.data, { topic: 'chat/r1/messages', recovered: false, epoch, offset: 66 })
  t.equal(tooLate.got.filter((e) => e.event === 'message').length, 0, 'nothing of a partial history')
})

t.test('MQTT 5 request/response: $history/<topic> answered on the response topic', async (t) => {
  const broker = await startBroker(t, {
    history: { topics, idempotencyWindowSeconds: 120, maxReadLimit: 1000 },
    acl: { roles: { anonymous: { pub: ['chat/#', 'replies/#'], sub: ['chat/open/#', 'replies/#'] } }, users: {}, defaultRoles: [] }
  })
  const client = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
  await publishAll(client, 'chat/open/messages', ['a', 'b', 'c'])
  await client.subscribeAsync('replies/me', { qos: 1 })
  const replies = collect(client)
  const ask = async (topic: string, request: unknown, correlation: string): Promise<void> => {
    await client.publishAsync(`$history/${topic}`, JSON.stringify(request), { qos: 1, properties: { responseTopic: 'replies/me', correlationData: Buffer.from(correlation) } })
  }
  await ask('chat/open/messages', { limit: 2 }, 'q1')
  await ask('chat/open/messages', { since: 1, epoch: 'stale' }, 'q2')
  await ask('chat/closed/messages', {}, 'q3')
  await ask('chat/open/typing', {}, 'q4')
  await ask('chat/open/messages', { limit: 'all' }, 'q5')
  // no response topic: acknowledged, not answered
  await client.publishAsync('$history/chat/open/messages', '{}', { qos: 1 })
  await waitFor(() => replies.length === 5, 'five answers')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(replies.length, 5, 'a request without a response topic gets no answer')
  const answers = Object.fromEntries(replies.map((r) => [r.packet.properties?.correlationData?.toString(), JSON.parse(r.payload) as Record<string, unknown>]))
  t.match(answers.q1, { status: 200, offset: 3, messages: [{ offset: 2, payload: 'b' }, { offset: 3, payload: 'c' }] }, 'the newest, with the correlation data of the request')
  t.match(answers.q2, { status: 200, recovered: false }, 'a stale epoch: resync')
  t.match(answers.q3, { status: 403, error: /not granted/ }, 'authorized like a subscription')
  t.match(answers.q4, { status: 404 })
  t.match(answers.q5, { status: 400, error: /limit/ })
  t.equal(replies[0]?.packet.properties?.contentType, 'application/json')
})

for (const store of ['memory', 'redis'] as const) {
  t.test(`${store}: a topic's history is bounded by its size and its TTL`, async (t) => {
    const redis = store === 'redis' ? await startRedis(t) : undefined
    const broker = await startBroker(t, {
      history: { topics: [{ filter: 'ttl/+', size: 50, ttlSeconds: 1 }], idempotencyWindowSeconds: 120, maxReadLimit: 1000 },
      ...(redis === undefined ? {} : { redis: { url: redis.url } })
    })
    const publisher = await connectClient(t, broker, 'tcp')
    await Promise.all(Array.from({ length: 400 }, (_, i) => publisher.publishAsync('ttl/a', `m${i}`, { qos: 1 })))
    const held = await history(broker, { topic: 'ttl/a', limit: 1000 })
    t.equal(held.body.messages.length, 50, 'the newest `size` messages')
    t.equal(held.body.messages.at(-1)?.offset, 400)
    t.same(held.body.messages.map((m) => m.offset), Array.from({ length: held.body.messages.length }, (_, i) => 401 - held.body.messages.length + i), 'the newest, consecutive')
    if (redis !== undefined) {
      const admin = new Redis(redis.url)
      t.teardown(() => admin.disconnect())
      // an entry holds a turn's messages, at most 100: the stream keeps those that hold any of the newest 50
      t.ok(await admin.xlen('history:{ttl/a}:s') <= 50, 'the stream itself is bounded')
      // renewed with the once-a-second trim, with that second as margin: never before a message's TTL
      const streamExpiry = await admin.pttl('history:{ttl/a}:s')
      t.ok(streamExpiry > 0 && streamExpiry <= 2000, `the stream expires when idle (in ${streamExpiry} ms, at most the TTL and a second)`)
      const metrics = await (await fetch(`http://127.0.0.1:${broker.addresses.http.port}/metrics`)).text()
      const longest = metricValue(metrics, 'realtime_broker_history_stream_length_max')
      t.ok(longest >= 50 && longest <= 50 + 99, `the longest stream holds ${longest} messages: its size and at most one entry more`)
      t.equal(metricValue(metrics, 'realtime_broker_history_streams'), 1)
      await history(broker, { topic: 'ttl/never-published', limit: 1 })
      t.ok(await admin.pttl('history:{ttl/never-published}:m') > 0, 'a topic only read leaves no key for good')
    }
    await new Promise((resolve) => setTimeout(resolve, 1200))
    const { epoch } = held.body
    t.same((await history(broker, { topic: 'ttl/a', limit: 1000 })).body.messages, [], 'nothing older than the TTL is returned')
    t.match((await history(broker, { topic: 'ttl/a', limit: 10, since: 400, epoch })).body, { recovered: true }, 'a reader that missed nothing is still recovered')
    t.match((await history(broker, { topic: 'ttl/a', limit: 10, since: 399, epoch })).body, { recovered: false }, 'one that missed an expired message is not')
  })
}

for (const redisKind of ['one Redis', 'Redis Cluster'] as const) {
  t.test(`${redisKind}: a turn's appends to many topics (one script call per turn on one Redis, per slot on a Cluster) keep each topic's offsets, order and idempotency`, async (t) => {
    const url = redisKind === 'one Redis' ? (await startRedis(t)).url : (await startRedisCluster(t)).url
    const broker = await startBroker(t, { history: { topics: [{ filter: 'turn/+/messages', size: 1000, ttlSeconds: 600 }], idempotencyWindowSeconds: 120, maxReadLimit: 1000 }, redis: { url } })
    const sub = await connectClient(t, broker, 'tcp', { protocolVersion: 5 })
    await sub.subscribeAsync('turn/#', { qos: 1 })
    const got = collect(sub)
    const publishers = await Promise.all(Array.from({ length: 3 }, async () => await connectClient(t, broker, 'tcp', { protocolVersion: 5 })))
    const topicCount = 12
    const perTopic = 40
    // every topic gets a message keyed `k-1` twice (its second one a repeat, in the same burst)
    // and a key `k-2` no other message of it repeats; the keys are per topic
    const keyOf = (i: number): string | undefined => i === 3 || i === 20 ? 'k-1' : i === 7 ? 'k-2' : undefined
    const sent = Array.from({ length: perTopic }, (_, i) => Array.from({ length: topicCount }, (_, j) => ({ j, i }))).flat()
    // not awaited one by one: many topics arrive in one read and are appended in one turn
    await Promise.all(sent.map(async ({ j, i }) => {
      const key = keyOf(i)
      await (publishers[j % publishers.length] as MqttClient).publishAsync(`turn/${j}/messages`, `${j}:${i}`, { qos: 1, ...(key === undefined ? {} : { properties: { userProperties: { 'idempotency-key': key } } }) })
    }))
    const expected = (j: number): string[] => Array.from({ length: perTopic }, (_, i) => i).filter((i) => i !== 20).map((i) => `${j}:${i}`)
    await waitFor(() => got.length >= topicCount * (perTopic - 1), `${topicCount * (perTopic - 1)} messages (have ${got.length})`, 10_000)
    await sleep(200)
    t.equal(got.length, topicCount * (perTopic - 1), 'each delivered once, the repeats not at all')
    for (let j = 0; j < topicCount; j++) {
      const topic = `turn/${j}/messages`
      const delivered = got.filter((m) => m.topic === topic)
      // one publisher's messages of a topic are in publish order (MQTT keeps a connection's order)
      t.same(delivered.map((m) => m.payload), expected(j), `${topic}: every message once, in publish order`)
      t.same(delivered.map((m) => position(m.packet)?.offset), expected(j).map((_, i) => i + 1), `${topic}: offsets 1 to ${perTopic - 1}`)
      const stored = await history(broker, { topic, limit: 1000 })
      t.same(stored.body.messages.map((m) => [m.offset, m.payload]), expected(j).map((payload, i) => [i + 1, payload]), `${topic}: stored once each, at the offsets delivered`)
    }
  })
}

t.test('Redis, two nodes: an SSE reader resumes with Last-Event-ID on the other node', async (t) => {
  const redis = await startRedis(t)
  const config = { history: { topics, idempotencyWindowSeconds: 120, maxReadLimit: 1000 }, redis: { url: redis.url } }
  const a = await startBroker(t, { ...config, nodeId: 'sse-a' })
  const b = await startBroker(t, { ...config, nodeId: 'sse-b' })
  const url = (broker: BrokerHandle): string => `http://127.0.0.1:${broker.addresses.http.port}/api/v1/events?topic=${encodeURIComponent('chat/x/messages')}`
  const read = async (broker: BrokerHandle, headers: Record<string, string>, until: (data: Array<{ event?: string, id?: string, payload?: string }>) => boolean): Promise<Array<{ event?: string, id?: string, payload?: string }>> => {
    const controller = new AbortController()
    const res = await fetch(url(broker), { headers, signal: controller.signal })
    const got: Array<{ event?: string, id?: string, payload?: string }> = []
    void (async () => {
      for await (const event of events(res)) got.push({ event: event.event, id: event.id, payload: (JSON.parse(event.data ?? '{}') as { payload?: string }).payload })
    })().catch(() => {})
    t.teardown(() => controller.abort())
    return await waitFor(() => until(got), 'the events').then(() => { controller.abort(); return got })
  }
  const publisher = await connectClient(t, a, 'tcp')
  const first = read(a, {}, (got) => got.filter((e) => e.event === 'message').length === 2)
  await new Promise((resolve) => setTimeout(resolve, 200))
  await publishAll(publisher, 'chat/x/messages', ['a', 'b'])
  const before = await first
  const lastId = before.filter((e) => e.event === 'message').at(-1)?.id as string
  await publishAll(publisher, 'chat/x/messages', ['c', 'd'])
  const after = await read(b, { 'last-event-id': lastId }, (got) => got.some((e) => e.event === 'recovery'))
  t.same(after.filter((e) => e.event === 'message').map((e) => e.payload), ['c', 'd'], 'the missed messages, from the other node')
  t.match(after.at(-1)?.id, /:4:chat%2Fx%2Fmessages$/)
})

t.test('policies: the recovery verdict and the SSE cursor', async (t) => {
  t.ok(isRecovered(5, 'e', 'e', 5, undefined), 'nothing missed')
  t.ok(isRecovered(5, undefined, 'e', 9, 6), 'the next one is held')
  t.notOk(isRecovered(5, 'e', 'e', 9, 7), 'the next one is gone')
  t.notOk(isRecovered(5, 'old', 'e', 5, undefined), 'another epoch')
  t.notOk(isRecovered(6, 'e', 'e', 5, undefined), 'ahead of the history')
  const positions = new Map([['a b/c:d', { epoch: 'E1_-', offset: 7 }], ['x/y', { epoch: 'E2', offset: 0 }]])
  const cursor = formatCursor(positions)
  t.equal(cursor, 'E1_-:7:a%20b%2Fc%3Ad E2:0:x%2Fy', 'one entry per topic, topics encoded (no space, no colon)')
  t.same(parseCursor(cursor), positions, 'read back as written')
  t.same(parseCursor('42'), new Map(), 'a plain counter id resumes nothing')
  t.same(parseCursor('e:1:%E0%A4%A e:x:t ok:3:t'), new Map([['t', { epoch: 'ok', offset: 3 }]]), 'malformed entries are left out')
})
