// The browser SDK's logic that needs no browser: backoff, the offline queue, topic matching,
// token timing, subscription routing, and the presence and typing rosters.
import t from 'tap'
import { backoffDelay } from '../clients/web/src/backoff.js'
import { connectionRefused, RealtimeError } from '../clients/web/src/errors.js'
import { OfflineQueue } from '../clients/web/src/offline-queue.js'
import { PresenceRoster } from '../clients/web/src/presence-roster.js'
import { ProtocolChoice } from '../clients/web/src/protocol.js'
import { SubscriptionRegistry, type MessageMeta } from '../clients/web/src/subscriptions.js'
import { readToken, refreshDelayMs, TokenKeeper } from '../clients/web/src/token.js'
import { TypingRoster } from '../clients/web/src/typing-roster.js'

t.test('backoff grows exponentially, is capped, and jitters below the exponential value', async (t) => {
  const options = { initialDelayMs: 500, maxDelayMs: 30_000, jitter: 0.5 }
  const noJitter = (): number => 0
  t.same([0, 1, 2, 3, 4].map((n) => backoffDelay(n, options, noJitter)), [500, 1000, 2000, 4000, 8000])
  t.equal(backoffDelay(10, options, noJitter), 30_000, 'capped')
  t.equal(backoffDelay(10_000, options, noJitter), 30_000, 'huge attempt counts stay finite')
  t.equal(backoffDelay(3, options, () => 1), 2000, 'full jitter halves the delay at most')
  const delays = Array.from({ length: 200 }, () => backoffDelay(3, options))
  t.ok(delays.every((d) => d >= 2000 && d <= 4000), 'within [delay * (1 - jitter), delay]')
  t.ok(new Set(delays).size > 50, 'spread out, so clients do not reconnect in lockstep')
})

t.test('the offline queue keeps order, refuses past its capacity, and requeues ahead', async (t) => {
  const queue = new OfflineQueue<number>(3)
  t.ok(queue.push(1))
  t.ok(queue.push(2))
  t.ok(queue.push(3))
  t.notOk(queue.push(4), 'full: the newest is refused')
  t.equal(queue.size, 3)
  t.same(queue.drain(), [1, 2, 3])
  t.equal(queue.size, 0)
  queue.push(9)
  queue.requeue([7, 8])
  t.same(queue.drain(), [7, 8, 9], 'unacknowledged publishes go ahead of newer ones')
  t.throws(() => new OfflineQueue(-1), RangeError)
  t.notOk(new OfflineQueue<number>(0).push(1), 'capacity 0 never queues')
})

