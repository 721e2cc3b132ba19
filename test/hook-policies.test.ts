// The policies of webhooks and the authorization hook, as plain functions: backoff bounds,
// answers parsed and cached (ttl, bound, revocation), connect answers that can only narrow.
import t from 'tap'
import { failureAnswer, HookAnswerCache, narrowedIdentity, parseHookAnswer, parseRevocation } from '../src/acl/authorization-hook.js'
import { backoffDelay, batchBody } from '../src/broker/webhooks/sender.js'
import { eventJson, MessageEventJson } from '../src/broker/webhooks/events.js'
import { entriesWithin, entryEvents, MemoryOutbox, type OutboxEntry } from '../src/broker/webhooks/outbox.js'

t.test('backoff doubles from the initial delay, is capped, its upper half random', async (t) => {
  t.equal(backoffDelay(0, 500, 60_000, () => 0), 250, 'attempt 0, no jitter: half the initial delay')
  t.equal(backoffDelay(0, 500, 60_000, () => 1), 500, 'attempt 0, full jitter: the initial delay')
  t.equal(backoffDelay(3, 500, 60_000, () => 1), 4000, 'doubling')
  t.equal(backoffDelay(20, 500, 60_000, () => 1), 60_000, 'capped at the maximum')
  t.equal(backoffDelay(10_000, 500, 60_000, () => 0.5), 45_000, 'no overflow on a long outage')
})

t.test('events are JSON the receiver can parse, batched without parsing them again', async (t) => {
  const messages = new MessageEventJson(JSON.stringify('node-1'))
  const message = (topic: string, qos: number, retain: boolean, payload: Buffer | string, clientId: string | null = null, user: string | null = 'al\\ice'): { id: string, type: string, at: string, node: string, data: Record<string, unknown> } =>
    JSON.parse(messages.build(topic, qos, retain, MessageEventJson.client(clientId, user), payload)) as { id: string, type: string, at: string, node: string, data: Record<string, unknown> }
  const event = message('a/"quoted"', 1, false, Buffer.from([0xc3, 0x28]))
  t.same(event.data, { topic: 'a/"quoted"', qos: 1, retain: false, clientId: null, user: 'al\\ice', payload: Buffer.from([0xc3, 0x28]).toString('base64'), encoding: 'base64' }, 'quoting and a non-UTF-8 payload survive')
  t.equal(event.type, 'message.published')
  t.equal(event.node, 'node-1')
  t.ok(!Number.isNaN(Date.parse(event.at)), 'an ISO time')
  // the plain-ASCII shortcut, and what must leave it: quotes, backslashes, controls, UTF-8, DEL, length
  const texts = ['hello world 0123456789', '', 'say "hi"', 'back\\slash', 'tab\there', 'line\n', 'caf\u00e9 \u{1f600}', '\u007f', 'x'.repeat(513)]
  const plain = new Set(['hello world 0123456789', ''])
  for (const text of texts) {
    const expected = { topic: 'room/1', qos: 2, retain: true, clientId: 'c"1', user: null, payload: text, encoding: 'utf8' }
    t.same(message('room/1', 2, true, Buffer.from(text), 'c"1', null).data, expected, `payload ${JSON.stringify(text.slice(0, 12))} as UTF-8 text`)
    t.same(message('room/1', 0, false, text).data.payload, text, 'a string payload too')
    // the bytes path: plain ASCII only, the same event
    const prepared = messages.prepare('room/1', 2, true, MessageEventJson.client('c"1', null), Buffer.from(text))
    t.equal(prepared !== null, plain.has(text), `payload ${JSON.stringify(text.slice(0, 12))} ${plain.has(text) ? 'copied as bytes' : 'built as text'}`)
    if (prepared === null) continue
    const into = Buffer.alloc(prepared.length + 4, '#')
    prepared.writeTo(into, 2)
    t.equal(into.toString('latin1', 0, 2) + into.toString('latin1', into.length - 2), '####', 'written within its length')
    const written = JSON.parse(into.subarray(2, 2 + prepared.length).toString()) as { id: string, type: string, at: string, node: string, data: unknown }
    t.same(written.data, expected, 'the same data as built')
    t.match(written, { type: 'message.published', node: 'node-1' })
    t.ok(!Number.isNaN(Date.parse(written.at)), 'an ISO time')
  }
  // 2,000 ids from this fresh process's counter: across its 1-, 2- and 3-digit lengths
  const counters: number[] = []
  for (let n = 0; n < 2000; n++) {
    const prepared = messages.prepare('room/1', 0, false, MessageEventJson.client(null, null), Buffer.from('x'))
    const into = Buffer.alloc(prepared?.length ?? 0)
    prepared?.writeTo(into, 0)
    const { id } = JSON.parse(into.toString()) as { id: string }
    counters.push(parseInt(id.slice(id.lastIndexOf('-') + 1), 36))
  }
  t.ok(counters.every((counter, at) => counter === (counters[0] as number) + at) && (counters[0] as number) < 1296 && (counters[1999] as number) >= 1296, 'ids in base 36, one after another, across digit lengths')
  t.same(message('room/1', 0, false, Buffer.from('x')).data.topic, 'room/1', 'a topic\'s remembered piece')
  t.not(message('room/1', 0, false, 'x').id, message('room/1', 0, false, 'x').id, 'a new id each time')
  const expired = (clientId: string): string => eventJson('session.expired', '"n"', JSON.stringify({ clientId }))
  const body = JSON.parse(Buffer.concat(batchBody([{ id: '1', events: `${expired('c')},${expired('d')}`, count: 2, enqueuedAt: 0 }, { id: '2', events: expired('e'), count: 1, enqueuedAt: 0 }])).toString()) as { events: Array<{ data: unknown, id: string }> }
  t.same(body.events.map((e) => e.data), [{ clientId: 'c' }, { clientId: 'd' }, { clientId: 'e' }])
  t.equal(new Set(body.events.map((e) => e.id)).size, 3, 'ids differ')
})

