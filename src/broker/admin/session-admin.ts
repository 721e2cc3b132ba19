// Persistent sessions for the admin API, online and offline, cluster-wide: the session store
// (sessions/session-expiry.ts) pages through them with scan cursors; each page is completed
// with the subscriptions and the queued messages the persistence holds for each session.
// Deleting a session disconnects its client wherever it is connected, then deletes its
// subscriptions, queued messages, inbound QoS 2 state and will, as its expiry would.
import { storedSubscriptions, type SubscriptionReader } from '../aedes-adapter.js'
import type { SessionRecord, SessionStore } from '../sessions/session-expiry.js'
import type { QueueLengths } from '../sessions/session-queue-cap.js'
import type { ClusterAdmin, Unreachable } from './cluster-admin.js'

export interface SessionView {
  clientId: string
  /** The user owning the client id; null for anonymous clients or when unknown. */
  user: string | null
  online: boolean
  node: string | null
  /** Offline: when it is deleted, ISO time. Online: null. */
  expiresAt: string | null
  subscriptions: Array<{ topic: string, qos: number }>
  queued: number
}

export interface SessionAdminParts {
  store: SessionStore
  persistence: SubscriptionReader
  queueLengths: QueueLengths
  /** Deletes a session now, whatever its expiry (SessionExpiry.discard). */
  discard: (clientId: string) => Promise<void>
  cluster: ClusterAdmin
}

const maxScans = 10

/** `user:<sub>` -> <sub> (client-id-owner.ts); anonymous and unknown owners are null. */
function userOf (owner: string | null): string | null {
  return owner?.startsWith('user:') === true ? owner.slice('user:'.length) : null
}

export class SessionAdmin {
  constructor (private readonly parts: SessionAdminParts) {}

  /**
   * A page of sessions from `cursor` ('' first); `state` keeps only online or offline ones. A
   * session that ends with its connection is not listed. At most `maxScans` store pages are
   * read per call: a sparse page ends early with its cursor.
   */
  async page (cursor: string, limit: number, state?: 'online' | 'offline'): Promise<{ sessions: SessionView[], next: string | null }> {
    const kept: SessionRecord[] = []
    // the online phase is skipped as a whole when only offline sessions are asked for
    let next = state === 'offline' && cursor === '' ? 'offline:0' : cursor
    for (let scans = 0; scans < maxScans && kept.length < limit; scans++) {
      const found = await this.parts.store.page(next, limit - kept.length)
      kept.push(...found.sessions.filter((record) => (record.online ? record.lifetimeMs !== 0 : true) && (state === undefined || record.online === (state === 'online'))))
      next = found.next
      if (next === '' || (state === 'online' && next.startsWith('offline'))) return { sessions: await this.views(kept), next: null }
    }
    return { sessions: await this.views(kept), next }
  }

  async get (clientId: string): Promise<SessionView | null> {
    const record = await this.parts.store.record(clientId)
    if (record === null) return null
    return (await this.views([record]))[0] ?? null
  }

  /** Disconnects its client wherever it is, then deletes the session; whether there was one. */
  async delete (clientId: string): Promise<{ deleted: boolean, disconnected: string[], unreachable: Unreachable[] }> {
    const record = await this.parts.store.record(clientId)
    const { nodes, unreachable } = await this.parts.cluster.disconnectClient(clientId)
    if (record === null && nodes.length === 0) return { deleted: false, disconnected: [], unreachable }
    await this.parts.discard(clientId)
    return { deleted: true, disconnected: nodes, unreachable }
  }

  private async views (records: SessionRecord[]): Promise<SessionView[]> {
    if (records.length === 0) return []
    const ids = records.map(({ clientId }) => clientId)
    const [queued, subscriptions] = await Promise.all([
      this.parts.queueLengths(ids),
      Promise.all(ids.map((id) => storedSubscriptions(this.parts.persistence, id)))
    ])
    return records.map((record, i) => ({
      clientId: record.clientId,
      user: userOf(record.owner),
      online: record.online,
      node: record.node,
      expiresAt: record.expiresAt === null ? null : new Date(record.expiresAt).toISOString(),
      subscriptions: subscriptions[i] ?? [],
      queued: queued[i] ?? 0
    }))
  }
}
