// An emitter for Aedes that routes messages between nodes by interest, over ioredis:
// - local delivery first: a message is delivered to this node's subscribers in process,
//   without a round trip through Redis;
// - each node publishes the topic filters its clients subscribe to (a Redis set per node,
//   changes announced on a pub/sub channel); every node caches the route table in a qlobber
//   and forwards a message only to the nodes whose filters match it;
// - the hand-off is a per-node inbox on a Redis Stream (XADD with a bounded MAXLEN, read with
//   XREAD from the last id seen), so a node whose Redis link drops for a few seconds resumes
//   where it stopped instead of losing what was sent meanwhile. Messages for one node in one
//   event-loop turn travel as one stream entry: one XADD for a whole burst;
// - a node can learn when every live node routes some of its filters to it (a numbered `sync`
//   naming them, which each node acknowledges once it has them: routesApplied;
//   src/broker/sessions/queue-catch-up.ts says why a persistent session needs to know).
import mqemitter from 'mqemitter'
import type { RedisClient } from '../storage/redis-clients.js'
import type { RedisKeys } from '../storage/redis-keys.js'
import type { Logger } from '../observability/logger.js'
import { hasExpired, type MessageExpiryFields } from '../protocol/message-properties.js'
import { batchField, BatchReader, InboxBatch } from './inbox-codec.js'
import type { NodeRegistry } from './node-registry.js'
import { RouteTable } from './route-table.js'

type Message = mqemitter.Message
type Listener = (message: Message, done: () => void) => void
type Callback = (error?: Error) => void

export interface RoutedEmitterOptions {
  nodeId: string
  /** Commands (XADD, SADD); pipelined automatically. */
  commands: RedisClient
  /** Which nodes are alive: the nodes it finds dead are retired from routing. */
  registry: NodeRegistry
  /** Pub/sub subscriber for route changes. */
  subscriber: RedisClient
  /** Blocking XREAD of this node's inbox (on a Cluster: its own connection to the inbox's master). */
  reader: RedisClient
  /** Names every key and channel, with the key prefix (ioredis' keyPrefix is not used on these connections). */
  keys: RedisKeys
  concurrency: number
  /** Entries an inbox keeps at most: the window a disconnected node can catch up on. */
  inboxMaxLen: number
  /** QoS 0 hand-offs waiting for Redis beyond which QoS 0 messages are shed (counted). */
  maxPendingQos0: number
  logger: Logger
  /** Called for every QoS 0 message shed under back-pressure. */
  onShed: () => void
  /** Test-only (0 otherwise): route changes from other nodes are applied this much later, to widen the window a new route takes to reach them. */
  routeChangeDelayMs: number
}

interface RouteChange {
  node: string
  /**
   * reset: the node has no routes; reload: read the node's whole route set again; sync: asks
   * for an acknowledgement once `filters` are routed to the node (nodes of earlier releases
   * ignore it: it has no `filter`)
   */
  op: 'add' | 'remove' | 'reset' | 'reload' | 'sync'
  filter?: string
  /** a sync's number among the node's syncs, and the filters it asks about */
  seq?: number
  filters?: string[]
}

/** A sync of another node that waits for some of its filters to be applied here. */
interface PendingSync {
  seq: number
  missing: Set<string>
}

/** This node's sync for the catch-ups of one event-loop turn: one publish, one ack per node. */
interface Sync {
  // pruned when a filter goes meanwhile (it may come back unapplied)
  filters: Set<string>
  acks: Set<string>
  settled: Array<(applied: boolean) => void>
  // the sync's own waiter, woken by its acks (or once no filter is left)
  wake: (() => void) | null
}

/** `node` routes the filters of the sync `seq` to the node it answers. */
interface RouteAck {
  node: string
  seq: number
}

interface OutboxEntry {
  batch: InboxBatch
  callbacks: Callback[]
  /** how many of the messages are QoS 0, counted in pendingQos0 until Redis has them */
  qos0: number
}

const readBatch = 1000
const readBlockMs = 1000