t.test('the memory outbox: batches of at most the batch size, in order; dead letters one by one', async (t) => {
  const outbox = new MemoryOutbox(5, 10, 2)
  const event = (n: number): string => JSON.stringify({ id: String(n), data: { text: 'a,b' } })
  for (let n = 1; n <= 5; n++) t.ok(outbox.append('e', event(n)), `event ${n} queued`)
  t.notOk(outbox.append('e', event(6)), 'over maxPending: refused')
  t.equal(outbox.pending('e'), 5)
  const first = await outbox.take('e', 2)
  t.same(first.entries.flatMap(entryEvents), [1, 2].map(event), 'the oldest two, commas inside events kept')
  t.ok(first.full, 'a full batch')
  await outbox.ack('e', first.entries)
  t.equal(outbox.pending('e'), 3)
  const rest = await outbox.take('e', 100)
  t.notOk(rest.full, 'not full: the sender may wait for more')
  await outbox.deadLetter('e', rest.entries, 'HTTP 500')
  t.equal(outbox.pending('e'), 0)
  const dead = await outbox.deadLetters('e', 10)
  t.same(dead.map((letter) => letter.event), [3, 4, 5].map(event), 'one dead letter per event')
  t.equal(new Set(dead.map((letter) => letter.id)).size, 3, 'each with its own id')
  t.equal(await outbox.replay('e', [dead[1]?.id ?? '']), 1, 'replayed by id')
  t.same((await outbox.take('e', 10)).entries.flatMap(entryEvents), [event(4)])
  const entry = (id: string, count: number): OutboxEntry => ({ id, events: '', count, enqueuedAt: 0 })
  t.same(entriesWithin([entry('a', 7)], 3), { entries: [entry('a', 7)], full: true }, 'an entry larger than the batch still goes, alone')
  t.same(entriesWithin([entry('a', 2), entry('b', 2)], 3), { entries: [entry('a', 2)], full: true }, 'the next entry does not fit: full')
  t.same(entriesWithin([entry('a', 1), entry('b', 1)], 3), { entries: [entry('a', 1), entry('b', 1)], full: false }, 'room left: not full')
  // a body of 100 bytes: `{"events":[` and `]}` (13) and 40 + 1 + 40 bytes fit, the third entry does not
  const sized = (id: string, text: string | Buffer): OutboxEntry => ({ id, events: text, count: 1, enqueuedAt: 0 })
  const forty = ['a', 'b', 'c'].map((id) => sized(id, `"${'é'.repeat(19)}"`))
  t.same(entriesWithin(forty, 10, 100), { entries: forty.slice(0, 2), full: true }, 'the byte cap counts UTF-8 bytes: full at 94 of 100')
  t.same(entriesWithin([sized('big', Buffer.alloc(500)), ...forty], 10, 100).entries.map((e) => e.id), ['big'], 'an entry over the byte cap still goes, alone')
})

