// Which member of a shared subscription group gets a message: a policy of plain inputs.
//
// - round_robin (default): members in turn; the publisher's node serves its own members when it
//   has any (no Redis hop), in turn among them. No order across members; one publisher's
//   messages to one member keep their order.
// - random: a member drawn at random, the publisher's node's own members first as above.
// - sticky: by publisher: every message of one client id goes to the same member while the
//   group's members stay the same, whichever node publishes it: that publisher's order is kept.
// - hash_topic: by topic: every message on one topic goes to the same member while the group's
//   members stay the same: the order per topic is kept (e.g. per vehicle).
// sticky and hash_topic choose among the whole group on every node alike (rendezvous hashing),
// so that a member joining or leaving moves only the keys it takes or had.

export const shareStrategies = ['round_robin', 'random', 'sticky', 'hash_topic'] as const
export type ShareStrategy = typeof shareStrategies[number]

export interface MemberId {
  node: string
  clientId: string
}

export interface DispatchInput {
  topic: string
  /** the publisher's client id, if a client published it */
  publisher: string | undefined
}

/** Whether the strategy serves the publisher's node's own members first. */
export function prefersLocal (strategy: ShareStrategy): boolean {
  return strategy === 'round_robin' || strategy === 'random'
}

/**
 * The index in `members` (not empty) of the member that gets the message; `turn` is the group's
 * count of messages dispatched so far (round robin).
 */
export function pickMember (strategy: ShareStrategy, members: readonly MemberId[], turn: number, message: DispatchInput): number {
  if (members.length === 1) return 0
  switch (strategy) {
    case 'round_robin': return turn % members.length
    case 'random': return Math.floor(Math.random() * members.length)
    case 'sticky': return rendezvous(members, message.publisher ?? message.topic)
    case 'hash_topic': return rendezvous(members, message.topic)
  }
}

/** The member with the highest hash of (key, member): the same answer on every node. */
function rendezvous (members: readonly MemberId[], key: string): number {
  const keyHash = fnv1a(key, 0x811c9dc5)
  let best = 0
  let bestWeight = -1
  for (let i = 0; i < members.length; i++) {
    const member = members[i] as MemberId
    const weight = mix(fnv1a(member.clientId, fnv1a(member.node, keyHash)))
    if (weight > bestWeight) {
      best = i
      bestWeight = weight
    }
  }
  return best
}

/** MurmurHash3's finalizer: FNV-1a alone mixes its last characters poorly (skewed shares). */
function mix (hash: number): number {
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b)
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35)
  return (hash ^ (hash >>> 16)) >>> 0
}

/** 32-bit FNV-1a of `text`, continuing from `hash`. */
function fnv1a (text: string, hash: number): number {
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash
}
