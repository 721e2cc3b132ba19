// What an idle connection keeps (issue 22: RSS per idle connection): the CONNECT packet is let
// go once answered, token expiries share one timer, Aedes' inbound maps are made on first use,
// and what replaced per-client closures still does its job.
import jwt from 'jsonwebtoken'
import t from 'tap'
import { clientById } from '../src/broker/aedes-adapter.js'
import { DeadlineBuckets } from '../src/broker/deadline-buckets.js'
import { collect, connectClient, sleep, startBroker, waitFor } from './helpers/broker.js'

const secret = 'test-secret-that-is-long-enough-0123456789'
const sign = (payload: object, expiresIn = 600): string => jwt.sign(payload, secret, { algorithm: 'HS256', expiresIn })

t.test('the CONNECT packet, password and all, is let go once answered; MQTT 3.1.1 and 5 clients keep working', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] } })
  for (const protocolVersion of [4, 5] as const) {
    const clientId = `idle-v${protocolVersion}`
    const client = await connectClient(t, broker, 'tcp', { clientId, protocolVersion, username: '', password: sign({ sub: 'alice' }) })
    const held = clientById(broker.aedes, clientId) as unknown as { _parser: { settings: Record<string, unknown> }, _inboundInflight: unknown, _topicAliases: unknown }
    t.ok(held !== undefined, `v${protocolVersion}: connected`)
    const { settings } = held._parser
    t.equal(settings.password, undefined, `v${protocolVersion}: the parser keeps no password`)
    t.equal(settings.username, undefined, `v${protocolVersion}: nor the user name`)
    t.equal(settings.protocolVersion, protocolVersion, `v${protocolVersion}: it still parses as its protocol version`)
    t.ok(Object.isFrozen(settings), 'shared settings cannot be changed through one parser')
    // a v5 PUBLISH with properties is parsed as v5: the settings still say so
    const got = collect(client)
    await client.subscribeAsync(`echo/${clientId}`, { qos: 1 })
    await client.publishAsync(`echo/${clientId}`, 'hello', { qos: 1, ...(protocolVersion === 5 ? { properties: { userProperties: { k: 'v' }, contentType: 'text/plain' } } : {}) })
    await waitFor(() => got.length === 1, `v${protocolVersion}: own message back`)
    // the Aedes patch: no QoS 2 and no topic alias yet, no map for them
    t.equal(held._inboundInflight, null, `v${protocolVersion}: no inbound QoS 2 map before the first QoS 2`)
    t.equal(held._topicAliases, null, `v${protocolVersion}: no topic alias map before the first alias`)
    await client.publishAsync(`echo/${clientId}`, 'exactly once', { qos: 2 })
    await waitFor(() => got.length === 2, `v${protocolVersion}: the QoS 2 message back`)
    if (protocolVersion === 5) t.equal(got[0]?.packet.properties?.contentType, 'text/plain', 'v5 properties read and forwarded')
    await client.endAsync()
  }
})

t.test('a connection\'s end is watched by shared listeners, not stream.finished(), and a reset connection still closes its client', async (t) => {
  const broker = await startBroker(t)
  const watcher = await connectClient(t, broker, 'tcp', { clientId: 'watcher' })
  await watcher.subscribeAsync('gone/#', { qos: 1 })
  const got = collect(watcher)
  const client = await connectClient(t, broker, 'tcp', { clientId: 'to-reset', will: { topic: 'gone/to-reset', payload: Buffer.from('reset'), qos: 1, retain: false } })
  const held = clientById(broker.aedes, 'to-reset') as unknown as { conn: NodeJS.EventEmitter }
  // the Aedes patch: finished() listened for 'finish' (and kept its closures); nothing does now
  t.equal(held.conn.listenerCount('finish'), 0, 'no finish listener on the socket')
  ;(client.stream as import('node:net').Socket).resetAndDestroy()
  await waitFor(() => clientById(broker.aedes, 'to-reset') === undefined, 'the reset client closed')
  await waitFor(() => got.length === 1, 'its will')
  t.equal(got[0]?.payload, 'reset')
})

t.test('token expiries share one timer: each client is disconnected at its own expiry, a closed one is forgotten', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret, clockToleranceS: 0, expiryGraceS: 0 } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] } })
  const startedAt = Date.now()
  const closedAfter = async (expiresIn: number, clientId: string): Promise<number> => {
    const client = await connectClient(t, broker, 'tcp', { clientId, username: '', password: sign({ sub: clientId }, expiresIn), reconnectPeriod: 0 })
    return await new Promise<number>((resolve) => client.once('close', () => resolve(Date.now() - startedAt)))
  }
  // one leaves before its token expires: its deadline must not disconnect anyone
  const early = await connectClient(t, broker, 'tcp', { clientId: 'early', username: '', password: sign({ sub: 'early' }, 2), reconnectPeriod: 0 })
  await early.endAsync()
  const [first, second] = await Promise.all([closedAfter(2, 'two'), closedAfter(3, 'three')])
  // exp is whole seconds: due between (n - 1) and n seconds after the start, at most 250 ms late
  t.ok(first >= 900 && first < 2_500, `the 2 s token's client closed after ${first} ms`)
  t.ok(second >= 1_900 && second < 3_500 && second > first, `the 3 s token's client closed after ${second} ms`)
})

t.test('DeadlineBuckets: due at or after the deadline, in order, never twice, removable', async (t) => {
  const due: Array<{ item: string, late: number }> = []
  const deadlines = new Map<string, number>()
  const buckets = new DeadlineBuckets<string>(50, (item) => due.push({ item, late: Date.now() - (deadlines.get(item) as number) }))
  const now = Date.now()
  for (const [item, after] of [['c', 300], ['a', 100], ['b', 200], ['gone', 150], ['a2', 100]] as const) {
    deadlines.set(item, now + after)
    buckets.add(item, now + after)
  }
  buckets.remove('gone', now + 150)
  t.equal(buckets.size, 4)
  await sleep(500)
  t.same(due.map((d) => d.item).sort(), ['a', 'a2', 'b', 'c'], 'each due once, the removed one never')
  t.same(due.map((d) => d.item).slice(2), ['b', 'c'], 'in deadline order')
  for (const { item, late } of due) t.ok(late >= 0 && late < 200, `${item}: ${late} ms after its deadline`)
  t.equal(buckets.size, 0)
  // a deadline past already: due at once
  buckets.add('past', Date.now() - 1_000)
  await sleep(20)
  t.equal(due.at(-1)?.item, 'past')
})
