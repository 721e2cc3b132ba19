// Caps the messages a persistent session holds (sessions.maxQueuedMessages): QoS 1/2 messages
// queued for it while offline, plus those sent but not yet acknowledged. A message that would
// go over the cap is not stored for that session (drop-new: the session keeps the oldest
// messages, in order, and loses the newest), and every such drop is counted and logged. The
// message is still stored for every other session it matches, so the publisher's PUBACK keeps
// its meaning for them [MQTT-4.3.2-2]. A connected session over its cap still gets the message
// live, once, without a stored copy to re-send.
//
// The cap wraps the persistence's enqueue methods, which Aedes calls for every persistent
// session a QoS 1/2 message matches (aedes.js `enqueueOffline`, lib/client.js `publish`).
import { Cluster } from 'ioredis'
import type { RedisClient } from '../storage/redis-clients.js'
import type { Logger } from '../observability/logger.js'

interface Subscription { clientId: string }
type Callback = (err?: Error | null, packet?: unknown) => void

/** The callback-or-promise enqueue methods of aedes-persistence's CallBackPersistence. */
export interface EnqueuingPersistence {
  outgoingEnqueue: (sub: Subscription, packet: object, cb?: Callback) => unknown
  outgoingEnqueueCombi: (subs: Subscription[], packet: object, cb?: Callback) => unknown
  outgoingUpdate: (client: { id: string }, packet: object, cb?: Callback) => unknown
}

/** How many messages each session holds, in the order asked. */
export type QueueLengths = (clientIds: string[]) => Promise<number[]>

export interface QueueCapOptions {
  /** Messages a session may hold; 0 = unlimited (the cap is then not installed). */
  max: number
  lengths: QueueLengths
  /** Counts one message not stored for one session. */
  onDrop: () => void
  logger: Logger
  /** In memory, a message sent live to a session it was not stored for fails its update. */
  tolerateUnstoredUpdates: boolean
}

// One warning per session per this period; the counter has every drop.
const logEveryMs = 60_000

export function capSessionQueues (persistence: EnqueuingPersistence, options: QueueCapOptions): void {
  if (options.max === 0) return
  const { max, lengths, onDrop, logger } = options
  const enqueueCombi = persistence.outgoingEnqueueCombi.bind(persistence) as (subs: Subscription[], packet: object) => Promise<void>
  const lastLogged = new Map<string, number>()
  // sessions that lost a message (memory only), whose live delivery of it must not fail
  const capped = new Set<string>()

  const drop = (clientId: string, dropped: number): void => {
    for (let i = 0; i < dropped; i++) onDrop()
    if (options.tolerateUnstoredUpdates) capped.add(clientId)
    const now = Date.now()
    if ((lastLogged.get(clientId) ?? 0) + logEveryMs > now) return
    if (lastLogged.size > 10_000) lastLogged.clear()
    lastLogged.set(clientId, now)
    logger.warn({ event: 'session.queue-full', clientId, maxQueuedMessages: max }, 'session queue full: message not stored for this session (further drops for it are counted, not logged, for a minute)')
  }

  const admit = async (subs: Subscription[]): Promise<Subscription[]> => {
    if (subs.length === 0) return subs
    const held = await lengths(subs.map((sub) => sub.clientId))
    const kept: Subscription[] = []
    subs.forEach((sub, i) => {
      if ((held[i] ?? 0) < max) kept.push(sub)
      else drop(sub.clientId, 1)
    })
    return kept
  }

  const enqueueCapped = async (subs: Subscription[], packet: object): Promise<void> => {
    const kept = await admit(subs)
    // the store keeps one reference count per session it queues for: only the admitted ones
    if (kept.length > 0) await enqueueCombi(kept, packet)
  }

  persistence.outgoingEnqueueCombi = (subs, packet, cb) => settle(enqueueCapped(subs ?? [], packet), packet, cb)
  persistence.outgoingEnqueue = (sub, packet, cb) => settle(enqueueCapped([sub], packet), packet, cb)

  if (options.tolerateUnstoredUpdates) {
    const update = persistence.outgoingUpdate.bind(persistence) as (client: { id: string }, packet: object) => Promise<void>
    persistence.outgoingUpdate = (client, packet, cb) => {
      const work = update(client, packet).catch((err: Error) => {
        if (err.message === 'no such packet' && capped.has(client.id)) return
        throw err
      })
      if (cb === undefined) return work
      work.then(() => cb(null, client), cb)
      return undefined
    }
  }
}

function settle (work: Promise<void>, packet: object, cb?: Callback): Promise<void> | undefined {
  if (cb === undefined) return work
  work.then(() => { process.nextTick(cb, null, packet) }, cb)
  return undefined
}

/** Queue lengths in Redis: one pipelined LLEN per session, one round trip per message. */
export function redisQueueLengths (redis: RedisClient): QueueLengths {
  // aedes-persistence-redis keeps a session's queue in the list outgoing:<encoded client id>
  const queueKey = (id: string): string => `outgoing:${encodeURIComponent(id)}`
  // a Cluster pipeline must stay on one node: each LLEN goes to its key's node, all at once
  if (redis instanceof Cluster) return async (clientIds) => await Promise.all(clientIds.map(async (id) => await redis.llen(queueKey(id))))
  return async (clientIds) => {
    const pipeline = redis.pipeline()
    for (const id of clientIds) pipeline.llen(queueKey(id))
    const results = await pipeline.exec() ?? []
    return results.map(([err, length]) => {
      if (err !== null) throw err
      return Number(length)
    })
  }
}

/** Queue lengths in aedes-persistence's memory store (outgoingLength is added by our patch). */
export function memoryQueueLengths (store: { outgoingLength: (client: { id: string }) => Promise<number> }): QueueLengths {
  return async (clientIds) => await Promise.all(clientIds.map(async (id) => await store.outgoingLength({ id })))
}
