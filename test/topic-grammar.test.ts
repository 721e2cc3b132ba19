// The MQTT topic grammar shared by the broker, the ACL, the HTTP side and the browser SDK.
import t from 'tap'
import { isPlainLevel, isValidTopicFilter, isValidTopicName, topicFilterViolation, topicMatches, topicNameViolation } from '../src/acl/topic-grammar.js'

t.test('filters match names as in MQTT', async (t) => {
  t.ok(topicMatches('a/b', 'a/b'))
  t.notOk(topicMatches('a/b', 'a/b/c'))
  t.ok(topicMatches('a/+/c', 'a/b/c'))
  t.notOk(topicMatches('a/+', 'a/b/c'))
  t.ok(topicMatches('a/#', 'a'), '# matches the parent level')
  t.ok(topicMatches('a/#', 'a/b/c'))
  t.ok(topicMatches('#', 'a/b'))
  t.notOk(topicMatches('#', '$presence/alice'), 'wildcards never match $ topics at the first level')
  t.notOk(topicMatches('+/alice', '$presence/alice'))
  t.ok(topicMatches('$presence/+', '$presence/alice'))
  t.ok(topicMatches('a/+', 'a/'), 'an empty level is a level')
  t.ok(isValidTopicFilter('a/+/b/#'))
  t.notOk(isValidTopicFilter('a/#/b'))
  t.notOk(isValidTopicFilter('a/b#'))
  t.notOk(isValidTopicFilter('a+/b'))
  t.notOk(isValidTopicFilter(''))
})

t.test('valid topic filters: wildcards as whole levels, # last, no NUL', async (t) => {
  for (const good of ['#', 'a/#', '+', 'a/+/b', '/', 'a//b', 'a/+/b/#']) t.ok(isValidTopicFilter(good), good)
  for (const bad of ['', 'a/#/b', 'a+', 'a#', '#/a', 'a/b#', 'a+/b', 'a/\u0000']) t.notOk(isValidTopicFilter(bad), JSON.stringify(bad))
  t.match(topicFilterViolation('a/#/b'), /\[MQTT-4\.7\.1-2\]/)
  t.match(topicFilterViolation('a+'), /\[MQTT-4\.7\.1-3\]/)
})

t.test('valid topic names: not empty, no wildcards, no NUL', async (t) => {
  for (const good of ['a', '/', 'a//b', '$SYS/x', 'caf\u00e9']) t.ok(isValidTopicName(good), good)
  for (const bad of ['', 'a/+', 'a/#', 'a\u0000b']) t.notOk(isValidTopicName(bad), JSON.stringify(bad))
  t.match(topicNameViolation(''), /\[MQTT-4\.7\.3-1\]/)
  t.match(topicNameViolation('a/+'), /\[MQTT-3\.3\.2-2\]/)
})

t.test('a plain level has no separator, wildcard or NUL', async (t) => {
  t.ok(isPlainLevel('alice'))
  for (const bad of ['a/b', '+', 'a#', 'x\u0000']) t.notOk(isPlainLevel(bad), JSON.stringify(bad))
})
