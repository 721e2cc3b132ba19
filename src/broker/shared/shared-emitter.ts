// Shared subscriptions [MQTT-4.8.2]: the emitter Aedes is given, around the one that carries
// messages (mqemitter in memory, the routed emitter in a cluster). Aedes subscribes a member
// under its whole `$share/<ShareName>/<filter>`; this layer keeps the groups, and the node a
// message is published on picks the one member of each matching group that gets it, whichever
// node that member is on: the one place the choice is made. A copy for a member on another node
// travels in that node's inbox with a share target (the group and member), and that node hands
// it to the member, or to another of its members if it is gone, or back to the group.
//
// QoS 1/2: a member whose session ends with its connection (clean) and that had not
// acknowledged a message (PUBACK, or PUBREC for QoS 2) when it went has it redispatched to
// another member; a member with a persistent session has the message stored in its session
// first, which keeps it for that member's return [MQTT-4.8.2-4] [MQTT-4.8.2-5], and stays in the
// group while away (until its session could have expired), so that the group lives on. A group
// with no member connected keeps its QoS 1/2 messages waiting (bounded) until one joins.
import mqemitter from 'mqemitter'
import type { Client } from 'aedes'
import { sessionPersistence, sharedSubscriber, watchAcknowledgements, type SharedListener } from '../aedes-adapter.js'
import type { BrokerConfig } from '../config/config-schema.js'
import type { Storage } from '../storage/storage.js'
import type { Logger } from '../observability/logger.js'
import { RouteTable } from '../cluster/route-table.js'
import { join } from '../cluster/routed-emitter.js'
import { multiLevelWildcard, singleLevelWildcard } from '../../acl/topic-grammar.js'
import { pickMember, prefersLocal, type MemberId, type ShareStrategy } from './dispatch-strategy.js'
import { isShared, parseSharedFilter } from './share-name.js'

type Message = mqemitter.Message
type Callback = (error?: Error) => void
type Listener = (message: Message, done: () => void) => void

/** The emitter Aedes would use otherwise (the part of MQEmitter it calls). */
export interface InnerEmitter {
  on: (topic: string, listener: Listener, done?: () => void) => unknown
  removeListener: (topic: string, listener: Listener, done?: () => void) => unknown
  emit: (message: Message, done?: Callback) => void
  close: (done: () => void) => void
}

/** The other nodes' members and the hand-off to them (src/broker/cluster/shared-members.ts). */
export interface ShareCluster {
  readonly nodeId: string
  /** Starts following the other nodes' members, told to `view` as they change. */
  start: (view: ShareView) => Promise<void>
  /** Announces a member of this node; resolves once the other nodes can know it. */
  joined: (group: string, clientId: string) => Promise<void>
  left: (group: string, clientId: string) => void
  /** A member of this node with a persistent session went away; the group lives on until `until` (ms). */
  away: (group: string, clientId: string, until: number) => void
  /** Hands a message carrying a share target to one node. */
  sendTo: (node: string, message: Message, done: Callback) => void
  /** Where the messages carrying a share target that reach this node go. */
  receive: (receiver: (message: Message, done: () => void) => void) => void
  /** This node leaves: its members (away ones included) go, on every node. */
  leave: () => Promise<void>
}

/** The groups as the cluster part sees them: the other nodes' members in, this node's out. */
export interface ShareView {
  add: (group: string, member: MemberId) => void
  away: (group: string, member: MemberId, until: number) => void
  remove: (group: string, member: MemberId) => void
  /** Every member of `node` is gone (it died, left, or is reloaded). */
  dropNode: (node: string) => void
  localMembers: () => Array<{ group: string, clientId: string }>
}

/** What a group did, for its metrics. */
export interface GroupCounts {
  delivered: number
  redispatched: number
  queued: number
  dropped: number
}

export interface GroupSummary extends GroupCounts {
  group: string
  shareName: string
  filter: string
  members: Array<MemberId & { local: boolean }>
  /** members with a persistent session, away */
  away: MemberId[]
  waiting: number
}