export class RoutedEmitter {
  private readonly local: mqemitter.MQEmitter
  private readonly localFilters = new Map<string, number>()
  // whether this node's own clients want a topic, without asking the local emitter
  private readonly localRoutes = new RouteTable()
  private readonly routes = new RouteTable()
  private readonly nodeFilters = new Map<string, Set<string>>()
  private readonly keys: { changes: string, acks: (node: string) => string, routes: (node: string) => string, inbox: (node: string) => string }
  // this node's filters every live node was seen to route here (until the filter goes)
  private readonly appliedEverywhere = new Set<string>()
  // this node's syncs: their number, the one this turn's catch-ups join, those waiting for acks
  private syncs = 0
  private nextSync: Sync | null = null
  private readonly syncsInFlight = new Map<number, Sync>()
  // the registry's live nodes, read at most once a beat for every sync waiting
  private liveCache: { at: number, ids: Promise<string[]> } | null = null
  // the other nodes' syncs whose filters have not reached this node yet: per node, per missing filter
  private readonly pendingSyncs = new Map<string, Map<string, Set<PendingSync>>>()
  private pendingQos0 = 0
  // messages waiting for the end of this event-loop turn, per target node
  private outbox = new Map<string, OutboxEntry>()
  private outboxScheduled = false
  private lastId = '$'
  private closed = false
  private reading: Promise<void> = Promise.resolve()
  // where a message carrying a share target goes on this node (src/broker/shared/)
  private shareReceiver: Listener | null = null
  // mqemitter's `current`/`concurrent`, which Aedes does not read but the MQEmitter shape has
  current = 0
  concurrent = 0

  constructor (private readonly options: RoutedEmitterOptions) {
    this.local = mqemitter({ concurrency: options.concurrency, matchEmptyLevels: true })
    // a node's routes and inbox share its hash tag: retiring a dead node deletes both in one MULTI
    const { keys } = options
    this.keys = {
      changes: keys.channel('routes', 'changes'),
      acks: (node) => keys.channel('routes', `acks:${node}`),
      routes: (node) => keys.owned('routes', node),
      inbox: (node) => keys.owned('inbox', node)
    }
  }

  /**
   * Joins the cluster (the registry has announced this node): loads the route table, starts
   * reading the inbox, and follows the registry: a dead node's routes are retired, and when the
   * others retired this one, its routes are announced again.
   */
  async start (): Promise<void> {
    const { commands, subscriber, nodeId, registry } = this.options
    registry.on('died', (node) => this.retire(node))
    registry.on('retired', () => this.rejoin())
    // the connection carries other concerns' channels too (shared subscription members)
    const ackChannel = this.keys.acks(nodeId)
    const delay = this.options.routeChangeDelayMs
    subscriber.on('message', (channel: string, text: string) => {
      if (channel === this.keys.changes) {
        const change = JSON.parse(text) as RouteChange
        if (delay > 0) setTimeout(() => this.applyChange(change), delay)
        else this.applyChange(change)
      } else if (channel === ackChannel) {
        this.noteAck(JSON.parse(text) as RouteAck)
      }
    })
    // Route changes missed while the subscriber was away: reload the whole table.
    subscriber.on('ready', () => { if (!this.closed) this.loadRoutes().catch((err: Error) => this.warn('route reload failed', err)) })
    await subscriber.subscribe(this.keys.changes, ackChannel)
    // A node id that is reused starts with no routes of its previous life.
    await commands.del(this.keys.routes(nodeId))
    await commands.publish(this.keys.changes, JSON.stringify({ node: nodeId, op: 'reset' }))
    await this.loadRoutes()
    // Start after the newest entry: what was sent to a previous life of this id is its sessions' business.
    const last = await commands.xrevrange(this.keys.inbox(nodeId), '+', '-', 'COUNT', 1)
    this.lastId = last[0]?.[0] ?? '0-0'
    this.reading = this.readInbox()
  }

  on (topic: string, listener: Listener, done?: () => void): this {
    this.local.on(topic, listener)
    const count = (this.localFilters.get(topic) ?? 0) + 1
    this.localFilters.set(topic, count)
    if (count === 1) this.localRoutes.add(topic, this.options.nodeId)
    if (count > 1) {
      if (done !== undefined) setImmediate(done)
      return this
    }
    this.announce('add', topic).then(() => done?.(), (err: Error) => {
      this.warn('route announce failed', err)
      done?.()
    })
    return this
  }

