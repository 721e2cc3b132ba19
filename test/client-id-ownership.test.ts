// A client id belongs to the user whose connection created its session (issue #24, item 6):
// another user's CONNECT with it is refused before the holder is disconnected or the session
// read, on one node and across the nodes of a cluster.
import jwt from 'jsonwebtoken'
import type { MqttClient } from 'mqtt'
import t from 'tap'
import type { BrokerHandle } from '../src/server.js'
import type { ConfigInput } from '../src/broker/config/config.js'
import { brokerUrl, capturingLogger, closeClient, collect, connectRefused, metricValue, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'
import { startRedisCluster } from './helpers/redis-cluster.js'

type T = Parameters<typeof startBroker>[0]

const secret = 'client-id-ownership-secret-0123456789'
const token = (sub: string): string => jwt.sign({ sub }, secret, { expiresIn: 600 })
const as = (user: string | null): { username?: string, password?: string } => user === null ? {} : { username: '', password: token(user) }
const config: ConfigInput = {
  auth: { anonymous: true, jwt: { secret } },
  // bob tries a dozen times a second: each refusal must be the owner's, not the rate limit's
  limits: { maxConnectRatePerUser: 0 },
  acl: {
    roles: { member: { pub: ['inbox/#'], sub: ['inbox/%u'] } },
    defaultRoles: ['member']
  }
}

/** Connects `user` (null: anonymous) with `clientId`; the client and its CONNACK's session present. */
async function connectAs (t: T, broker: BrokerHandle, user: string | null, clientId: string, clean: boolean): Promise<{ client: MqttClient, sessionPresent: boolean, messages: Array<{ payload: string }> }> {
  let messages: Array<{ payload: string }> = []
  const { client, connack } = await openUrl(t, brokerUrl(broker, 'tcp'), { clientId, clean, ...as(user) }, (c) => { messages = collect(c) })
  return { client, sessionPresent: connack.sessionPresent, messages }
}

const refusedAs = (t: T, broker: BrokerHandle, user: string | null, clientId: string, clean: boolean): Promise<number> =>
  connectRefused(t, brokerUrl(broker, 'tcp'), { clientId, clean, ...as(user) })

for (const mode of ['memory', 'redis (2 nodes)', 'redis cluster (2 nodes)'] as const) {
  t.test(`${mode}: another user cannot take over, disconnect or empty a session`, async (t) => {
    const redis = mode === 'memory' ? null : await (mode === 'redis (2 nodes)' ? startRedis : startRedisCluster)(t)
    const cluster: ConfigInput = redis === null ? config : { ...config, redis: { url: redis.url } }
    const aliceNode = await startBroker(t, cluster)
    const bobNode = redis === null ? aliceNode : await startBroker(t, cluster)

    const alice = await connectAs(t, aliceNode, 'alice', 'alice-phone', false)
    await alice.client.subscribeAsync('inbox/alice', { qos: 1 })
    let aliceClosed = false
    alice.client.on('close', () => { aliceClosed = true })

    for (let i = 0; i < 5; i++) {
      t.equal(await refusedAs(t, bobNode, 'bob', 'alice-phone', false), 5, 'bob, persistent: CONNACK 5')
      t.equal(await refusedAs(t, bobNode, 'bob', 'alice-phone', true), 5, 'bob, clean: CONNACK 5')
    }
    t.equal(await refusedAs(t, bobNode, null, 'alice-phone', true), 5, 'an anonymous client: CONNACK 5')
    t.equal(await connectRefused(t, brokerUrl(bobNode, 'ws'), { clientId: 'alice-phone', clean: false, ...as('bob') }), 5, 'bob over WebSocket: CONNACK 5')
    await sleep(300)
    t.notOk(aliceClosed, 'alice stays connected')
    t.ok(alice.client.connected)

    await closeClient(alice.client, false)
    const { client: carol } = await openUrl(t, brokerUrl(bobNode, 'tcp'), as('carol'))
    for (let i = 1; i <= 3; i++) await carol.publishAsync('inbox/alice', `m${i}`, { qos: 1 })
    await sleep(200)
    t.equal(await refusedAs(t, bobNode, 'bob', 'alice-phone', false), 5, 'bob, while alice is offline: CONNACK 5, no session present')
    t.equal(await refusedAs(t, aliceNode, 'bob', 'alice-phone', true), 5, 'bob, clean, while alice is offline: CONNACK 5')

    const back = await connectAs(t, bobNode, 'alice', 'alice-phone', false)
    t.equal(back.sessionPresent, true, 'alice\'s session is intact, subscriptions included')
    await waitFor(() => back.messages.length === 3, 'alice\'s queued messages')
    t.same(back.messages.map((m) => m.payload), ['m1', 'm2', 'm3'], 'every queued QoS 1 message survived')

    const sum = async (name: string, labels: Record<string, string>): Promise<number> => {
      const nodes = redis === null ? [aliceNode] : [aliceNode, bobNode]
      let total = 0
      for (const node of nodes) total += metricValue(await (await fetch(`http://127.0.0.1:${node.addresses.http.port}/metrics`)).text(), name, labels)
      return total
    }
    t.equal(await sum('realtime_broker_auth_failures_total', { reason: 'client_id_owned' }), 14, 'each refusal counted')

    // alice's own second device takes her session over, as MQTT says [MQTT-3.1.4-2]
    const closed = new Promise<void>((resolve) => back.client.once('close', () => resolve()))
    const tablet = await connectAs(t, aliceNode, 'alice', 'alice-phone', true)
    await closed
    t.pass('the same user takes the id over')
    // a CleanSession 1 session ends with its connection: the id is free again
    await closeClient(tablet.client, false)
    await sleep(200)
    const bob = await connectAs(t, bobNode, 'bob', 'alice-phone', false)
    t.equal(bob.sessionPresent, false, 'bob gets the id once alice\'s session ended, and nothing of hers')
  })
}

t.test('anonymous clients and users never take each other\'s ids', async (t) => {
  const broker = await startBroker(t, config)
  const anonymous = await connectAs(t, broker, null, 'sensor-1', false)
  t.equal(await refusedAs(t, broker, 'alice', 'sensor-1', false), 5, 'a user cannot take an anonymous client\'s id')
  const other = await connectAs(t, broker, null, 'sensor-1', false)
  t.equal(other.sessionPresent, true, 'another anonymous client can: anonymous ids are owned by "anonymous"')
  await closeClient(anonymous.client)
  await connectAs(t, broker, 'alice', 'alice-laptop', true)
  t.equal(await refusedAs(t, broker, null, 'alice-laptop', true), 5, 'an anonymous client cannot take a user\'s id')
})

t.test('an expired session frees its id; a refusal is audited', async (t) => {
  const { logger, lines } = capturingLogger()
  const broker = await startBroker(t, { ...config, sessions: { expirySeconds: 1 } }, logger)
  const alice = await connectAs(t, broker, 'alice', 'alice-watch', false)
  await closeClient(alice.client, false)
  t.equal(await refusedAs(t, broker, 'bob', 'alice-watch', false), 5)
  t.ok(lines.some((l) => l.audit === true && l.event === 'auth.failed' && l.kind === 'client_id_owned' && l.clientId === 'alice-watch'), 'audit line')
  await waitFor(() => lines.some((l) => l.event === 'session.expired' && l.clientId === 'alice-watch'), 'the session expired', 5000)
  const bob = await connectAs(t, broker, 'bob', 'alice-watch', false)
  t.equal(bob.sessionPresent, false, 'bob may use the id once alice\'s session is gone')
})