export interface SharedEmitterOptions {
  nodeId: string
  strategy: ShareStrategy
  /** round_robin and random: the publisher's node's own members first */
  preferLocal: boolean
  /** QoS 1/2 messages a group with no member keeps at most (per node); beyond, dropped and counted. */
  maxWaitingPerGroup: number
  /** Stores a message for a member's persistent session before it is sent (Aedes' outgoing queue). */
  storeForSession: (clientId: string, message: Message) => Promise<void>
  /** How long the persistent session of a client that just went may last, in ms (Infinity: no end). */
  sessionLifetimeMs: (client: Client) => number
  cluster?: ShareCluster
  logger: Logger
}

interface LocalMember extends MemberId {
  listener: SharedListener
  client: Client
}

interface Group {
  key: string
  shareName: string
  filter: string
  // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with '$'
  skipsDollarTopics: boolean
  local: LocalMember[]
  remote: MemberId[]
  // members with a persistent session that went away, by client id: the group lives on for them
  away: Map<string, { node: string, until: number }>
  // every member, in the same order on every node (sticky and hash_topic depend on it); made
  // again after a change
  everyone: MemberId[] | null
  turn: number
  waiting: Message[]
  counts: GroupCounts
}

/** A QoS 1/2 message sent to a member whose session ends with its connection, not acknowledged yet. */
interface InFlight {
  group: Group
  message: Message
  packetId: number | undefined
}

interface TrackedClient {
  memberships: number
  inFlight: Set<InFlight>
  byPacketId: Map<number, InFlight>
  stopWatching: () => void
}

// a copy for another node names its group and member: `<group>\0<clientId>\0<hops>`; MQTT
// strings cannot hold U+0000 [MQTT-1.5.4-2]
const targetSeparator = '\u0000'

export class SharedEmitter {
  private readonly groups = new Map<string, Group>()
  // group filters -> group keys
  private readonly table = new RouteTable()
  private readonly tracked = new Map<Client, TrackedClient>()
  // mqemitter's `current`/`concurrent`, which Aedes does not read but the MQEmitter shape has
  current = 0
  concurrent = 0

  constructor (private readonly inner: InnerEmitter, private readonly options: SharedEmitterOptions) {
    options.cluster?.receive((message, done) => this.receive(message, done))
  }

  async start (): Promise<void> {
    const { cluster } = this.options
    if (cluster === undefined) return
    await cluster.start({
      add: (key, member) => this.addRemote(key, member),
      away: (key, member, until) => this.awayRemote(key, member, until),
      remove: (key, member) => this.removeRemote(key, member),
      dropNode: (node) => { for (const group of [...this.groups.values()]) this.dropRemote(group, node) },
      localMembers: () => [...this.groups.values()].flatMap((group) => group.local.map(({ clientId }) => ({ group: group.key, clientId })))
    })
  }

  on (topic: string, listener: Listener, done?: () => void): this {
    if (!isShared(topic)) {
      this.inner.on(topic, listener, done)
      return this
    }
    const client = sharedSubscriber(listener as SharedListener)
    const group = this.groupFor(topic)
    if (client === undefined || group === null) {
      if (done !== undefined) setImmediate(done)
      return this
    }
    group.local.push({ node: this.options.nodeId, clientId: client.id, listener: listener as SharedListener, client })
    group.everyone = null
    group.away.delete(client.id)
    this.track(client).memberships++
    this.flushWaiting(group)
    const announced = this.options.cluster?.joined(topic, client.id) ?? Promise.resolve()
    announced.then(() => done?.(), (err: Error) => {
      this.options.logger.warn({ event: 'shared.announce-failed', group: topic, reason: err.message }, 'a shared subscription member could not be announced')
      done?.()
    })
    return this
  }

  removeListener (topic: string, listener: Listener, done?: () => void): void {
    if (!isShared(topic)) {
      this.inner.removeListener(topic, listener, done)
      return
    }
    const group = this.groups.get(topic)
    const index = group?.local.findIndex((member) => member.listener === listener) ?? -1
    if (group !== undefined && index >= 0) {
      const [member] = group.local.splice(index, 1) as [LocalMember]
      group.everyone = null
      this.options.cluster?.left(topic, member.clientId)
      // its connection ended (not an UNSUBSCRIBE) and its session lives on: so does its membership
      if (member.client.closed && !member.client.clean) {
        const until = Date.now() + this.options.sessionLifetimeMs(member.client)
        group.away.set(member.clientId, { node: this.options.nodeId, until })
        this.options.cluster?.away(topic, member.clientId, until)
      }
      const client = this.tracked.get(member.client)
      if (client !== undefined && --client.memberships === 0 && client.inFlight.size === 0) this.untrack(member.client)
      // kept while the member may still hand messages back to it (clientClosed)
      if (client === undefined || ![...client.inFlight].some((inFlight) => inFlight.group === group)) this.dropIfEmpty(group)
    }
    if (done !== undefined) setImmediate(done)
  }

