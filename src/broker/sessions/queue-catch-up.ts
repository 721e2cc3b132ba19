// A persistent session's QoS 1/2 messages that were stored for it but routed before its route.
//
// A node announces a filter its clients subscribe to, and the other nodes route the filter's
// messages to it once the announcement reaches them (src/broker/cluster/routed-emitter.ts). A
// message another node stores for the session in between (Aedes queues it for every persistent
// subscription first, then hands it to the emitter) is routed elsewhere: it stays in the
// session's queue, which the node has already read (on CONNECT), or does not read at all (on
// SUBSCRIBE), until the session's next reconnect. So when a persistent session's subscription
// adds a route that is not known to be applied everywhere, its live QoS 1/2 deliveries are held
// (they are in its queue too) from the subscription on; once every live node has acknowledged
// the route, the queue is read once more and what this connection was not sent yet goes out in
// the queue's order, then the held deliveries not sent meanwhile: every message once, each
// publisher's in order [MQTT-4.6.0-6]. The hold is short (`holdMs`): a node that does not
// answer by then (dead, and still counted live by the registry until the node timeout) does not
// hold the session's messages any longer; the queue is read and the held deliveries released
// at the bound, and once every node answered (or the node timeout passed), the queue is read
// once more in the background: its rare stragglers may arrive after newer messages. The cost
// is one wait and one or two queue reads per new route of a persistent session; other
// deliveries pass untouched.
import type { Aedes, Client } from 'aedes'
import type { BrokerHooks } from '../hooks.js'
import type { Logger } from '../observability/logger.js'
import type { Storage } from '../storage/storage.js'
import { topicMatches } from '../../acl/topic-grammar.js'
import { connackSent, deliveriesOf, queuedMessages, subscriptionsOf, watchSessionSends, type Deliver, type DeliveredPacket } from '../aedes-adapter.js'

/** The routed emitter's side: whether a filter's route may not be applied everywhere yet, and a wait until it is. */
export interface RouteSettling {
  routePending: (filter: string) => boolean
  routesApplied: (filters: Iterable<string>) => Promise<boolean>
}

interface HeldDelivery {
  packet: DeliveredPacket & { brokerCounter?: number }
  maxQos: number | undefined
}

/** A session whose live QoS 1/2 deliveries wait for its queue to be read again. */
interface Gate {
  filters: Set<string>
  // the filters of SUBSCRIBEs whose SUBACK is not out yet; restoring: the CONNECT's queue is not sent yet
  awaiting: Set<string>
  restoring: boolean
  held: HeldDelivery[]
  // the messages this connection was sent (brokerId:brokerCounter), live or from the queue
  sent: Set<string>
  // those the second reads sent: their live copy may still be on its way after the release
  resent: Set<string>
  // the deliveries the gate stands in front of
  deliverQoS: Deliver
  running: Promise<void>
  // catch-ups queued or running: the last one to end releases the held deliveries
  queued: number
  // the SUBSCRIBEs' waits for their SUBACK (cleared on release)
  timers: NodeJS.Timeout[]
  // route waits still running at their catch-up's hold bound: a last read follows them
  pending: Array<Promise<boolean>>
}

/** After a release: live copies of the messages the second reads sent, dropped for a while. */
interface LateCopies {
  wrapper: Deliver
  // the deliveries the wrapper stands in front of
  original: Deliver
  keys: Set<string>
  timer: NodeJS.Timeout
}

type AuthorizeSubscribe = BrokerHooks['authorizeSubscribe']

const sharePrefix = '$share/'

export class QueueCatchUp {
  private readonly gates = new WeakMap<Client, Gate>()
  private readonly lateCopies = new WeakMap<Client, LateCopies>()
  // the read of a session's queue running (sendQueued)
  private readonly reads = new WeakMap<Client, Promise<void>>()
  // released at the hold bound: the sent sets the connection's sends are added to, until the last read
  private readonly following = new WeakMap<Client, Set<Set<string>>>()
  // how long a message the second read sent may still arrive live (one registry beat, 1 s at least)
  private readonly lateCopyMs: number
  // how long a catch-up holds the live deliveries for the route's acknowledgements at most
  // (one registry beat, 1 s at most: an answer is a pub/sub round trip; a node that does not
  // answer may be dead, and counted live until the node timeout)
  private readonly holdMs: number

