// JWT authentication, end to end: real broker, real clients, tokens forged every way we know.
import { generateKeyPairSync } from 'node:crypto'
import jwt from 'jsonwebtoken'
import { connect } from 'mqtt'
import t from 'tap'
import { loadConfig } from '../src/broker/config/config.js'
import { brokerUrl, closeClient, collect, connectClient, connectRefused, sleep, startBroker, subscribeGranted, waitFor } from './helpers/broker.js'
import { runCli } from './helpers/process.js'

const secret = 'test-secret-that-is-long-enough-0123456789'
// MQTT 3.1.1 sends a password only with a user name [MQTT-3.1.2-22]: tests send '' (empty).
const sign = (payload: object, options: jwt.SignOptions = {}, key: jwt.Secret = secret): string =>
  jwt.sign(payload, key, { algorithm: 'HS256', expiresIn: 600, ...options })

/** The shipped default config with JWT_SECRET set: the interface contract of the ACL issue. */
function defaultConfigWithSecret (): ReturnType<typeof loadConfig> {
  const config = loadConfig({ file: new URL('../config/default.yaml', import.meta.url).pathname, env: { JWT_SECRET: secret } })
  return { ...config, host: '127.0.0.1', mqtt: { ...config.mqtt, port: 0 }, http: { ...config.http, port: 0 } }
}

t.test('JWT_SECRET with the default config: anonymous off, CLI tokens allow exactly their filters', async (t) => {
  const config = defaultConfigWithSecret()
  const broker = await startBroker(t, { ...config, auth: { ...config.auth, anonymous: config.auth.anonymous } })
  t.equal(await connectRefused(t, brokerUrl(broker, 'tcp')), 5, 'no credentials: CONNACK 5 not authorized')

  const minted = await runCli(['token', '--user', 'alice', '--pub', 'chat/room1/#', '--sub', 'chat/room1/#', '--ttl', '600'], { JWT_SECRET: secret })
  t.equal(minted.code, 0)
  const token = minted.stdout.trim()
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'stdout holds only the token')

  const alice = await connectClient(t, broker, 'tcp', { username: 'alice', password: token })
  t.same(await subscribeGranted(alice, { 'chat/room1/#': { qos: 1 }, 'chat/room1/+/typing': { qos: 0 }, 'chat/#': { qos: 1 }, '#': { qos: 0 }, 'chat/room2': { qos: 0 } }),
    [1, 0, 128, 128, 128], 'granted only where the token covers every matching topic')
  const got = collect(alice)
  await alice.publishAsync('chat/room1/msg', 'hi', { qos: 1 })
  await waitFor(() => got.length === 1, 'own message')

  const closed = new Promise<void>((resolve) => alice.once('close', () => resolve()))
  alice.publish('chat/room2/msg', 'sneaky', { qos: 1 })
  await closed
  t.pass('a denied publish closes the connection (default onPublishDenied: disconnect)')
})

t.test('a # grant does not cover $ topics; $SYS is for admins; nobody publishes to $', async (t) => {
  const config = defaultConfigWithSecret()
  const broker = await startBroker(t, { ...config, acl: { ...config.acl, users: { root: { roles: ['admin'] } } } })
  const member = await connectClient(t, broker, 'tcp', { username: '', password: sign({ sub: 'bob', acl: { pub: ['#'], sub: ['#'] } }) })
  t.same(await subscribeGranted(member, { '$presence/#': { qos: 0 }, '$SYS/#': { qos: 0 }, '#': { qos: 0 } }), [128, 128, 0])
  const admin = await connectClient(t, broker, 'tcp', { username: '', password: sign({ sub: 'root' }) })
  t.same(await subscribeGranted(admin, { '$SYS/#': { qos: 0 } }), [0], 'the admin role reads $SYS')
  const seen = collect(admin)
  // acknowledged and dropped, the connection kept, as Mosquitto and EMQX do (docs/auth.md)
  await admin.publishAsync('$SYS/fake', 'x', { qos: 1 })
  await member.publishAsync('$presence/bob', 'forged', { qos: 1 })
  await sleep(200)
  t.ok(admin.connected && member.connected, 'a publish to a $ topic does not cost the connection')
  t.notOk(seen.some((m) => m.topic === '$SYS/fake'), 'publishing to $SYS is denied even to admins')
})