t.test('token timing: refresh a fifth of the lifetime ahead, 1 s to 60 s, never before half or 1 s', async (t) => {
  const token = (claims: object): string => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`
  t.same(readToken(token({ sub: 'alice', exp: 2000, iat: 1000 })), { sub: 'alice', exp: 2000, iat: 1000 })
  t.same(readToken(token({})), { sub: null, exp: null, iat: null })
  t.throws(() => readToken('not-a-jwt'), RealtimeError)
  t.throws(() => readToken('a.!!!.c'), RealtimeError)
  // iat is rounded down to the second: one second less is certain to remain
  t.equal(refreshDelayMs({ sub: null, exp: 4601, iat: 1000 }, 0), 3_540_000, 'an hour: 60 s ahead')
  t.equal(refreshDelayMs({ sub: null, exp: 1101, iat: 1000 }, 0), 80_000, '100 s: 20 s ahead')
  t.equal(refreshDelayMs({ sub: null, exp: 1004, iat: 1000 }, 0), 2000, '3 s: 1 s ahead')
  t.equal(refreshDelayMs({ sub: null, exp: 1003, iat: 1000 }, 0), 1000, '2 s: at half its life')
  t.equal(refreshDelayMs({ sub: null, exp: 1001, iat: 1000 }, 0), 1000, 'never sooner than 1 s')
  t.equal(refreshDelayMs({ sub: null, exp: 110, iat: null }, 10_000), 80_000, 'without iat: from now')
  t.equal(refreshDelayMs({ sub: null, exp: null, iat: 1 }, 0), null, 'no expiry, no refresh')
})

t.test('the token keeper asks its provider only when a token is due or was refused', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const issued: string[] = []
  const keeper = new TokenKeeper(async () => {
    const token = `e30.${Buffer.from(JSON.stringify({ sub: 'ann', iat: now, exp: now + 3600 })).toString('base64url')}.${issued.length}`
    issued.push(token)
    return token
  })
  t.ok(keeper.renewable)
  t.equal(keeper.dueInMs(Date.now()), null, 'nothing to refresh before the first token')
  const first = await keeper.current()
  t.equal(await keeper.current(), first, 'reused while not due')
  t.equal(keeper.subject, 'ann')
  t.ok((keeper.dueInMs(Date.now()) ?? 0) > 3_400_000, 'due a minute before expiry')
  keeper.discard()
  t.not(await keeper.current(), first, 'a refused token is replaced')
  t.equal(issued.length, 2)

  const failing = new TokenKeeper(() => { throw new Error('backend down') })
  await t.rejects(failing.current(), { code: 'token', message: 'the token provider failed: backend down' })
  await t.rejects(new TokenKeeper(() => '').current(), { code: 'token', message: 'the token provider returned no token' })
  const fixed = new TokenKeeper(`e30.${Buffer.from('{"sub":"bo"}').toString('base64url')}.x`)
  t.notOk(fixed.renewable)
  t.equal(fixed.subject, 'bo')
  t.equal(fixed.dueInMs(Date.now()), null)
})

t.test('protocol choice: MQTT 5 first, 3.1.1 for good after 0x01 or 0x84, the token as password after 0x8C; forced versions stay', async (t) => {
  const auto = new ProtocolChoice(undefined)
  t.equal(auto.version, 5)
  t.ok(auto.tokenAsAuthenticationData)
  t.notOk(auto.stepBack(0x87, true), 'not authorized: nothing to change')
  t.notOk(auto.stepBack(0x8c, false), '0x8C to a CONNECT without a method: nothing to change')
  t.ok(auto.stepBack(0x8c, true), 'bad authentication method: the token goes as the password')
  t.equal(auto.version, 5, 'still MQTT 5')
  t.notOk(auto.tokenAsAuthenticationData)
  t.ok(auto.stepBack(0x01, false), 'a 3.1.1 broker\'s refusal of level 5 [MQTT-3.1.2-2]')
  t.equal(auto.version, 4)
  t.notOk(auto.stepBack(0x01, false), '3.1.1 refused too: nothing left')
  t.equal(auto.version, 4, 'never back to 5')
  const v5Refusal = new ProtocolChoice(undefined)
  t.ok(v5Refusal.stepBack(0x84, true), 'an MQTT 5 broker\'s Unsupported Protocol Version')
  t.equal(v5Refusal.version, 4)
  t.notOk(v5Refusal.tokenAsAuthenticationData, 'no Authentication Data on 3.1.1')

  const forced5 = new ProtocolChoice(5)
  t.notOk(forced5.stepBack(0x01, true))
  t.equal(forced5.version, 5)
  const forced4 = new ProtocolChoice(4)
  t.equal(forced4.version, 4)
  t.notOk(forced4.stepBack(0x01, false))

  t.equal(connectionRefused(0x01, 4).message, 'connection refused by the broker: the broker does not accept MQTT 3.1.1')
  t.equal(connectionRefused(0x01, 5).message, 'connection refused by the broker: the broker does not accept MQTT 5')
  t.equal(connectionRefused(0x86, 5).message, 'connection refused by the broker: the token was refused (malformed, expired, or signed with another key) (0x86)')
  t.equal(connectionRefused(0xfe, 5).message, 'connection refused by the broker: reason code 0xfe')
  t.equal(connectionRefused(0x05).returnCode, 5)
})

t.test('subscriptions route messages to every matching handler, parse JSON once, and report refusals', async (t) => {
  const registry = new SubscriptionRegistry()
  const got: string[] = []
  const a = registry.add('chat/+/messages', { raw: false, handler: (data) => got.push(`a:${JSON.stringify(data)}`) }, 1)
  t.ok(a.needsSubscribe, 'the first handler of a filter subscribes')
  const b = registry.add('chat/+/messages', { raw: true, handler: (bytes) => got.push(`b:${bytes.length}`) }, 1)
  t.notOk(b.needsSubscribe, 'later handlers wait for the same SUBACK')
  registry.granted('chat/+/messages')
  await Promise.all([a.ready, b.ready])
  t.same(registry.all(), [{ filter: 'chat/+/messages', qos: 1 }])

  const message = (topic: string, text: string): MessageMeta => ({ topic, retained: false, qos: 1, payload: new TextEncoder().encode(text) })
  const errors: unknown[] = []
  registry.dispatch(message('chat/r1/messages', '{"text":"hi"}'), (err) => errors.push(err))
  registry.dispatch(message('chat/r1/typing', '{}'), (err) => errors.push(err))
  registry.dispatch(message('chat/r1/messages', 'not json'), (err) => errors.push(err))
  registry.dispatch(message('chat/r1/messages', ''), (err) => errors.push(err))
  t.same(got, ['a:{"text":"hi"}', 'b:13', 'b:8', 'a:null', 'b:0'], 'non-matching topics are skipped; empty payloads are null')
  t.equal(errors.length, 1, 'a payload that is not JSON is reported once')
  t.equal((errors[0] as RealtimeError).code, 'payload')

  const refused = registry.add('staff/#', { raw: false, handler: () => {} }, 1)
  const error = new RealtimeError('subscription-refused', 'refused')
  t.ok(registry.refused('staff/#', error), 'a waiting subscriber is told')
  await t.rejects(refused.ready, error)
  t.same(registry.all().map((s) => s.filter), ['chat/+/messages'], 'a refused filter is dropped')

  const entry = { raw: false as const, handler: (): void => {} }
  registry.add('x', entry, 0)
  t.notOk(registry.remove('chat/+/messages', entry), 'removing a handler that is not there changes nothing')
  t.ok(registry.remove('x', entry), 'the last handler of a filter: time to unsubscribe')
})

t.test('typing roster: typists expire by themselves, stop removes at once', async (t) => {
  const roster = new TypingRoster(6000, 30_000)
  t.ok(roster.apply({ user: 'alice', typing: true, ttlMs: 5000 }, 0))
  t.notOk(roster.apply({ user: 'alice', typing: true, ttlMs: 5000 }, 1000), 'still typing: no change')
  t.ok(roster.apply({ user: 'bob', typing: true, ttlMs: 999_999 }, 0))
  t.same(roster.users(), ['alice', 'bob'])
  t.equal(roster.nextExpiry(), 6000, 'alice, renewed at 1000')
  t.notOk(roster.expire(5999))
  t.ok(roster.expire(6000))
  t.same(roster.users(), ['bob'])
  t.notOk(roster.expire(29_999), 'a long ttl is capped at the maximum')
  t.ok(roster.expire(30_000))
  roster.apply({ user: 'carol', typing: true }, 0)
  t.ok(roster.apply({ user: 'carol', typing: false }, 10))
  t.same(roster.users(), [])
  t.equal(roster.nextExpiry(), null)
})

t.test('presence roster: announced connections until the broker publishes $presence', async (t) => {
  const roster = new PresenceRoster()
  roster.applyEntry('alice', 'tab1', { user: 'alice', online: true, since: 5 }, 100)
  roster.applyEntry('alice', 'tab2', { user: 'alice', online: true, since: 6 }, 100)
  roster.applyEntry('bob', 'tab1', { user: 'bob', online: true, since: 7 }, 100)
  t.same(roster.get('alice'), { user: 'alice', online: true, connections: 2, lastSeen: null, source: 'announced' })
  roster.applyEntry('bob', 'tab1', null, 200) // his will cleared the entry
  t.same(roster.get('bob'), { user: 'bob', online: false, connections: 0, lastSeen: 200, source: 'announced' })
  t.same(roster.all().map((p) => [p.user, p.online]), [['alice', true], ['bob', false]])

  roster.forgetOlderThan(150)
  t.equal(roster.get('alice').online, false, 'entries not sent again after a reconnect are gone')

  roster.applyBrokerRecord('carol', { user: 'carol', online: true, connections: 3, lastSeen: '2026-01-01T00:00:00Z' }, 300)
  t.same(roster.get('carol'), { user: 'carol', online: true, connections: 3, lastSeen: Date.parse('2026-01-01T00:00:00Z'), source: 'broker' })
  roster.applyEntry('dave', 'tab1', { user: 'dave', online: true }, 300)
  t.same(roster.get('dave'), { user: 'dave', online: false, connections: 0, lastSeen: null, source: 'broker' }, 'once the broker speaks, it is the source')
  t.same(roster.all().map((p) => p.user), ['carol'])
  roster.applyBrokerRecord('carol', null, 400)
  t.same(roster.all(), [], 'a cleared record removes the user')
  roster.applyBrokerRecord('erin', { online: false, lastSeen: 1234 }, 500)
  t.same(roster.get('erin'), { user: 'erin', online: false, connections: 0, lastSeen: 1234, source: 'broker' })
})