  removeListener (topic: string, listener: Listener, done?: () => void): void {
    this.local.removeListener(topic, listener)
    const count = (this.localFilters.get(topic) ?? 0) - 1
    if (count > 0) {
      this.localFilters.set(topic, count)
      if (done !== undefined) setImmediate(done)
      return
    }
    this.localFilters.delete(topic)
    this.appliedEverywhere.delete(topic)
    this.nextSync?.filters.delete(topic)
    for (const sync of this.syncsInFlight.values()) if (sync.filters.delete(topic) && sync.filters.size === 0) sync.wake?.()
    this.localRoutes.remove(topic, this.options.nodeId)
    this.announce('remove', topic).then(() => done?.(), (err: Error) => {
      this.warn('route announce failed', err)
      done?.()
    })
  }

  emit (message: Message, done: Callback = noop): void {
    if (this.closed) {
      done(new Error('emitter closed'))
      return
    }
    // the table holds the other nodes' routes only (applyChange skips this node's own)
    const targets = this.routes.nodesFor(message.topic)
    // subscribers on this node only, the common case: nothing to join. An expired message is
    // not forwarded [MQTT-3.3.2-5] (a v5 message only: properties are checked first).
    if (targets.length === 0 || (message.properties !== undefined && hasExpired(message as MessageExpiryFields))) {
      this.local.emit(message, done)
      return
    }
    const qos0 = message.qos === 0
    if (qos0 && this.pendingQos0 >= this.options.maxPendingQos0) {
      // Redis is slow or away: shed QoS 0 rather than queue without bound (QoS 1/2 wait).
      this.options.onShed()
      this.local.emit(message, done)
      return
    }
    // What waits for Redis outlives young-generation collections and is promoted: for a
    // message to one node that no client here wants, that is the caller's callback alone.
    const local = this.localRoutes.nodesFor(message.topic).length > 0
    const callback = !local && targets.length === 1 ? done : join((local ? 1 : 0) + targets.length, done)
    if (local) this.local.emit(message, () => callback())
    let first: InboxBatch | undefined
    for (const node of targets) first = this.enqueue(node, message, callback, first)
  }

  /**
   * Hands `message` to one other node only, in this turn's batch for it: a shared subscription's
   * copy for the member the publisher's node chose (it carries a `shareTarget`).
   */
  sendTo (node: string, message: Message, done: Callback): void {
    if (this.closed) {
      done(new Error('emitter closed'))
      return
    }
    this.enqueue(node, message, done)
  }

  /** Where the messages carrying a share target go when they reach this node. */
  receiveShared (receiver: Listener): void {
    this.shareReceiver = receiver
  }

  /** Adds `message` to `node`'s batch (a copy of `first`'s last one when given); returns the batch. */
  private enqueue (node: string, message: Message, callback: Callback, first?: InboxBatch): InboxBatch {
    let entry = this.outbox.get(node)
    if (entry === undefined) {
      entry = { batch: new InboxBatch(), callbacks: [], qos0: 0 }
      this.outbox.set(node, entry)
    }
    // encoded once, copied for every further node
    if (first === undefined) {
      entry.batch.add(message)
    } else {
      entry.batch.addLastOf(first)
    }
    entry.callbacks.push(callback)
    if (message.qos === 0) {
      entry.qos0++
      this.pendingQos0++
    }
    if (!this.outboxScheduled) {
      this.outboxScheduled = true
      setImmediate(() => this.flushOutbox())
    }
    return first ?? entry.batch
  }

  /** One XADD per target node for everything emitted this turn; callbacks once Redis has it. */
  private flushOutbox (): void {
    this.outboxScheduled = false
    // A new map rather than clear(): a cleared map's old table links to its new one, so a table
    // promoted while a turn's messages waited for Redis would keep every later turn's messages
    // alive through young-generation collections until the next full one.
    const outbox = this.outbox
    this.outbox = new Map()
    for (const [node, { batch, callbacks, qos0 }] of outbox) {
      const settle = (err?: Error): void => {
        this.pendingQos0 -= qos0
        for (const callback of callbacks) callback(err)
      }
      this.options.commands.xadd(this.keys.inbox(node), 'MAXLEN', '~', this.options.inboxMaxLen, '*', batchField, batch.encoded())
        .then(() => settle(), settle)
    }
  }