  /**
   * @param maxSubscribeMs how long a SUBSCRIBE's deliveries wait for its SUBACK at most (one that
   *   failed has none): then its queue is read again anyway
   */
  constructor (private readonly storage: Storage, private readonly routes: RouteSettling, private readonly maxSubscribeMs: number, private readonly logger: Logger) {
    watchSessionSends(storage, (client, packet) => {
      // every persistent QoS 1/2 send comes here: nothing is made unless a catch-up watches it
      const gate = this.gates.get(client)
      const following = this.following.get(client)
      if (gate === undefined && following === undefined) return
      const key = messageKey(packet)
      gate?.sent.add(key)
      if (following !== undefined) for (const sent of following) sent.add(key)
    })
    this.lateCopyMs = Math.max(1000, storage.registry.timing.beatMs)
    this.holdMs = Math.min(1000, storage.registry.timing.beatMs)
  }

  /**
   * Wraps the authorizeSubscribe hook: a persistent session's QoS 1/2 subscription whose route
   * may not be applied everywhere holds the session's live deliveries from here on (Aedes adds
   * the subscription's listener after this answer, on CONNECT as on SUBSCRIBE).
   */
  authorizing (authorize: AuthorizeSubscribe): AuthorizeSubscribe {
    return (client, subscription, done) => {
      authorize(client, subscription, (err, granted) => {
        if (err == null && granted != null && granted.qos > 0 && !client.clean && !granted.topic.startsWith(sharePrefix) && this.routes.routePending(granted.topic)) {
          this.hold(client, granted.topic)
        }
        done(err, granted)
      })
    }
  }

  /** Follows the sessions: a CONNECT's queue sent, a SUBSCRIBE's SUBACK out. */
  attach (aedes: Aedes): void {
    aedes.on('clientReady', (client) => {
      const gate = this.gates.get(client)
      if (gate === undefined || !gate.restoring) return
      gate.restoring = false
      this.catchUp(client, gate)
    })
    aedes.on('subscribe', (subscriptions, client) => {
      const gate = this.gates.get(client)
      if (gate === undefined || gate.awaiting.size === 0) return
      for (const { topic } of subscriptions) gate.awaiting.delete(topic)
      if (gate.awaiting.size === 0 && !gate.restoring) this.catchUp(client, gate)
    })
  }

  private hold (client: Client, filter: string): void {
    let gate = this.gates.get(client)
    if (gate === undefined) {
      const target = deliveriesOf(client)
      let deliverQoS = target.deliverQoS
      const sent = new Set<string>()
      const resent = new Set<string>()
      // the previous release's late copies are still dropped: this gate takes them over
      const late = this.lateCopies.get(client)
      if (late !== undefined && deliverQoS === late.wrapper) {
        clearTimeout(late.timer)
        this.lateCopies.delete(client)
        deliverQoS = late.original
        for (const key of late.keys) {
          sent.add(key)
          resent.add(key)
        }
      }
      const held: Gate = { filters: new Set(), awaiting: new Set(), restoring: false, held: [], sent, resent, deliverQoS, running: Promise.resolve(), queued: 0, timers: [], pending: [] }
      target.deliverQoS = function heldDeliverQoS (packet, done, maxQos, onPacketId) {
        // QoS 0, a retained message sent on SUBSCRIBE and a shared subscription's copy are not
        // in the session's queue: they go on as before
        if (packet.qos === 0 || packet.brokerId == null || onPacketId !== undefined) {
          deliverQoS.call(this, packet, done, maxQos, onPacketId)
          return
        }
        held.held.push({ packet, maxQos })
        // stored in the session's queue before it was emitted: the emitter need not wait
        setImmediate(done)
      }
      gate = held
      this.gates.set(client, gate)
    }
    gate.filters.add(filter)
    // before the CONNACK: a subscription the CONNECT restores (a SUBSCRIBE is read after it)
    if (!connackSent(client)) {
      gate.restoring = true
      return
    }
    gate.awaiting.add(filter)
    const waiting = gate
    const timer = setTimeout(() => {
      if (waiting.awaiting.delete(filter) && waiting.awaiting.size === 0 && !waiting.restoring) this.catchUp(client, waiting)
    }, this.maxSubscribeMs)
    timer.unref()
    gate.timers.push(timer)
  }

