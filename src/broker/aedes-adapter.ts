// Every contact with Aedes' internals (fields and behaviour its typings leave out) is in this
// file: with patches/, the one place to review on an Aedes upgrade (docs/aedes-patches.md).
import type { EventEmitter } from 'node:events'
import * as aedesModule from 'aedes'
import type { Aedes, AedesPublishPacket, Client, PublishPacket } from 'aedes'
import type { SessionPersistence } from './sessions/session-expiry.js'
import type { EnqueuingPersistence } from './sessions/session-queue-cap.js'
import type { Storage } from './storage/storage.js'
import type { RetainedStore } from './admin/retained-admin.js'

type Done = (err?: Error) => void
// Aedes' handlers call publish(packet, client, done); its typings only declare (packet, done).
type InternalPublish = (packet: PublishPacket, client: Client | null | Done, done?: Done) => void

interface AedesInternals {
  // the connected clients by client id
  clients: Record<string, Client>
  publish: InternalPublish
}

/** What a delivery looks at: Aedes' Packet. */
export interface DeliveredPacket {
  qos: number
  // null for a retained message sent on SUBSCRIBE (Aedes does not dedupe those)
  brokerId?: string | null
}
// onPacketId: told the Packet Identifier a QoS 1/2 message is sent with (shared subscriptions)
export type Deliver = (packet: DeliveredPacket, done: () => void, maxQos?: number, onPacketId?: (packetId: number) => void) => void
/** How Aedes hands every message to a client: deliver0 for QoS 0, deliverQoS otherwise. */
export interface Deliveries {
  deliver0: Deliver
  deliverQoS: Deliver
}

interface ClientInternals extends Deliveries {
  broker: AedesInternals
  // the client's subscriptions by filter; MQTT 5: Retain As Published, Subscription Identifier
  subscriptions: Record<string, { qos: number, rap?: boolean, si?: number }>
  // the will of the CONNECT being processed, set before authenticate
  _will?: Will
}

type Will = NonNullable<Parameters<NonNullable<Aedes['preConnect']>>[1]['will']>

const internals = (aedes: Aedes): AedesInternals => aedes as unknown as AedesInternals
const clientInternals = (client: Client): ClientInternals => client as unknown as ClientInternals

/** The clients connected to this node. */
export function connectedClients (aedes: Aedes): Client[] {
  return Object.values(internals(aedes).clients)
}

/** The client of this node holding `clientId`, if any. */
export function clientById (aedes: Aedes, clientId: string): Client | undefined {
  return internals(aedes).clients[clientId]
}

/** The client Aedes made of a connection it handles (aedes.handle sets `conn.client`). */
export function clientOfConnection (connection: object): Client {
  return (connection as { client: Client }).client
}

/** The client of `client`'s broker holding its client id (itself, another about to be taken over, or none). */
export function holderOfClientId (client: Client): Client | undefined {
  return clientInternals(client).broker.clients[client.id]
}

/** A client's subscriptions, at the QoS granted. */
export function subscriptionsOf (client: Client): Array<{ topic: string, qos: number }> {
  return Object.entries(clientInternals(client).subscriptions).map(([topic, { qos }]) => ({ topic, qos }))
}

/** What a client's subscriptions matching a topic make of a live copy of a message on it. */
export interface LiveCopyOptions {
  // the highest QoS they grant [MQTT-3.3.5-1] (0: none matches)
  qos: number
  // one asks for Retain As Published (MQTT 5) [MQTT-3.3.1-13]; otherwise RETAIN is cleared [MQTT-3.3.1-12]
  retainAsPublished: boolean
  // their Subscription Identifiers [MQTT-3.3.4-3]
  subscriptionIds: number[]
}

type Subscriptions = ClientInternals['subscriptions']
/** The rules the patched Aedes applies to every copy it sends (exported by the patch; its typings lack them). */
interface CopyRules {
  grantedQoS: (subscriptions: Subscriptions, topic: string) => number
  retainAsPublished: (subscriptions: Subscriptions, topic: string) => boolean
  subscriptionIds: (subscriptions: Subscriptions, topic: string) => number[]
  noLocal: (subscriptions: Subscriptions, topic: string) => boolean
}
const copyRules = aedesModule as unknown as CopyRules