  close (done: () => void): void {
    if (this.closed) {
      done()
      return
    }
    this.closed = true
    this.flushOutbox()
    const { commands, subscriber, reader, nodeId } = this.options
    const leave = commands.del(this.keys.routes(nodeId))
      .then(() => commands.publish(this.keys.changes, JSON.stringify({ node: nodeId, op: 'reset' })))
      .catch(() => {})
    reader.disconnect()
    void Promise.all([leave, this.reading]).finally(() => {
      subscriber.disconnect()
      commands.disconnect()
      this.local.close(done)
    })
  }

  /**
   * Whether a subscription to `filter` here may not be routed here by every live node yet: this
   * node has no route for it (the subscription will add one), or its addition is not known to be
   * applied everywhere.
   */
  routePending (filter: string): boolean {
    return !this.appliedEverywhere.has(filter)
  }

  /**
   * Resolves once every live node routes `filters` (this node's) here (true), or after the
   * registry's node timeout (false, logged): a node that dies meanwhile stops counting once the
   * registry drops it; one that runs a release without syncs never answers. Each node answers
   * the sync once it has the filters, whether from their changes or from the table it loaded at
   * start: it does not rely on the sync reaching it after the changes (on a Redis Cluster, two
   * PUBLISHes may go through different nodes).
   */
  async routesApplied (filters: Iterable<string>): Promise<boolean> {
    const wanted = [...filters].filter((filter) => this.localFilters.has(filter) && !this.appliedEverywhere.has(filter))
    if (wanted.length === 0) return true
    // the catch-ups of one turn share one sync (a node's death resumes thousands of sessions at once)
    let sync = this.nextSync
    if (sync === null) {
      const next: Sync = { filters: new Set(), acks: new Set(), settled: [], wake: null }
      this.nextSync = sync = next
      setImmediate(() => {
        if (this.nextSync === next) this.nextSync = null
        void this.runSync(next)
      })
    }
    for (const filter of wanted) sync.filters.add(filter)
    const joined = sync
    return await new Promise<boolean>((resolve) => joined.settled.push(resolve))
  }

  private async runSync (sync: Sync): Promise<void> {
    const seq = ++this.syncs
    this.syncsInFlight.set(seq, sync)
    let applied = false
    try {
      applied = await this.acknowledged(seq, sync)
    } catch (err) {
      this.warn('route sync failed', err as Error)
    } finally {
      this.syncsInFlight.delete(seq)
      for (const settle of sync.settled) settle(applied)
    }
  }

  private async acknowledged (seq: number, sync: Sync): Promise<boolean> {
    if (sync.filters.size === 0) return true
    const { commands, registry, nodeId } = this.options
    await commands.publish(this.keys.changes, JSON.stringify({ node: nodeId, op: 'sync', seq, filters: [...sync.filters] }))
    const deadline = Date.now() + registry.timing.timeoutMs
    for (;;) {
      // no filter left (they all went meanwhile): nothing to wait for
      const live = sync.filters.size === 0 ? [] : await this.liveNodes()
      const missing = live.filter((id) => id !== nodeId && !sync.acks.has(id))
      if (missing.length === 0) {
        for (const filter of sync.filters) this.appliedEverywhere.add(filter)
        return true
      }
      const left = deadline - Date.now()
      if (left <= 0 || this.closed) {
        this.options.logger.warn({ event: 'cluster.route-unacknowledged', nodes: missing, timeoutMs: registry.timing.timeoutMs }, 'live nodes did not acknowledge a new route in time')
        return false
      }
      // the sync's next acknowledgement, or a beat later (the registry may have dropped a silent node)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          sync.wake = null
          resolve()
        }, Math.min(left, registry.timing.beatMs))
        sync.wake = () => {
          sync.wake = null
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }

  /** The live nodes' ids, read from the registry at most once a beat (shared by every sync). */
  private async liveNodes (): Promise<string[]> {
    const now = Date.now()
    if (this.liveCache === null || now - this.liveCache.at >= this.options.registry.timing.beatMs) {
      const ids = this.options.registry.live().then((nodes) => nodes.map(({ id }) => id))
      this.liveCache = { at: now, ids }
      ids.catch(() => { if (this.liveCache?.ids === ids) this.liveCache = null })
    }
    return await this.liveCache.ids
  }

  private noteAck (ack: RouteAck): void {
    const sync = this.syncsInFlight.get(ack.seq)
    if (sync === undefined) return
    sync.acks.add(ack.node)
    sync.wake?.()
  }

