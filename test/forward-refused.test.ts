// A message a persistent session may no longer read (its grants narrowed since it subscribed)
// is refused on its way out (authorizeForward) and cleared from the session's queue: its own
// entry, not another message's (on Redis it used to stay, and went out once the grants
// widened again). Reached by an MQTT 5 re-authentication with a token whose `acl`
// claim narrows what the session's subscription matches (a CONNECT with it would not restore
// the subscription), while the session's offline queue is being sent (Receive Maximum 1 holds
// it) and a refused message arrives live.
import jwt from 'jsonwebtoken'
import type { IPublishPacket, Packet } from 'mqtt'
import type { IConnectPacket } from 'mqtt-packet'
import t from 'tap'
import { brokerUrl, openUrl, startBroker } from './helpers/broker.js'
import { RawClient } from './conformance/raw-client.js'
import { startRedis } from './helpers/redis.js'

const secret = 'forward-refused-test-secret-0123456789'
/** A token for alice, its `acl` claim letting it read `sub` only. */
const token = (sub: string[]): string => jwt.sign({ sub: 'alice', acl: { pub: ['f/#'], sub } }, secret, { expiresIn: 600 })
const config = { auth: { anonymous: false, jwt: { secret } }, acl: { roles: { member: { pub: ['f/#'], sub: ['f/#'] } }, users: { alice: { roles: ['member'] } }, defaultRoles: [] } }

const topics = (packets: Packet[]): string[] => packets.filter((p): p is IPublishPacket => p.cmd === 'publish').map((p) => p.topic)

for (const store of ['memory', 'redis'] as const) {
  t.test(`${store}: a live message refused to a persistent session is cleared from its queue, the queued messages it may read are kept`, async (t) => {
    const broker = await startBroker(t, store === 'memory' ? config : { ...config, redis: { url: (await startRedis(t)).url } })
    const port = broker.addresses.mqtt.port
    // the token as the JWT method's Authentication Data, so that AUTH can replace it
    const session = (receiveMaximum?: number): IConnectPacket => ({
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'narrowed', clean: false, keepalive: 0,
      properties: { sessionExpiryInterval: 300, authenticationMethod: 'JWT', authenticationData: Buffer.from(token(['f/#'])), ...(receiveMaximum === undefined ? {} : { receiveMaximum }) }
    })

    const first = await RawClient.tcp(t, port, 5)
    first.send(session())
    await first.expect('connack')
    await first.subscribe({ 'f/#': 1 })
    await first.disconnect()

    const { client: pub } = await openUrl(t, brokerUrl(broker, 'tcp'), { protocolVersion: 5, username: '', password: token(['f/#']) })
    for (const n of [1, 2, 3]) await pub.publishAsync(`f/ok/${n}`, String(n), { qos: 1 })

    // one message in flight: the queue's first message waits for its PUBACK
    const narrowed = await RawClient.tcp(t, port, 5)
    narrowed.send(session(1))
    await narrowed.expect('connack')
    const held = await narrowed.expect('publish')
    t.equal(held.topic, 'f/ok/1')
    // re-authentication: f/ok only from now on
    narrowed.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'JWT', authenticationData: Buffer.from(token(['f/ok/#'])) } })
    t.match(await narrowed.expect('auth'), { reasonCode: 0 }, 'the narrower token is taken')
    // matches the session's subscription, not its grants: refused on the way out
    await pub.publishAsync('f/no/live', 'refused', { qos: 1 })
    t.same(await narrowed.drain(300), [], 'nothing more while f/ok/1 is in flight')

    const received = [held.topic]
    let next: IPublishPacket = held
    while (received.length < 3) {
      narrowed.send({ cmd: 'puback', messageId: next.messageId })
      next = await narrowed.expect('publish')
      received.push(next.topic)
    }
    narrowed.send({ cmd: 'puback', messageId: next.messageId })
    t.same(received, ['f/ok/1', 'f/ok/2', 'f/ok/3'], 'every queued message it may read, none cleared in place of the refused one')
    t.same(topics(await narrowed.drain(300)), [], 'the refused one is not sent')
    await narrowed.disconnect()

    // grants back to f/#: the refused message was cleared from the session, so nothing is left
    const widened = await RawClient.tcp(t, port, 5)
    widened.send(session())
    await widened.expect('connack')
    t.same(topics(await widened.drain(500)), [], 'the refused message\'s entry was cleared, nothing queued is left')
    widened.destroy()
  })
}