/** Whether No Local keeps `message`, the client's own, from it: every matching subscription has it [MQTT-3.8.3-3]. */
export function keptByNoLocal (client: Client, message: { topic: string, clientId?: string }): boolean {
  return message.clientId === client.id && copyRules.noLocal(clientInternals(client).subscriptions, message.topic)
}

/** What the client's subscriptions matching `topic` make of a live copy of a message on it, by Aedes' own rules. */
export function liveCopyOptions (client: Client, topic: string): LiveCopyOptions {
  const subscriptions = clientInternals(client).subscriptions
  return {
    qos: Math.max(0, copyRules.grantedQoS(subscriptions, topic)),
    retainAsPublished: copyRules.retainAsPublished(subscriptions, topic),
    subscriptionIds: copyRules.subscriptionIds(subscriptions, topic)
  }
}

interface ParserSettings { protocolVersion?: number, bridgeMode?: boolean }
// one settings object per protocol version and bridge mode, shared by every parser
const sharedParserSettings = new Map<string, Readonly<ParserSettings>>()

/**
 * Lets go of the CONNECT packet the client's parser keeps: mqtt-packet's parser holds the CONNECT
 * it parsed as its settings, of which it reads only the protocol version and bridge mode from
 * then on; with it went the username, the password and the whole read buffer the password is a
 * slice of (about 0.6 KiB per idle connection). Once the CONNECT is handled (CONNACK sent).
 */
export function forgetConnectPacket (client: Client): void {
  const parser = (client as unknown as { _parser: { settings: ParserSettings } })._parser
  const { protocolVersion, bridgeMode } = parser.settings
  const key = `${String(protocolVersion)}:${String(bridgeMode === true)}`
  let settings = sharedParserSettings.get(key)
  if (settings === undefined) {
    settings = Object.freeze({ protocolVersion, bridgeMode: bridgeMode === true })
    sharedParserSettings.set(key, settings)
  }
  parser.settings = settings
}

/** The will of a client whose CONNECT is being authenticated. */
export function willOf (client: Client): Will | undefined {
  return clientInternals(client)._will ?? undefined
}

/** A client's deliveries, to be replaced by wrappers of them (see capClientOutput). */
export function deliveriesOf (client: Client): Deliveries {
  return clientInternals(client)
}

/**
 * Puts `accept` before Aedes takes a message a client published, its will included (the one
 * wrapper of aedes.publish): false acknowledges it without publishing it. Messages published
 * without a client (presence, HTTP, $SYS) pass untouched.
 */
export function interceptClientPublishes (aedes: Aedes, accept: (packet: PublishPacket) => boolean): void {
  const target = internals(aedes)
  const publish = target.publish.bind(aedes)
  target.publish = function (packet, clientOrDone, maybeDone) {
    if (typeof clientOrDone === 'function' || clientOrDone === null || accept(packet)) return publish(packet, clientOrDone, maybeDone)
    setImmediate(maybeDone ?? (() => {}))
  }
}

/**
 * A message `interceptPublishes` holds before Aedes takes it: `publish()` goes on, `acknowledge()`
 * answers its publisher without publishing. One object per message and no closures, as many
 * may wait at once (for a store's round trip) and survive the young generation's collections.
 */
export class HeldPublish {
  constructor (readonly packet: PublishPacket, private readonly publishTo: InternalPublish, private readonly clientOrDone: Client | null | Done, private readonly maybeDone: Done | undefined) {}

  publish (): void {
    this.publishTo(this.packet, this.clientOrDone, this.maybeDone)
  }

  acknowledge (): void {
    const done = typeof this.clientOrDone === 'function' ? this.clientOrDone : this.maybeDone
    if (done !== undefined) setImmediate(done)
  }
}

/**
 * Puts `handle` before Aedes takes every message `wants` picks, whoever published it (clients,
 * wills, HTTP, the broker): `handle` calls the held message's `publish()` to go on, or
 * `acknowledge()` to answer the publisher without publishing. A message `wants` does not pick
 * costs one call.
 */
export function interceptPublishes<H extends HeldPublish> (aedes: Aedes, wants: (packet: PublishPacket) => boolean, Held: HeldPublishClass<H>, handle: (held: H) => void): void {
  const target = internals(aedes)
  const publish = target.publish.bind(aedes)
  target.publish = function (packet, clientOrDone, maybeDone) {
    if (!wants(packet)) return publish(packet, clientOrDone, maybeDone)
    handle(new Held(packet, publish, clientOrDone, maybeDone))
  }
}