  private async announce (op: 'add' | 'remove', filter: string): Promise<void> {
    const { commands, nodeId } = this.options
    const key = this.keys.routes(nodeId)
    // sent together, one round trip (a resumed session waits for it): Redis runs a connection's
    // commands in order, so a node that reloads the table on the change finds the route stored
    await Promise.all([
      op === 'add' ? commands.sadd(key, filter) : commands.srem(key, filter),
      commands.publish(this.keys.changes, JSON.stringify({ node: nodeId, op, filter }))
    ])
  }

  private applyChange (change: RouteChange): void {
    if (change.node === this.options.nodeId) return
    if (change.op === 'reset') {
      this.dropNode(change.node)
      this.pendingSyncs.delete(change.node)
      return
    }
    if (change.op === 'sync') {
      this.noteSync(change.node, change.seq ?? 0, change.filters ?? [])
      return
    }
    if (change.op === 'reload') {
      this.reloadNode(change.node).then(() => this.answerSyncs(change.node), (err: Error) => this.warn('route reload failed', err))
      return
    }
    if (change.filter === undefined) return
    const filters = this.nodeFilters.get(change.node) ?? new Set<string>()
    this.nodeFilters.set(change.node, filters)
    if (change.op === 'add' && !filters.has(change.filter)) {
      filters.add(change.filter)
      this.routes.add(change.filter, change.node)
    } else if (change.op === 'remove' && filters.delete(change.filter)) {
      this.routes.remove(change.filter, change.node)
    }
    // an addition applied, or a removal (the node no longer waits for the filter): either answers
    this.settleFilter(change.node, change.filter)
  }

  /** A sync of `node`: acknowledged at once if this node routes its filters there, else once it does. */
  private noteSync (node: string, seq: number, filters: string[]): void {
    const routed = this.nodeFilters.get(node)
    const missing = new Set(filters.filter((filter) => routed?.has(filter) !== true))
    if (missing.size === 0) {
      this.acknowledge(node, seq)
      return
    }
    const sync: PendingSync = { seq, missing }
    let byFilter = this.pendingSyncs.get(node)
    if (byFilter === undefined) {
      byFilter = new Map()
      this.pendingSyncs.set(node, byFilter)
    }
    for (const filter of missing) {
      let syncs = byFilter.get(filter)
      if (syncs === undefined) {
        syncs = new Set()
        byFilter.set(filter, syncs)
      }
      syncs.add(sync)
    }
  }

  /**
   * `node`'s `filter` is routed there now, or the node removed it (its sync no longer waits for
   * it): the syncs naming it wait for it no more; those with nothing left are acknowledged.
   */
  private settleFilter (node: string, filter: string): void {
    const byFilter = this.pendingSyncs.get(node)
    const syncs = byFilter?.get(filter)
    if (byFilter === undefined || syncs === undefined) return
    byFilter.delete(filter)
    if (byFilter.size === 0) this.pendingSyncs.delete(node)
    for (const sync of syncs) {
      sync.missing.delete(filter)
      if (sync.missing.size === 0) this.acknowledge(node, sync.seq)
    }
  }

  /** After `node`'s whole route set was read: the syncs waiting for filters it now has. */
  private answerSyncs (node: string): void {
    const byFilter = this.pendingSyncs.get(node)
    const routed = this.nodeFilters.get(node)
    if (byFilter === undefined || routed === undefined) return
    for (const filter of [...byFilter.keys()]) if (routed.has(filter)) this.settleFilter(node, filter)
  }

  private acknowledge (node: string, seq: number): void {
    const ack: RouteAck = { node: this.options.nodeId, seq }
    this.options.commands.publish(this.keys.acks(node), JSON.stringify(ack)).catch((err: Error) => this.warn('route acknowledgement failed', err))
  }

  private dropNode (node: string): void {
    for (const filter of this.nodeFilters.get(node) ?? []) this.routes.remove(filter, node)
    this.nodeFilters.delete(node)
  }

  private async reloadNode (node: string): Promise<void> {
    const filters = await this.options.commands.smembers(this.keys.routes(node))
    this.dropNode(node)
    this.nodeFilters.set(node, new Set(filters))
    for (const filter of filters) this.routes.add(filter, node)
  }