  emit (message: Message, done: Callback = noop): void {
    // no group anywhere in the cluster: what it was before shared subscriptions
    if (this.groups.size === 0) {
      this.inner.emit(message, done)
      return
    }
    const keys = this.table.nodesFor(message.topic)
    if (keys.length === 0) {
      this.inner.emit(message, done)
      return
    }
    const callback = join(1 + keys.length, done)
    this.inner.emit(message, callback)
    for (const key of keys) this.dispatch(this.groups.get(key) as Group, message, callback, undefined, 0)
  }

  close (done: () => void): void {
    for (const [client, tracked] of this.tracked) {
      tracked.stopWatching()
      this.tracked.delete(client)
    }
    const left = this.options.cluster?.leave() ?? Promise.resolve()
    left.catch((err: Error) => this.options.logger.warn({ event: 'shared.leave-failed', reason: err.message }, 'this node\'s shared subscription members could not be withdrawn')).finally(() => this.inner.close(done))
  }

  /**
   * A client's connection ended: its QoS 1/2 messages not acknowledged go to other members of
   * their groups when its session ended with it; a persistent session has them stored.
   */
  clientClosed (client: Client): void {
    const tracked = this.tracked.get(client)
    if (tracked === undefined) return
    this.untrack(client)
    const groups = new Set<Group>()
    for (const inFlight of tracked.inFlight) {
      // the same group, unless it was forgotten meanwhile (then made again to keep the message waiting)
      const group = this.groups.get(inFlight.group.key) ?? this.groupFor(inFlight.group.key) as Group
      groups.add(group)
      group.counts.redispatched++
      this.dispatch(group, inFlight.message, noop, client.id, 0)
    }
    for (const group of groups) this.dropIfEmpty(group)
  }

  /** The groups this node knows (its own members and the other nodes'), for the admin API and metrics. */
  summary (): GroupSummary[] {
    return [...this.groups.values()].map((group) => ({
      group: group.key,
      shareName: group.shareName,
      filter: group.filter,
      members: [
        ...group.local.map(({ node, clientId }) => ({ node, clientId, local: true })),
        ...group.remote.map(({ node, clientId }) => ({ node, clientId, local: false }))
      ],
      away: [...group.away].map(([clientId, { node }]) => ({ node, clientId })),
      waiting: group.waiting.length,
      ...group.counts
    }))
  }

  /**
   * Sends `message` to one member of `group` (not the client `excluded`); `hops` counts the
   * nodes a copy went back to the group from (see receive).
   */
  private dispatch (group: Group, message: Message, done: Callback, excluded: string | undefined, hops: number): void {
    if (group.skipsDollarTopics && message.topic.startsWith('$')) {
      done()
      return
    }
    const { strategy, nodeId, preferLocal } = this.options
    const local = excluded === undefined ? group.local : group.local.filter((member) => member.clientId !== excluded)
    const remote = excluded === undefined ? group.remote : group.remote.filter((member) => member.clientId !== excluded)
    let candidates: readonly MemberId[]
    if (local.length > 0 && (remote.length === 0 || (preferLocal && prefersLocal(strategy)))) {
      candidates = local
    } else if (remote.length === 0) {
      this.wait(group, message)
      done()
      return
    } else if (excluded === undefined) {
      candidates = group.everyone ??= [...local, ...remote].sort(byNodeThenClient)
    } else {
      candidates = [...local, ...remote].sort(byNodeThenClient)
    }
    const chosen = candidates[pickMember(strategy, candidates, group.turn++, { topic: message.topic, publisher: message.clientId })] as MemberId
    if (chosen.node === nodeId) {
      this.deliver(group, chosen as LocalMember, message, done)
      return
    }
    const cluster = this.options.cluster as ShareCluster
    const copy: Message = { ...message, shareTarget: group.key + targetSeparator + chosen.clientId + targetSeparator + String(hops) }
    cluster.sendTo(chosen.node, copy, done)
  }