/** HeldPublish or a subclass of it: the handler's own state in the one object held per message. */
export type HeldPublishClass<H extends HeldPublish> = new (...args: ConstructorParameters<typeof HeldPublish>) => H

const kStamp = Symbol('stamp')
type Stamped = Buffer & { [kStamp]?: number }

/**
 * Stamps a message accepted by publish(): Aedes copies it into a new Packet on its way to each
 * subscriber (aedes-packet), and every copy shares the payload Buffer, which carries the stamp.
 * A property on it costs what a ring of stamps indexed by Aedes' message counter did, without
 * predicting that counter; a WeakMap keyed by the payload costs several times more.
 */
export function stampMessage (packet: PublishPacket, stamp: number): void {
  if (typeof packet.payload !== 'string') (packet.payload as Stamped)[kStamp] = stamp
}

/** The stamp of the message `packet` is a copy of, if it was stamped on this node. */
export function messageStamp (packet: AedesPublishPacket): number | undefined {
  return typeof packet.payload === 'string' ? undefined : (packet.payload as Stamped)[kStamp]
}

/**
 * The persistence as the session policies use it: they wrap its enqueueing methods and call
 * its cleanup methods, which its typings declare with other signatures for each store.
 */
export function sessionPersistence (storage: Storage): EnqueuingPersistence & SessionPersistence & SubscriptionReader {
  return storage.persistence as unknown as EnqueuingPersistence & SessionPersistence & SubscriptionReader
}

/** The persistence as the admin API reads and clears retained messages (both persistences return promises without a callback). */
export function retainedStore (storage: Storage): RetainedStore {
  return storage.persistence as unknown as RetainedStore
}

/** A session's stored subscriptions, as both persistences return them without a callback (the admin API). */
export interface SubscriptionReader {
  subscriptionsByClient: (client: { id: string }) => Promise<Array<{ topic: string, qos: number }>>
}

// Aedes (handlers/connect.js) stores this subscription for a session that has none, so that the
// session is found again; it is no subscription of the client's.
const sessionMarker = '$aedes/session\u0000'

/** The subscriptions a session stored, without Aedes' own marker. */
export async function storedSubscriptions (persistence: SubscriptionReader, clientId: string): Promise<Array<{ topic: string, qos: number }>> {
  const stored = await persistence.subscriptionsByClient({ id: clientId }) ?? []
  return stored.filter(({ topic }) => topic !== sessionMarker).map(({ topic, qos }) => ({ topic, qos }))
}

const kDelayed = Symbol('delayed will')
type DelayedWill = Will & { [kDelayed]?: true }

/** Whether `packet` is a will published after its Will Delay Interval (its client is gone by then). */
export function isDelayedWill (packet: PublishPacket): boolean {
  return (packet as unknown as DelayedWill)[kDelayed] === true
}

interface SessionTimers {
  scheduleSessionExpiry: (client: Client) => void
  scheduleWill: (client: Client, will: Will, delaySeconds: number) => void
  publishWill: (client: Client, will: Will) => void
  persistence: { delWill: (client: { id: string, brokerId: string }) => Promise<unknown> }
}

/**
 * Takes MQTT 5's session timers from Aedes, whose timers are per process: its session expiry
 * wiped a session resumed on another node, and its delayed will was published for a client
 * back on another node. Sessions then expire through session-expiry.ts (cluster-wide), and a
 * delayed will, still timed by Aedes, is published only if no connection on any node holds its
 * client id when it is due (`isHeld`) [MQTT-3.1.3-9]; otherwise it is deleted.
 */
export function clusterSafeSessionTimers (aedes: Aedes, isHeld: (clientId: string) => Promise<boolean>, onError: (err: Error) => void): void {
  const target = aedes as unknown as SessionTimers
  target.scheduleSessionExpiry = () => {}
  const { scheduleWill, publishWill } = target
  target.scheduleWill = function (client, will, delaySeconds) {
    scheduleWill.call(aedes, client, Object.assign({}, will, { [kDelayed]: true }), delaySeconds)
  }
  target.publishWill = function (client, will: DelayedWill) {
    if (will[kDelayed] !== true) return publishWill.call(aedes, client, will)
    isHeld(client.id).then((held) => {
      if (!held) return publishWill.call(aedes, client, will)
      return target.persistence.delWill({ id: client.id, brokerId: aedes.id })
    }).catch(onError)
  }
}