  private async loadRoutes (): Promise<void> {
    const { commands, nodeId, registry } = this.options
    const nodes = await registry.live()
    const tables = await Promise.all(nodes.filter(({ id }) => id !== nodeId).map(async ({ id }) => [id, await commands.smembers(this.keys.routes(id))] as const))
    this.routes.clear()
    this.nodeFilters.clear()
    for (const [node, filters] of tables) {
      this.nodeFilters.set(node, new Set(filters))
      for (const filter of filters) this.routes.add(filter, node)
    }
    for (const node of [...this.pendingSyncs.keys()]) this.answerSyncs(node)
  }

  /** A dead node (claimed by this one): its routes and inbox go, and every node drops its routes. */
  private async retire (node: string): Promise<void> {
    const { commands, logger } = this.options
    this.dropNode(node)
    this.pendingSyncs.delete(node)
    await commands.multi().del(this.keys.routes(node)).del(this.keys.inbox(node)).exec()
    await commands.publish(this.keys.changes, JSON.stringify({ node, op: 'reset' }))
    logger.warn({ event: 'cluster.node-lost', lost: node }, 'a node stopped beating: its routes are retired')
  }

  private async rejoin (): Promise<void> {
    const { commands, nodeId, logger } = this.options
    const key = this.keys.routes(nodeId)
    const filters = [...this.localFilters.keys()]
    // the others dropped these routes meanwhile
    this.appliedEverywhere.clear()
    const transaction = commands.multi().del(key)
    if (filters.length > 0) transaction.sadd(key, ...filters)
    await transaction.exec()
    await commands.publish(this.keys.changes, JSON.stringify({ node: nodeId, op: 'reload' }))
    await this.loadRoutes()
    logger.warn({ event: 'cluster.rejoined', routes: filters.length }, 'the other nodes had retired this node (no heartbeat within the node timeout): its routes are announced again')
  }

  private async readInbox (): Promise<void> {
    const { reader, nodeId } = this.options
    const inbox = this.keys.inbox(nodeId)
    while (!this.closed) {
      let batch: Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null
      try {
        batch = await reader.xreadBuffer('COUNT', readBatch, 'BLOCK', readBlockMs, 'STREAMS', inbox, this.lastId) as typeof batch
      } catch (err) {
        if (this.closed) return
        this.warn('inbox read failed; retrying', err as Error)
        await new Promise((resolve) => setTimeout(resolve, 200))
        continue
      }
      // Deliver the batch before reading the next: back-pressure from the local subscribers.
      // At most half the emitter's concurrency in flight: beyond it mqemitter queues in an
      // array it shifts from, which costs O(n) per message for a large batch. Messages are
      // decoded a window at a time: decoded ones waiting for the windows before them would
      // outlive young-generation collections and be promoted.
      const windowSize = Math.max(1, Math.floor(this.options.concurrency / 2))
      let window: Message[] = []
      for (const [id, fields] of batch?.[0]?.[1] ?? []) {
        this.lastId = id.toString()
        for (let i = 0; i + 1 < fields.length; i += 2) {
          if ((fields[i] as Buffer).toString() !== batchField) continue
          const messages = new BatchReader(fields[i + 1] as Buffer)
          for (let message = messages.next(); message !== null; message = messages.next()) {
            window.push(message)
            if (window.length < windowSize) continue
            await this.deliverLocally(window)
            window = []
          }
        }
      }
      if (window.length > 0) await this.deliverLocally(window)
    }
  }

  /** Emits messages to this node's subscribers; resolves once every one is delivered. */
  private async deliverLocally (messages: Message[]): Promise<void> {
    await new Promise<void>((resolve) => {
      let pending = messages.length
      const delivered = (): void => { if (--pending === 0) resolve() }
      for (const message of messages) {
        if (message.shareTarget !== undefined && this.shareReceiver !== null) this.shareReceiver(message, delivered)
        else this.local.emit(message, delivered)
      }
    })
  }

  private warn (what: string, err: Error): void {
    this.options.logger.warn({ event: 'cluster.emitter', reason: err.message }, what)
  }
}

function noop (): void {}

/** A callback that calls `done` once it has been called `parts` times, with the first error. */
export function join (parts: number, done: Callback): Callback {
  let failure: Error | undefined
  return (err) => {
    if (err !== undefined && failure === undefined) failure = err
    if (--parts === 0) done(failure)
  }
}