t.test('hook answers: parsed strictly, ttl from the answer or the default', async (t) => {
  t.same(parseHookAnswer({ allow: true }, 60), { allow: true, ttlMs: 60_000 })
  t.same(parseHookAnswer({ allow: false, ttl: 0 }, 60), { allow: false, ttlMs: 0 })
  t.same(parseHookAnswer({ allow: true, ttl: 10 ** 9 }, 60), { allow: true, ttlMs: 86_400_000 }, 'a ttl is at most a day')
  t.same(parseHookAnswer({ allow: true, roles: ['a'], acl: { pub: ['x/#'] } }, 60), { allow: true, ttlMs: 60_000, roles: ['a'], acl: { pub: ['x/#'], sub: [] } })
  for (const bad of [null, 'yes', {}, { allow: 'true' }, { allow: true, ttl: -1 }, { allow: true, roles: 'admin' }, { allow: true, acl: { pub: ['a/#/b'] } }]) {
    t.equal(parseHookAnswer(bad, 60), null, `refused: ${JSON.stringify(bad)}`)
  }
  t.same(failureAnswer('deny'), { allow: false, ttlMs: 0 }, 'a failure denies, uncached')
  t.same(failureAnswer('allow'), { allow: true, ttlMs: 0 })
})

t.test('a connect answer narrows roles and grants, never widens them', async (t) => {
  const identity = { user: 'u', roles: ['member', 'guest'], expiresAt: null, tokenAcl: null }
  t.same(narrowedIdentity(identity, { allow: true, ttlMs: 0, roles: ['guest', 'admin'] }).roles, ['guest'], 'admin, not given by the config, is not taken')
  t.same(narrowedIdentity(identity, { allow: true, ttlMs: 0, acl: { pub: ['a'], sub: [] } }).tokenAcl, { pub: ['a'], sub: [] })
  t.same(narrowedIdentity(identity, { allow: true, ttlMs: 0 }), identity, 'nothing answered: unchanged')
})

t.test('the answer cache: per user, action and topic; ttl; bounded; revoked per user', async (t) => {
  const cache = new HookAnswerCache(3)
  const allow = { allow: true, ttlMs: 1000 }
  cache.set('alice', 'publish', 'a', allow, 0)
  t.same(cache.get('alice', 'publish', 'a', 999), allow, 'within its ttl')
  t.equal(cache.get('alice', 'subscribe', 'a', 1), undefined, 'per action')
  t.equal(cache.get('bob', 'publish', 'a', 1), undefined, 'per user')
  t.equal(cache.get('alice', 'publish', 'a', 1000), undefined, 'expired at its ttl')
  t.equal(cache.entries, 0, 'and forgotten')
  cache.set('alice', 'publish', 'x', { allow: true, ttlMs: 0 }, 0)
  t.equal(cache.entries, 0, 'a ttl of 0 is not cached')
  for (const topic of ['1', '2', '3', '4']) cache.set('alice', 'publish', topic, allow, 0)
  t.equal(cache.entries, 3, 'bounded')
  t.equal(cache.get('alice', 'publish', '1', 1), undefined, 'the oldest went first')
  cache.set('bob', 'publish', '1', allow, 0)
  t.equal(cache.revoke('alice'), 2, 'revoked: alice\'s answers')
  t.same(cache.get('bob', 'publish', '1', 1), allow, 'bob\'s stay')
})

t.test('revocations: a user, and what else to do', async (t) => {
  t.same(parseRevocation({ user: 'bob' }), { user: 'bob', disconnect: false, unsubscribe: false })
  t.same(parseRevocation({ user: 'bob', disconnect: true, unsubscribe: ['a/+'] }), { user: 'bob', disconnect: true, unsubscribe: ['a/+'] })
  for (const bad of [{}, { user: '' }, { user: 'b', disconnect: 'yes' }, { user: 'b', unsubscribe: ['a/#/b'] }]) t.ok('error' in parseRevocation(bad), `refused: ${JSON.stringify(bad)}`)
})