/**
 * Numbers this process's messages from `first` on (Aedes counts from 0 in each process). Aedes
 * keys a stored message by its broker's id and this number: a node restarted with the same
 * `nodeId` and counting from 0 again overwrote the messages it had stored before, still queued
 * for offline sessions, which lost them. Called before `listen`, which may publish.
 */
export function numberMessagesFrom (aedes: Aedes, first: number): void {
  (aedes as unknown as { counter: number }).counter = first
}

/** A shared subscription's emitter listener: Aedes' delivery to one member (patch: `func.client`). */
export type SharedListener = ((message: object, done: () => void, onPacketId?: (packetId: number) => void) => void) & { client?: Client }

/** The client a shared subscription's listener delivers to (undefined for any other listener). */
export function sharedSubscriber (listener: SharedListener): Client | undefined {
  return listener.client
}

interface AckPacket { cmd: string, messageId?: number }

/**
 * Calls `onAck` with the Packet Identifier of every PUBACK and PUBREC `client` sends (Aedes'
 * parser emits each packet it reads); returns what stops it.
 */
export function watchAcknowledgements (client: Client, onAck: (packetId: number) => void): () => void {
  const parser = (client as unknown as { _parser: EventEmitter })._parser
  const listener = (packet: AckPacket): void => {
    if ((packet.cmd === 'puback' || packet.cmd === 'pubrec') && packet.messageId !== undefined) onAck(packet.messageId)
  }
  parser.on('packet', listener)
  return () => parser.removeListener('packet', listener)
}

/**
 * Removes subscriptions of a client on the broker's initiative (no UNSUBACK: the packet has no
 * message id). Aedes' handler takes filter strings, which its typings do not declare.
 */
export function unsubscribeClient (client: Client, filters: string[]): void {
  client.unsubscribe({ unsubscriptions: filters } as unknown as Parameters<Client['unsubscribe']>[0], () => {})
}

/** A message as a session's queue holds it (Aedes' Packet, decoded by the persistence). */
export interface QueuedMessage extends DeliveredPacket {
  cmd: string
  topic: string
  // the publishing client's id
  clientId?: string
  brokerCounter: number
  // set once the message was sent to this session (its copy, numbered for it)
  messageId?: number
  retain?: boolean
  // MQTT 5 Message Expiry, as an absolute deadline (ms)
  messageExpiry?: number
  properties?: { messageExpiryInterval?: number, subscriptionIdentifier?: number | number[] }
}

interface QueueInternals {
  // with a callback or returning a promise (see session-queue-cap.ts, which wraps it too)
  outgoingUpdate: (client: Client, packet: QueuedMessage, cb?: unknown) => unknown
  outgoingStream: (client: Client) => AsyncIterable<QueuedMessage>
}

/**
 * Calls `onSent` with every QoS 1/2 message Aedes numbers for a persistent session before it
 * writes it (live or from the session's queue on CONNECT: both update the stored copy first).
 */
export function watchSessionSends (storage: Storage, onSent: (client: Client, packet: QueuedMessage) => void): void {
  const persistence = storage.persistence as unknown as QueueInternals
  const update = persistence.outgoingUpdate.bind(persistence)
  // fixed parameters (no rest array per send); without a callback, none is passed on (the
  // persistences choose the promise form on its absence)
  persistence.outgoingUpdate = (client, packet, cb) => {
    if (packet.cmd === 'publish') onSent(client, packet)
    return cb === undefined ? update(client, packet) : update(client, packet, cb)
  }
}

/** Whether the client was sent its CONNACK (Aedes reads its other packets only from then on). */
export function connackSent (client: Client): boolean {
  return (client as unknown as { connackSent?: boolean }).connackSent === true
}

/** The messages a session's queue holds, in order. */
export function queuedMessages (storage: Storage, client: Client): AsyncIterable<QueuedMessage> {
  return (storage.persistence as unknown as QueueInternals).outgoingStream(client)
}
