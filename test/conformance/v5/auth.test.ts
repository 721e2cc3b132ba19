// MQTT 5.0 conformance, authentication (3.1.4, 4.12): refused CONNECTs, the JWT Authentication
// Method and re-authentication with AUTH. Raw MQTT 5.0 over TCP, against a single node and a
// cluster node, each requiring a JWT.
import jwt from 'jsonwebtoken'
import { uniqueId } from '../raw-client.js'
import { forEachTarget } from '../targets.js'

const secret = 'conformance-v5-secret-0123456789abcdef'
const token = (seconds = 600, sub = uniqueId('user')): string => jwt.sign({ sub, acl: { pub: ['auth/#'], sub: ['auth/#'] } }, secret, { expiresIn: seconds })
const jwtConfig = { auth: { anonymous: false, jwt: { secret } } }
const viaMethod = (data: string, method = 'JWT'): { properties: { authenticationMethod: string, authenticationData: Buffer } } =>
  ({ properties: { authenticationMethod: method, authenticationData: Buffer.from(data) } })

forEachTarget((t, { target, raw, connected }) => {
  t.test('[MQTT-3.1.4-2] [MQTT-3.1.4-6] [MQTT-3.2.2-6] [MQTT-3.2.2-7] [MQTT-4.13.2-1] a CONNECT that fails authentication gets CONNACK 0x86 or 0x87 with Session Present 0, then the close; nothing sent after the CONNECT is processed', async (t) => {
    const broker = await target.broker(t, jwtConfig)
    const topic = `auth/${uniqueId()}`
    const client = await raw(t, broker)
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: uniqueId(), username: 'u', password: Buffer.from('not a token') })
    client.send({ cmd: 'publish', topic, payload: 'after a refused CONNECT', qos: 0, retain: true, dup: false })
    const connack = await client.expect('connack')
    t.ok(connack.reasonCode === 0x86 || connack.reasonCode === 0x87, `CONNACK 0x${connack.reasonCode?.toString(16) ?? '?'}`)
    t.equal(connack.sessionPresent, false)
    t.ok(await client.closedWithin(), 'closed')
    const checker = await connected(t, { username: '', password: Buffer.from(token()) }, broker)
    await checker.subscribe({ [topic]: 0 })
    t.same(await checker.messages(300), [], 'the PUBLISH after it was not processed: nothing retained')
  })

  t.test('[MQTT-4.12.0-1] an Authentication Method the broker does not support gets CONNACK 0x8C, then the close', async (t) => {
    const broker = await target.broker(t, jwtConfig)
    const client = await raw(t, broker)
    const connack = await client.connect(viaMethod('x', 'SCRAM-SHA-1'))
    t.equal(connack.reasonCode, 0x8C, 'Bad authentication method')
    t.ok(await client.closedWithin(), 'closed')
  })

  t.test('[MQTT-4.12.0-5] [MQTT-4.12.0-6] [MQTT-4.12.1-1] [MQTT-3.15.2-1] the JWT method: the CONNACK names it; re-authentication with AUTH 0x19 is answered AUTH 0x00 naming it, on the same connection; without a method no AUTH and no method in CONNACK', async (t) => {
    const broker = await target.broker(t, jwtConfig)
    const client = await raw(t, broker)
    const user = uniqueId('user')
    const connack = await client.connect(viaMethod(token(600, user)))
    t.equal(connack.reasonCode, 0)
    t.equal(connack.properties?.authenticationMethod, 'JWT', 'the CONNACK names the method')
    client.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'JWT', authenticationData: Buffer.from(token(900, user)) } })
    const auth = await client.expect('auth')
    t.equal(auth.reasonCode, 0, 'AUTH 0x00 Success')
    t.equal(auth.properties?.authenticationMethod, 'JWT', 'with the method')
    await client.publish(`auth/${uniqueId()}`, 'still here', { qos: 1 })
    const plain = await raw(t, broker)
    const plainConnack = await plain.connect({ username: '', password: Buffer.from(token()) })
    t.equal(plainConnack.reasonCode, 0)
    t.equal(plainConnack.properties?.authenticationMethod, undefined, 'no method in the CONNACK')
    await plain.publish(`auth/${uniqueId()}`, 'p', { qos: 1 })
    t.same((await plain.drain(200)).map((p) => p.cmd), [], 'no AUTH')
  })

  t.test('[MQTT-4.12.1-2] a failed re-authentication gets DISCONNECT 0x87, then the close', async (t) => {
    const broker = await target.broker(t, jwtConfig)
    const client = await raw(t, broker)
    await client.connect(viaMethod(token(600)))
    // a PINGREQ round trip first: an AUTH right behind the CONNACK can find the connection not yet
    // marked connected in Aedes, which then closes without the DISCONNECT (see the report of branch conf5)
    client.send({ cmd: 'pingreq' })
    await client.expect('pingresp')
    client.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'JWT', authenticationData: Buffer.from('not a token') } })
    t.equal((await client.expect('disconnect')).reasonCode, 0x87, 'Not authorized')
    t.ok(await client.closedWithin(), 'closed')
  })
}, { level: 5 })
