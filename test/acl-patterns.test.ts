// Topic patterns: matching topics and covering filters, the core of every ACL decision.
import t from 'tap'
import { levelsMatch } from '../src/acl/topic-grammar.js'
import { compilePattern, covers } from '../src/acl/topic-pattern.js'
import { compileGrants, type AclConfig } from '../src/acl/authorize.js'
import type { Identity } from '../src/acl/identity.js'

const p = (pattern: string): readonly string[] => {
  const compiled = compilePattern(pattern, { user: 'alice', clientId: 'phone-1' })
  if (compiled === null) throw new Error(`cannot compile ${pattern}`)
  return compiled
}

t.test('matches follows MQTT 3.1.1 section 4.7', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['#', 'a/b', true], ['#', '$SYS/x', false], ['+/b', '$SYS/b', false], ['$SYS/#', '$SYS/x', true],
    ['a/#', 'a', true], ['a/#', 'a/b/c', true], ['a/+', 'a/b', true], ['a/+', 'a/b/c', false],
    ['a/+', 'a/', true], ['+/+', '/x', true], ['a', 'a/', false], ['a/b', 'a/b', true], ['a/b', 'a/c', false],
    ['chat/%u/#', 'chat/alice/x', true], ['chat/%u/#', 'chat/bob/x', false], ['dev/%c', 'dev/phone-1', true]
  ]
  for (const [pattern, topic, expected] of cases) t.equal(levelsMatch(p(pattern), topic), expected, `${pattern} ~ ${topic}`)
})

t.test('covers: a grant covers a filter only if it matches every topic the filter can', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['chat/room1/#', 'chat/room1/+/typing', true], ['chat/room1/#', 'chat/#', false], ['chat/room1/#', '#', false],
    ['chat/room1/#', 'chat/room1/#', true], ['chat/room1/#', 'chat/room1', true], ['chat/+', 'chat/+', true],
    ['chat/+', 'chat/#', false], ['chat/+', 'chat/a/b', false], ['#', '$presence/#', false], ['#', '+/x', true],
    ['$presence/#', '$presence/+', true], ['+/x', '$SYS/x', false], ['a/b', 'a/+', false], ['a/+/c', 'a/b/c', true],
    ['a/#', 'a/+/#', true], ['a/+/#', 'a/#', false]
  ]
  for (const [grant, filter, expected] of cases) t.equal(covers(p(grant), filter), expected, `${grant} covers ${filter}`)
})

t.test('placeholders refuse values that would widen a pattern', async (t) => {
  for (const bad of ['#', '+', 'a/b', '', 'x\u0000y']) {
    t.equal(compilePattern('devices/%c/#', { user: null, clientId: bad }), null, `client id ${JSON.stringify(bad)}`)
  }
  t.equal(compilePattern('users/%u/#', { user: null, clientId: 'c' }), null, 'anonymous has no %u')
  t.same(compilePattern('a/%u', { user: 'bob', clientId: 'c' }), ['a', 'bob'])
})

t.test('grants that depend only on the roles are compiled once and shared; per-client ones are not', async (t) => {
  const acl: AclConfig = {
    roles: { reader: { pub: [], sub: ['news/#'] }, owner: { pub: ['devices/%c/#'], sub: ['devices/%c/#'] } },
    users: { alice: { roles: ['reader'] }, bob: { roles: ['reader', 'owner'] } },
    defaultRoles: []
  }
  const who = (user: string, roles: string[], tokenAcl: Identity['tokenAcl'] = null): Identity => ({ user, roles, expiresAt: null, tokenAcl })
  const grants = (identity: Identity, clientId: string): unknown => {
    const result = compileGrants(identity, clientId, acl)
    return result.ok ? result.grants : t.fail(result.reason)
  }
  t.equal(grants(who('alice', ['reader']), 'a1'), grants(who('alice', ['reader']), 'a2'), 'same roles: one shared object')
  const [b1, b2] = [compileGrants(who('bob', ['reader', 'owner']), 'b1', acl), compileGrants(who('bob', ['owner', 'reader']), 'b2', acl)]
  if (!b1.ok || !b2.ok) throw new Error('bob refused')
  t.not(b1.grants, b2.grants, '%c in a pattern: compiled per client')
  t.ok(b1.grants.canPublish('devices/b1/x'), 'b1 gets its own device')
  t.notOk(b1.grants.canPublish('devices/b2/x'), 'and not b2\'s')
  t.not(grants(who('alice', ['reader'], { pub: [], sub: ['news/a'] }), 'a1'), grants(who('alice', ['reader']), 'a1'), 'a token acl claim: not shared')
  t.ok(compileGrants(who('alice', ['reader'], { pub: [], sub: ['news/a'] }), 'a1', acl).ok, 'a narrowed grant compiles')
})