  /**
   * One catch-up at a time per session; the last one queued releases the held deliveries (a
   * SUBSCRIBE right after the CONNACK queues one behind the CONNECT's).
   */
  private catchUp (client: Client, gate: Gate): void {
    const filters = [...gate.filters]
    gate.queued++
    gate.running = gate.running
      .then(async () => await this.resend(client, gate, filters))
      .catch((err: Error) => this.logger.warn({ event: 'session.catch-up-failed', clientId: client.id, reason: err.message }, 'a session\'s queue could not be read again after a new route'))
      .finally(() => {
        gate.queued--
        if (gate.queued > 0 || gate.awaiting.size > 0 || gate.restoring || this.gates.get(client) !== gate) return
        this.release(client, gate)
      })
  }

  /**
   * Once every live node routes `filters` here, or at the hold bound: what the session's queue
   * holds and this connection was not sent. A route wait still running at the bound goes on
   * (`pending`): the release is followed by one more read once it ends.
   */
  private async resend (client: Client, gate: Gate, filters: string[]): Promise<void> {
    const applied = this.routes.routesApplied(filters)
    const inTime = await settlesWithin(applied, this.holdMs)
    if (client.closed) return
    if (!inTime) gate.pending.push(applied)
    const resent = await this.sendQueued(client, gate.deliverQoS, gate.sent, gate.resent)
    if (resent > 0) this.logger.info({ event: 'session.catch-up', clientId: client.id, messages: resent }, 'queued messages routed before a new route reached every node were sent')
  }

  /**
   * Sends, in the queue's order, the queued messages not in `sent` (added to `sent` and `resent`),
   * after any read of the session's queue still running: two reads at once (two syncs answered
   * together) would each send what the other had not recorded yet.
   */
  private async sendQueued (client: Client, deliverQoS: Deliver, sent: Set<string>, resent: Set<string>): Promise<number> {
    const read = (this.reads.get(client) ?? Promise.resolve()).then(async () => await this.readQueue(client, deliverQoS, sent, resent))
    const settled = read.then(noop, noop)
    this.reads.set(client, settled)
    void settled.then(() => { if (this.reads.get(client) === settled) this.reads.delete(client) })
    return await read
  }

  private async readQueue (client: Client, deliverQoS: Deliver, sent: Set<string>, resent: Set<string>): Promise<number> {
    let count = 0
    const now = Date.now()
    for await (const message of queuedMessages(this.storage, client)) {
      if (client.closed) break
      // a numbered copy was sent (on this connection's CONNECT, or live); an expired message is
      // dropped by the next CONNECT [MQTT-3.3.2-5]
      const key = messageKey(message)
      if (message.cmd !== 'publish' || message.messageId != null || sent.has(key)) continue
      if (message.messageExpiry !== undefined) {
        if (message.messageExpiry <= now) continue
        message.properties = { ...message.properties, messageExpiryInterval: Math.ceil((message.messageExpiry - now) / 1000) }
      }
      sent.add(key)
      resent.add(key)
      // at most the QoS its subscriptions grant, as on CONNECT [MQTT-3.8.4-6] (none left: as stored)
      const granted = grantedQoS(client, message.topic)
      deliverQoS.call(client, message, noop, granted > 0 ? granted : undefined)
      count++
    }
    return count
  }

  /** The held deliveries not sent meanwhile, in the order they arrived; then deliveries go straight on. */
  private release (client: Client, gate: Gate): void {
    this.gates.delete(client)
    for (const timer of gate.timers) clearTimeout(timer)
    const target = deliveriesOf(client)
    target.deliverQoS = gate.deliverQoS
    if (client.closed) return
    for (const { packet, maxQos } of gate.held) {
      const key = messageKey(packet)
      if (!gate.sent.has(key)) gate.deliverQoS.call(client, packet, noop, maxQos)
      else gate.resent.delete(key)
    }
    gate.held.length = 0
    if (gate.resent.size > 0) this.dropLateCopies(client, gate.deliverQoS, gate.resent)
    if (gate.pending.length > 0) this.follow(client, gate)
  }