  /** A copy another node chose a member of this node for. */
  private receive (message: Message, done: () => void): void {
    const target = String(message.shareTarget).split(targetSeparator)
    delete message.shareTarget
    const [key, clientId, hops] = target as [string, string, string]
    const group = this.groupFor(key)
    if (group === null) {
      done()
      return
    }
    const member = group.local.find((candidate) => candidate.clientId === clientId)
    if (member !== undefined) {
      this.deliver(group, member, message, done)
      return
    }
    // The member is gone: another member of this node, or back to the group once; a copy
    // already sent back waits here, so that two nodes' stale views cannot pass it on forever.
    if (group.local.length === 0 && Number(hops) > 0) {
      this.wait(group, message)
      this.dropIfEmpty(group)
      done()
      return
    }
    this.dispatch(group, message, done, clientId, Number(hops) + 1)
    // made for this copy on a node that knew no member: forgotten unless the copy waits in it
    this.dropIfEmpty(group)
  }

  private deliver (group: Group, member: LocalMember, message: Message, done: Callback): void {
    group.counts.delivered++
    const { client, listener } = member
    if (message.qos === 0) {
      listener(message, done)
      return
    }
    if (!client.clean) {
      // kept in the member's session until it acknowledges it, across reconnects [MQTT-4.8.2-4]
      this.options.storeForSession(client.id, message).then(() => listener(message, done), (err: Error) => {
        this.options.logger.warn({ event: 'shared.store-failed', group: group.key, clientId: client.id, reason: err.message }, 'a shared subscription message could not be stored for its member\'s session: sent without it')
        listener(message, done)
      })
      return
    }
    const tracked = this.track(client)
    const inFlight: InFlight = { group, message, packetId: undefined }
    tracked.inFlight.add(inFlight)
    listener(message, () => {
      // not sent (refused by the ACL, a copy it already had): nothing to wait for
      if (inFlight.packetId === undefined) tracked.inFlight.delete(inFlight)
      done()
    }, (packetId) => {
      inFlight.packetId = packetId
      tracked.byPacketId.set(packetId, inFlight)
    })
  }

  /** A group with no member to send to: QoS 1/2 wait for one, QoS 0 are dropped. */
  private wait (group: Group, message: Message): void {
    if (message.qos === 0 || group.waiting.length >= this.options.maxWaitingPerGroup) {
      group.counts.dropped++
      return
    }
    group.counts.queued++
    group.waiting.push(message)
  }

  private flushWaiting (group: Group): void {
    const waiting = group.waiting
    if (waiting.length === 0) return
    group.waiting = []
    for (const message of waiting) this.dispatch(group, message, noop, undefined, 0)
    this.dropIfEmpty(group)
  }

  private groupFor (key: string): Group | null {
    let group = this.groups.get(key)
    if (group !== undefined) return group
    const parsed = parseSharedFilter(key)
    if (parsed === null) return null
    const first = parsed.filter[0]
    group = {
      key,
      shareName: parsed.shareName,
      filter: parsed.filter,
      skipsDollarTopics: first === singleLevelWildcard || first === multiLevelWildcard,
      local: [],
      remote: [],
      away: new Map(),
      everyone: null,
      turn: 0,
      waiting: [],
      counts: { delivered: 0, redispatched: 0, queued: 0, dropped: 0 }
    }
    this.groups.set(key, group)
    this.table.add(parsed.filter, key)
    return group
  }

  /** A group with no member and nothing waiting is forgotten. */
  private dropIfEmpty (group: Group): void {
    if (group.local.length > 0 || group.remote.length > 0 || group.waiting.length > 0 || this.hasAway(group)) return
    this.groups.delete(group.key)
    this.table.remove(group.filter, group.key)
  }

