// The dispatch strategies of shared subscriptions (src/broker/shared/dispatch-strategy.ts): a
// policy of plain inputs, checked for what docs/cluster.md promises of each.
import t from 'tap'
import { pickMember, prefersLocal, type MemberId } from '../src/broker/shared/dispatch-strategy.js'

const members: MemberId[] = [
  { node: 'a', clientId: 'w1' },
  { node: 'a', clientId: 'w2' },
  { node: 'b', clientId: 'w3' },
  { node: 'b', clientId: 'w4' }
]
const topics = Array.from({ length: 2000 }, (_, i) => `fleet/vehicle-${i}/location`)

t.test('round_robin takes the members in turn', async (t) => {
  const picks = Array.from({ length: 8 }, (_, turn) => pickMember('round_robin', members, turn, { topic: 'x', publisher: 'p' }))
  t.same(picks, [0, 1, 2, 3, 0, 1, 2, 3])
  t.ok(prefersLocal('round_robin') && prefersLocal('random'), 'round_robin and random serve the publisher\'s node first')
  t.notOk(prefersLocal('sticky') || prefersLocal('hash_topic'), 'sticky and hash_topic choose among the whole group')
})

t.test('hash_topic: a topic always goes to the same member, topics spread evenly, and a member that leaves moves only its own topics', async (t) => {
  const before = topics.map((topic) => members[pickMember('hash_topic', members, 0, { topic, publisher: undefined })] as MemberId)
  const again = topics.map((topic, i) => members[pickMember('hash_topic', members, i, { topic, publisher: `p${i}` })] as MemberId)
  t.same(again, before, 'whatever the turn and the publisher')
  for (const member of members) {
    const share = before.filter((chosen) => chosen === member).length / topics.length
    t.ok(share > 0.2 && share < 0.3, `${member.clientId} takes ${(share * 100).toFixed(1)}% of the topics`)
  }
  const remaining = members.filter((member) => member.clientId !== 'w3')
  const after = topics.map((topic) => remaining[pickMember('hash_topic', remaining, 0, { topic, publisher: undefined })] as MemberId)
  const moved = topics.filter((_, i) => (before[i] as MemberId).clientId !== (after[i] as MemberId).clientId)
  t.ok(moved.length > 0 && moved.every((topic) => (before[topics.indexOf(topic)] as MemberId).clientId === 'w3'), `only w3's topics moved (${moved.length})`)
})

t.test('sticky: a publisher always goes to the same member, whatever the topic; without a publisher, by topic', async (t) => {
  const picks = new Set(topics.slice(0, 50).map((topic, turn) => pickMember('sticky', members, turn, { topic, publisher: 'device-42' })))
  t.equal(picks.size, 1, 'one member for one publisher')
  t.equal(pickMember('sticky', members, 0, { topic: 't/1', publisher: undefined }), pickMember('hash_topic', members, 0, { topic: 't/1', publisher: undefined }))
})

t.test('random: every member is drawn', async (t) => {
  const drawn = new Set(Array.from({ length: 200 }, () => pickMember('random', members, 0, { topic: 'x', publisher: undefined })))
  t.equal(drawn.size, members.length)
})