t.test('forged, expired and misused tokens get CONNACK 4', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const broker = await startBroker(t, {
    auth: {
      anonymous: false,
      jwt: {
        secret,
        keys: [{ kid: 'rsa-1', publicKey: publicPem, algorithms: ['RS256'] }],
        algorithms: ['HS256', 'RS256'],
        audience: 'realtime-broker',
        clockToleranceS: 0,
        requireExp: true,
        expiryGraceS: 0,
        username: 'empty-or-subject'
      }
    },
    acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, users: {}, defaultRoles: ['member'], onPublishDenied: 'disconnect', onLimitExceeded: 'drop' }
  })
  const url = brokerUrl(broker, 'tcp')
  const aud = { audience: 'realtime-broker' }
  const now = Math.floor(Date.now() / 1000)
  const header = (obj: object): string => Buffer.from(JSON.stringify(obj)).toString('base64url')
  const cases: Array<[string, string]> = [
    ['wrong key', sign({ sub: 'a' }, aud, 'another-secret-another-secret-000')],
    ['alg none', `${header({ alg: 'none', typ: 'JWT' })}.${header({ sub: 'a', aud: 'realtime-broker', exp: now + 600 })}.`],
    ['HS256 signed with the RSA public key (key confusion)', `${header({ alg: 'HS256', typ: 'JWT', kid: 'rsa-1' })}.${header({ sub: 'a', aud: 'realtime-broker', exp: now + 600 })}.` +
      (await import('node:crypto')).createHmac('sha256', publicPem).update(`${header({ alg: 'HS256', typ: 'JWT', kid: 'rsa-1' })}.${header({ sub: 'a', aud: 'realtime-broker', exp: now + 600 })}`).digest('base64url')],
    ['expired', jwt.sign({ sub: 'a', aud: 'realtime-broker', exp: now - 10 }, secret, { algorithm: 'HS256' })],
    ['not yet valid', sign({ sub: 'a' }, { ...aud, notBefore: 3600 })],
    ['wrong audience', sign({ sub: 'a' }, { audience: 'someone-else' })],
    ['no exp', jwt.sign({ sub: 'a', aud: 'realtime-broker' }, secret, { algorithm: 'HS256' })],
    ['no sub', sign({}, aud)],
    ['unknown kid', sign({ sub: 'a' }, { ...aud, keyid: 'nope' })],
    ['garbage', 'not-a-token']
  ]
  for (const [what, token] of cases) t.equal(await connectRefused(t, url, { username: '', password: token }), 4, what)
  t.equal(await connectRefused(t, url, { username: 'mallory', password: sign({ sub: 'a' }, aud) }), 4, 'user name differs from the subject')

  await connectClient(t, broker, 'tcp', { username: '', password: sign({ sub: 'a' }, aud) })
  await connectClient(t, broker, 'tcp', { username: 'a', password: sign({ sub: 'a' }, aud) })
  await connectClient(t, broker, 'tcp', { username: '', password: jwt.sign({ sub: 'r' }, privateKey, { algorithm: 'RS256', keyid: 'rsa-1', expiresIn: 60, audience: 'realtime-broker' }) })
  t.pass('valid HMAC and RSA tokens are accepted, the key picked by kid')
})

t.test('over WebSocket the token may come from the upgrade request', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] } })
  const token = sign({ sub: 'web' })
  const base = `ws://127.0.0.1:${broker.addresses.http.port}/mqtt`
  const viaQuery = connect(`${base}?token=${token}`, { reconnectPeriod: 0 })
  const viaHeader = connect(base, { reconnectPeriod: 0, wsOptions: { headers: { authorization: `Bearer ${token}` } } })
  t.teardown(() => Promise.all([closeClient(viaQuery), closeClient(viaHeader)]))
  await Promise.all([viaQuery, viaHeader].map((c) => new Promise((resolve, reject) => { c.once('connect', resolve); c.once('error', reject) })))
  t.pass('both connected')
  t.equal(await connectRefused(t, `${base}?token=forged`), 4)
})

