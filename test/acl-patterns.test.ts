// Topic patterns: matching topics and covering filters, the core of every ACL decision.
import t from 'tap'
import { compilePattern, covers, isValidFilter, matches } from '../src/acl/topic-pattern.js'

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
  for (const [pattern, topic, expected] of cases) t.equal(matches(p(pattern), topic), expected, `${pattern} ~ ${topic}`)
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

t.test('isValidFilter', async (t) => {
  for (const good of ['#', 'a/#', '+', 'a/+/b', '/', 'a//b']) t.ok(isValidFilter(good), good)
  for (const bad of ['', 'a/#/b', 'a+', 'a#', '#/a']) t.notOk(isValidFilter(bad), bad)
})
