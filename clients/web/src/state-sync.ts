// Shared state as snapshot + changes: a retained snapshot brings a (re)connecting client up
// to date at once, and a stream of changes keeps it current. Changes received before the
// snapshot of a connection are applied again on top of it, so applyChange must be idempotent
// (e.g. keyed by id): a change the snapshot already holds then changes nothing.
import type { RealtimeClient, Unsubscribe } from './client.js'

export interface StateSyncOptions<S, C> {
  /** Retained: the whole state. */
  snapshotTopic: string
  /** Not retained: one change per message. */
  changesTopic: string
  initial: S
  applyChange: (state: S, change: C) => S
  /** How a snapshot meets the local state. Default: it replaces it. */
  applySnapshot?: (state: S, snapshot: S) => S
  onState: (state: S) => void
  /** Changes kept per connection until its snapshot arrives. Default 100. */
  maxReplay?: number
}

export interface StateSync<S, C> {
  readonly state: S
  /** Publishes a change (QoS 1); every subscriber, this one included, applies it. */
  publishChange: (change: C) => Promise<void>
  /** Publishes the snapshot (retained, QoS 1): the current state unless given. */
  publishSnapshot: (state?: S) => Promise<void>
  stop: Unsubscribe
}

export async function syncState<S, C> (client: RealtimeClient, options: StateSyncOptions<S, C>): Promise<StateSync<S, C>> {
  const { applyChange, onState } = options
  const applySnapshot = options.applySnapshot ?? ((_state: S, snapshot: S) => snapshot)
  const maxReplay = options.maxReplay ?? 100
  let state = options.initial
  let snapshotSeen = false
  let replay: C[] = []

  // A new connection: its subscriptions bring the retained snapshot again.
  const offState = client.on('state', ({ state: connection }) => {
    if (connection !== 'online') return
    snapshotSeen = false
    replay = []
  })
  const stopSnapshots = await client.subscribe<S | null>(options.snapshotTopic, (snapshot) => {
    if (snapshot === null) return // cleared
    state = applySnapshot(state, snapshot)
    if (!snapshotSeen) for (const change of replay) state = applyChange(state, change)
    snapshotSeen = true
    replay = []
    onState(state)
  })
  const stopChanges = await client.subscribe<C>(options.changesTopic, (change) => {
    state = applyChange(state, change)
    if (!snapshotSeen) {
      replay.push(change)
      if (replay.length > maxReplay) replay.shift()
    }
    onState(state)
  })

  return {
    get state () { return state },
    publishChange: (change) => client.publish(options.changesTopic, change, { qos: 1 }),
    publishSnapshot: (snapshot = state) => client.publish(options.snapshotTopic, snapshot, { qos: 1, retain: true }),
    stop: async () => {
      offState()
      await Promise.all([stopSnapshots(), stopChanges()])
    }
  }
}