  /** Whether members with a persistent session are away from `group` (the ones whose session ended are forgotten). */
  private hasAway (group: Group): boolean {
    const now = Date.now()
    for (const [clientId, { until }] of group.away) if (until <= now) group.away.delete(clientId)
    return group.away.size > 0
  }

  private awayRemote (key: string, member: MemberId, until: number): void {
    if (member.node === this.options.nodeId) return
    this.groupFor(key)?.away.set(member.clientId, { node: member.node, until })
  }

  private addRemote (key: string, member: MemberId): void {
    if (member.node === this.options.nodeId) return
    const group = this.groupFor(key)
    if (group === null) return
    group.away.delete(member.clientId)
    if (group.remote.some((known) => sameMember(known, member))) return
    group.remote.push(member)
    group.everyone = null
    this.flushWaiting(group)
  }

  private removeRemote (key: string, member: MemberId): void {
    const group = this.groups.get(key)
    if (group === undefined) return
    group.remote = group.remote.filter((known) => !sameMember(known, member))
    group.everyone = null
    this.dropIfEmpty(group)
  }

  private dropRemote (group: Group, node: string): void {
    group.remote = group.remote.filter((member) => member.node !== node)
    for (const [clientId, away] of group.away) if (away.node === node) group.away.delete(clientId)
    group.everyone = null
    this.dropIfEmpty(group)
  }

  private track (client: Client): TrackedClient {
    let tracked = this.tracked.get(client)
    if (tracked === undefined) {
      const created: TrackedClient = { memberships: 0, inFlight: new Set(), byPacketId: new Map(), stopWatching: noop }
      created.stopWatching = watchAcknowledgements(client, (packetId) => {
        const inFlight = created.byPacketId.get(packetId)
        if (inFlight === undefined) return
        // acknowledged, or refused with a reason code: either way not sent to another member [MQTT-4.8.2-6]
        created.byPacketId.delete(packetId)
        created.inFlight.delete(inFlight)
        if (created.memberships === 0 && created.inFlight.size === 0) this.untrack(client)
        if (this.groups.get(inFlight.group.key) === inFlight.group) this.dropIfEmpty(inFlight.group)
      })
      tracked = created
      this.tracked.set(client, tracked)
    }
    return tracked
  }

  private untrack (client: Client): void {
    this.tracked.get(client)?.stopWatching()
    this.tracked.delete(client)
  }
}

function sameMember (a: MemberId, b: MemberId): boolean {
  return a.node === b.node && a.clientId === b.clientId
}

function byNodeThenClient (a: MemberId, b: MemberId): number {
  return a.node < b.node ? -1 : a.node > b.node ? 1 : a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0
}

function noop (): void {}

/**
 * The emitter for Aedes: around the storage's (mqemitter in memory, as Aedes would make it),
 * cluster-wide with the routed emitter; started.
 */
export async function createSharedEmitter (storage: Storage, config: BrokerConfig, nodeId: string, logger: Logger): Promise<SharedEmitter> {
  const inner = (storage.mq ?? mqemitter({ concurrency: config.limits.concurrency, matchEmptyLevels: true })) as InnerEmitter
  const persistence = sessionPersistence(storage)
  const emitter = new SharedEmitter(inner, {
    nodeId,
    strategy: config.sharedSubscriptions.strategy,
    preferLocal: config.sharedSubscriptions.preferLocal,
    maxWaitingPerGroup: config.sharedSubscriptions.maxWaitingPerGroup,
    storeForSession: async (clientId, message) => { await persistence.outgoingEnqueue({ clientId }, message) },
    sessionLifetimeMs: (client) => sessionLifetimeMs(client, config.sessions.expirySeconds),
    ...(storage.shareCluster === undefined ? {} : { cluster: storage.shareCluster }),
    logger
  })
  await emitter.start()
  return emitter
}

/**
 * How long a persistent session may outlive its connection, in ms: its MQTT 5 Session Expiry
 * Interval (Aedes lowered it to sessions.expirySeconds), else sessions.expirySeconds; Infinity
 * when nothing ends it.
 */
function sessionLifetimeMs (client: Client, expirySeconds: number): number {
  const seconds = client.version === 5 ? client.sessionExpiryInterval : expirySeconds
  return seconds === 0 || seconds === 0xFFFFFFFF ? Infinity : seconds * 1000
}
