// Who is online, merged from the broker's `$presence/<user>` records and the entries that
// announcing connections keep under `presence/<user>/<clientId>`. No I/O: watchPresence feeds it.

export interface PresenceState {
  user: string
  online: boolean
  /** Open connections of the user. */
  connections: number
  /** When the user was last seen online, in ms since the epoch; null if unknown. */
  lastSeen: number | null
  source: 'broker' | 'announced'
}

interface Entry { since: number, receivedAt: number }

/** The merge of both sources, without I/O (what watchPresence feeds). */
export class PresenceRoster {
  private readonly broker = new Map<string, PresenceState & { receivedAt: number }>()
  private brokerActive = false
  private readonly entries = new Map<string, Map<string, Entry>>()
  private readonly lastSeen = new Map<string, number>()

  /** A `$presence/<user>` message; null is a cleared record. */
  applyBrokerRecord (user: string, record: unknown, now: number): void {
    this.brokerActive = true
    const parsed = parseBrokerRecord(user, record)
    if (parsed === null) this.broker.delete(user)
    else this.broker.set(user, { ...parsed, receivedAt: now })
  }

  /** A `presence/<user>/<clientId>` message; null is an entry its connection's will removed. */
  applyEntry (user: string, clientId: string, entry: unknown, now: number): void {
    const connections = this.entries.get(user) ?? new Map<string, Entry>()
    const since = (entry as { since?: unknown } | null)?.since
    if (entry !== null && (entry as { online?: unknown }).online === true) {
      connections.set(clientId, { since: typeof since === 'number' ? since : now, receivedAt: now })
      this.entries.set(user, connections)
      return
    }
    if (connections.delete(clientId) && connections.size === 0) {
      this.entries.delete(user)
      this.lastSeen.set(user, now)
    }
  }

  /** Drops what was received before `time` (stale after a reconnect: retained ones came again). */
  forgetOlderThan (time: number): void {
    for (const [user, record] of this.broker) if (record.receivedAt < time) this.broker.delete(user)
    for (const [user, connections] of this.entries) {
      for (const [clientId, entry] of connections) if (entry.receivedAt < time) connections.delete(clientId)
      if (connections.size === 0) this.entries.delete(user)
    }
  }

  get (user: string): PresenceState {
    if (this.brokerActive) {
      const record = this.broker.get(user)
      if (record === undefined) return { user, online: false, connections: 0, lastSeen: null, source: 'broker' }
      const { receivedAt: _receivedAt, ...state } = record
      return state
    }
    const connections = this.entries.get(user)?.size ?? 0
    return { user, online: connections > 0, connections, lastSeen: connections > 0 ? null : this.lastSeen.get(user) ?? null, source: 'announced' }
  }

  /** Every user either source knows, sorted by name. */
  all (): PresenceState[] {
    const users = new Set([...this.broker.keys(), ...(this.brokerActive ? [] : [...this.entries.keys(), ...this.lastSeen.keys()])])
    return [...users].sort().map((user) => this.get(user))
  }
}

function parseBrokerRecord (user: string, record: unknown): PresenceState | null {
  if (typeof record !== 'object' || record === null) return null
  const { online, connections, lastSeen } = record as Record<string, unknown>
  if (typeof online !== 'boolean') return null
  const seen = typeof lastSeen === 'number' ? lastSeen : typeof lastSeen === 'string' ? Date.parse(lastSeen) : NaN
  return {
    user,
    online,
    connections: typeof connections === 'number' ? connections : online ? 1 : 0,
    lastSeen: Number.isFinite(seen) ? seen : null,
    source: 'broker'
  }
}