t.test('placeholder injection through the client id or user name is refused', async (t) => {
  const broker = await startBroker(t, {
    auth: { anonymous: false, jwt: { secret } },
    acl: { roles: { device: { pub: ['devices/%c/#'], sub: ['devices/%c/#', 'users/%u/inbox'] } }, defaultRoles: ['device'] }
  })
  const url = brokerUrl(broker, 'tcp')
  t.equal(await connectRefused(t, url, { clientId: '#', username: '', password: sign({ sub: 'eve' }) }), 2, 'client id # would widen devices/%c/#')
  t.equal(await connectRefused(t, url, { clientId: 'a/b', username: '', password: sign({ sub: 'eve' }) }), 2, 'client id with / would add a level')
  t.equal(await connectRefused(t, url, { clientId: 'ok', username: '', password: sign({ sub: '+' }) }), 5, 'user + would widen users/%u/inbox')
  const device = await connectClient(t, broker, 'tcp', { clientId: 'sensor-7', username: '', password: sign({ sub: 'eve' }) })
  t.same(await subscribeGranted(device, { 'devices/sensor-7/#': { qos: 0 }, 'devices/+/cmd': { qos: 0 }, 'users/eve/inbox': { qos: 0 }, 'users/bob/inbox': { qos: 0 } }), [0, 128, 0, 128])
})

t.test('forwarding never delivers a topic the subscriber may not read: live, retained, queued offline', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] } })
  const wide = sign({ sub: 'carol', acl: { pub: [], sub: ['feed/#'] } })
  const narrow = sign({ sub: 'carol', acl: { pub: [], sub: ['feed/public/#'] } })
  const session = { clientId: 'carol-phone', clean: false }
  const first = await connectClient(t, broker, 'tcp', { ...session, username: '', password: wide })
  await first.subscribeAsync('feed/#', { qos: 1 })
  await closeClient(first, false)

  const pub = await connectClient(t, broker, 'tcp', { username: '', password: sign({ sub: 'pub' }) })
  await pub.publishAsync('feed/secret', 'queued secret', { qos: 1 })
  await pub.publishAsync('feed/public/news', 'queued news', { qos: 1 })
  await pub.publishAsync('feed/secret-retained', 'retained secret', { qos: 1, retain: true })

  // the same session comes back with a narrower token
  let got: ReturnType<typeof collect> = []
  const again = connect(brokerUrl(broker, 'tcp'), { ...session, username: '', password: narrow, reconnectPeriod: 0 })
  t.teardown(() => closeClient(again))
  got = collect(again)
  await new Promise((resolve) => again.once('connect', resolve))
  await waitFor(() => got.length >= 1, 'the readable queued message')
  t.same(await subscribeGranted(again, { 'feed/#': { qos: 1 }, 'feed/public/#': { qos: 1 } }), [128, 1])
  await pub.publishAsync('feed/secret', 'live secret', { qos: 1 })
  await pub.publishAsync('feed/public/live', 'live news', { qos: 1 })
  await waitFor(() => got.some((m) => m.topic === 'feed/public/live'), 'live news')
  t.notOk(got.some((m) => m.payload.includes('secret')), `no secret delivered: ${JSON.stringify(got.map((m) => m.topic))}`)
})

t.test('an expiring token disconnects its client on time', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret, clockToleranceS: 0 } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] } })
  const client = await connectClient(t, broker, 'tcp', { username: '', password: sign({ sub: 'short' }, { expiresIn: 2 }) })
  const started = Date.now()
  await new Promise<void>((resolve) => client.once('close', () => resolve()))
  const after = Date.now() - started
  t.ok(after < 3500, `closed ${after} ms after connect, at the token's expiry`)
})

t.test('clock skew: within clockToleranceS a token is accepted, beyond it refused; an expired one lasts until exp + tolerance', async (t) => {
  const toleranceS = 4
  const broker = await startBroker(t, {
    auth: { anonymous: false, jwt: { secret, clockToleranceS: toleranceS, expiryGraceS: 0 } },
    acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] }
  })
  const url = brokerUrl(broker, 'tcp')
  const now = Math.floor(Date.now() / 1000)
  // tokens from an issuer whose clock runs ahead (nbf, iat in the future) or behind (exp passed)
  const token = (claims: object): string => jwt.sign({ sub: 'skewed', ...claims }, secret, { algorithm: 'HS256' }) // iat: the claims' or now
  const ahead = await connectClient(t, broker, 'tcp', { username: '', password: token({ nbf: now + 2, iat: now + 2, exp: now + 600 }) })
  t.ok(ahead.connected, 'nbf and iat 2 s ahead (within the tolerance): accepted')
  t.equal(await connectRefused(t, url, { username: '', password: token({ nbf: now + 30, iat: now + 30, exp: now + 600 }) }), 4, 'nbf 30 s ahead (beyond the tolerance): CONNACK 4')
  t.equal(await connectRefused(t, url, { username: '', password: token({ iat: now + 3600, exp: now + 7200 }) }).catch(() => 0), 4,
    'iat an hour ahead, no nbf (an issuer clock an hour fast): CONNACK 4')
  t.equal(await connectRefused(t, url, { username: '', password: token({ exp: now - 30 }) }), 4, 'expired 30 s ago (beyond the tolerance): CONNACK 4')

  // expired 1-2 s ago, within the tolerance: accepted, and disconnected at exp + tolerance
  const exp = now - 1
  const client = await connectClient(t, broker, 'tcp', { username: '', password: token({ exp }) })
  const connectedAt = Date.now()
  t.pass('a token that expired within the tolerance is accepted (CONNACK 0)')
  const closedAt = await new Promise<number>((resolve) => {
    client.once('close', () => resolve(Date.now()))
    setTimeout(() => resolve(Date.now() + 60_000), (exp + toleranceS) * 1000 - Date.now() + 3000)
  })
  const due = (exp + toleranceS) * 1000
  t.ok(closedAt <= due + 1000, `disconnected ${closedAt - due} ms after exp + tolerance`)
  t.ok(closedAt >= due - 300, `stayed connected until exp + tolerance (${closedAt - connectedAt} ms, due ${due - connectedAt} ms after connect)`)
})