  /**
   * Released at the hold bound: once the route waits still running end (every live node
   * answered, or the node timeout passed), the queue is read once more and what this connection
   * was not sent goes out. Such a straggler (a message a slow node stored for the session before
   * it routed the filter here) may arrive after newer messages: the price of the short hold.
   */
  private follow (client: Client, gate: Gate): void {
    const sent = gate.sent
    let following = this.following.get(client)
    if (following === undefined) this.following.set(client, following = new Set())
    following.add(sent)
    const done = (): void => {
      following.delete(sent)
      if (following.size === 0 && this.following.get(client) === following) this.following.delete(client)
    }
    void Promise.all(gate.pending)
      .then(async () => {
        if (client.closed) return
        // live deliveries flow during this read: a message's key goes into the late-copy drop set
        // before the read sends it, so its live copy arriving meanwhile is dropped too
        const dropping = this.lateCopyKeys(client, gate.deliverQoS)
        const resent = dropping ?? new Set<string>()
        const count = await this.sendQueued(client, gate.deliverQoS, sent, resent)
        if (count > 0) this.logger.info({ event: 'session.catch-up-late', clientId: client.id, messages: count }, 'queued messages routed before a new route reached every node were sent after the hold')
        if (client.closed) return
        // a gate holding now (it took the drop set over, or stood in front of it) skips them at its release
        const next = this.gates.get(client)
        if (next !== undefined) {
          for (const key of resent) {
            next.sent.add(key)
            next.resent.add(key)
          }
        } else {
          // counted from the read's end (into the set in place now, if the read's expired meanwhile)
          this.dropLateCopies(client, gate.deliverQoS, resent)
        }
      })
      .catch((err: Error) => this.logger.warn({ event: 'session.catch-up-failed', clientId: client.id, reason: err.message }, 'a session\'s queue could not be read again after a new route'))
      .finally(done)
  }

  /**
   * A message a read sent may still arrive live after the release (another node stored it, then
   * routed it here): its copy is dropped, for `lateCopyMs` at most (from the last read's keys).
   */
  private dropLateCopies (client: Client, deliverQoS: Deliver, keys: Set<string>): void {
    const dropping = this.lateCopyKeys(client, deliverQoS)
    if (dropping !== null && dropping !== keys) for (const key of keys) dropping.add(key)
  }

  /**
   * The keys whose live copies are dropped now (joined, its `lateCopyMs` counted again), or a new
   * such set in front of `deliverQoS`; null while something else (a holding gate) stands there.
   */
  private lateCopyKeys (client: Client, deliverQoS: Deliver): Set<string> | null {
    const target = deliveriesOf(client)
    const late = this.lateCopies.get(client)
    if (late !== undefined && target.deliverQoS === late.wrapper) {
      clearTimeout(late.timer)
      late.timer = this.lateCopyTimer(client, late)
      return late.keys
    }
    if (target.deliverQoS !== deliverQoS) return null
    const dropping = new Set<string>()
    const wrapper: Deliver = function dropLateCopy (this: unknown, packet, done, maxQos, onPacketId) {
      if (packet.qos > 0 && onPacketId === undefined && packet.brokerId != null && dropping.delete(messageKey(packet))) {
        setImmediate(done)
        return
      }
      deliverQoS.call(this, packet, done, maxQos, onPacketId)
    }
    target.deliverQoS = wrapper
    const entry: LateCopies = { wrapper, original: deliverQoS, keys: dropping, timer: undefined as unknown as NodeJS.Timeout }
    entry.timer = this.lateCopyTimer(client, entry)
    this.lateCopies.set(client, entry)
    return dropping
  }

  private lateCopyTimer (client: Client, late: LateCopies): NodeJS.Timeout {
    const timer = setTimeout(() => {
      // a read of the queue still running may still send, and add to, these keys
      if (this.reads.has(client)) {
        late.timer = this.lateCopyTimer(client, late)
        return
      }
      late.keys.clear()
      if (this.lateCopies.get(client) === late) this.lateCopies.delete(client)
      const target = deliveriesOf(client)
      if (target.deliverQoS === late.wrapper) target.deliverQoS = late.original
    }, this.lateCopyMs)
    timer.unref()
    return timer
  }
}

/** Whether `promise` settles within `ms`. */
async function settlesWithin (promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<boolean>((resolve) => { timer = setTimeout(resolve, ms, false) })
  try {
    return await Promise.race([promise.then(() => true, () => true), bound])
  } finally {
    clearTimeout(timer)
  }
}

function messageKey (packet: DeliveredPacket & { brokerCounter?: number }): string {
  return `${packet.brokerId ?? ''}:${packet.brokerCounter ?? ''}`
}

/** The highest QoS among the client's subscriptions matching `topic` [MQTT-3.3.5-1]. */
function grantedQoS (client: Client, topic: string): number {
  let qos = 0
  for (const subscription of subscriptionsOf(client)) {
    if (subscription.qos > qos && topicMatches(subscription.topic, topic)) qos = subscription.qos
  }
  return qos
}

function noop (): void {}