t.test('a will is authorized as a publish of its owner at connect', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'] } })
  const url = brokerUrl(broker, 'tcp')
  const token = sign({ sub: 'dave', acl: { pub: ['status/dave'], sub: [] } })
  t.equal(await connectRefused(t, url, { username: '', password: token, will: { topic: 'status/erin', payload: Buffer.from('x'), qos: 0, retain: false } }), 5)
  await connectClient(t, broker, 'tcp', { username: '', password: token, will: { topic: 'status/dave', payload: Buffer.from('x'), qos: 0, retain: false } })
})

t.test('onPublishDenied: drop acknowledges and discards, the connection stays', async (t) => {
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret } }, acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, defaultRoles: ['member'], onPublishDenied: 'drop' } })
  const watcher = await connectClient(t, broker, 'tcp', { username: '', password: sign({ sub: 'w' }) })
  await watcher.subscribeAsync('#', { qos: 1 })
  const got = collect(watcher)
  const limited = await connectClient(t, broker, 'tcp', { username: '', password: sign({ sub: 'l', acl: { pub: ['allowed'], sub: [] } }) })
  await limited.publishAsync('forbidden', 'x', { qos: 1 })
  await limited.publishAsync('allowed', 'y', { qos: 1 })
  await waitFor(() => got.length === 1, 'the allowed message')
  t.same(got.map((m) => m.topic), ['allowed'])
  t.ok(limited.connected, 'still connected')
})

t.test('role limits: rate, subscriptions, payload size, QoS', async (t) => {
  const broker = await startBroker(t, {
    auth: { anonymous: false, jwt: { secret } },
    acl: {
      roles: {
        member: { pub: ['#'], sub: ['#'] },
        limited: { pub: ['#'], sub: ['#'], limits: { maxPublishRate: 5, maxSubscriptions: 2, maxPayloadSize: 100, maxQos: 1 } }
      },
      users: { lim: { roles: ['limited'] } },
      defaultRoles: [],
      onLimitExceeded: 'drop'
    }
  })
  const watcher = await connectClient(t, broker, 'tcp', { username: '', password: sign({ sub: 'w', roles: [] }) })
  t.same(await subscribeGranted(watcher, { '#': { qos: 0 } }), [128], 'a user with no roles may do nothing')

  const observer = await connectClient(t, broker, 'tcp', { username: '', password: sign({ sub: 'lim' }) })
  t.same(await subscribeGranted(observer, { 'rate/#': { qos: 2 } }), [1], 'QoS capped at the role maximum')
  t.same(await subscribeGranted(observer, { 'b': { qos: 0 }, 'c': { qos: 0 } }), [0, 128], 'max 2 subscriptions')
  const got = collect(observer)
  const publisher = await connectClient(t, broker, 'tcp', { username: '', password: sign({ sub: 'lim' }) })
  await Promise.all(Array.from({ length: 20 }, (_, i) => publisher.publishAsync(`rate/${i}`, 'x', { qos: 1 })))
  await publisher.publishAsync('rate/big', Buffer.alloc(101), { qos: 1 }).catch(() => {})
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.ok(got.length >= 5 && got.length <= 7, `rate limit: ${got.length} of 20 delivered (5/s with one second of burst)`)
  t.notOk(got.some((m) => m.topic === 'rate/big'), 'payload over maxPayloadSize dropped')
  t.ok(publisher.connected, 'drop policy keeps the publisher connected')
})
