// Who is online. Reads the broker's retained `$presence/<user>` records when the broker
// publishes them (and this client may read them); otherwise the entries that connections with
// `announcePresence` keep under `presence/<user>/<clientId>`. Once any broker record arrives,
// the broker is the source for every user.
import type { RealtimeClient, Unsubscribe } from './client.js'
import { RealtimeError } from './errors.js'
import { PresenceRoster, type PresenceState } from './presence-roster.js'
import { brokerPresencePrefix, fallbackPresencePrefix, isTopicLevel } from './presence-topics.js'

export type { PresenceState }

export interface WatchPresenceOptions {
  /** Watch only these users; default: everyone this client may read. */
  users?: string[]
}

/** Calls `onChange` with everyone's presence whenever it changes. Resolves with the way to stop. */
export async function watchPresence (client: RealtimeClient, onChange: (users: PresenceState[]) => void, options: WatchPresenceOptions = {}): Promise<Unsubscribe> {
  const roster = new PresenceRoster()
  const names = options.users ?? ['+']
  for (const name of names) if (name !== '+' && !isTopicLevel(name)) throw new RealtimeError('subscription-refused', `user "${name}" cannot be a topic level`)
  const changed = (): void => onChange(roster.all())

  const stops: Unsubscribe[] = []
  let refused = 0
  const tryWatch = async (filter: string, apply: (topic: string, data: unknown) => void): Promise<void> => {
    try {
      stops.push(await client.subscribe(filter, (data, { topic }) => { apply(topic, data); changed() }))
    } catch (err) {
      // Either source may be unavailable to this client; with neither there is nothing to show.
      if (!(err instanceof RealtimeError) || err.code !== 'subscription-refused') throw err
      refused += 1
    }
  }
  for (const name of names) {
    await tryWatch(`${brokerPresencePrefix}/${name}`, (topic, data) => roster.applyBrokerRecord(topic.split('/')[1] ?? '', data, Date.now()))
    await tryWatch(`${fallbackPresencePrefix}/${name}/+`, (topic, data) => {
      const [, user = '', clientId = ''] = topic.split('/')
      roster.applyEntry(user, clientId, data, Date.now())
    })
  }
  if (refused === names.length * 2) throw new RealtimeError('subscription-refused', 'presence: neither $presence nor presence/ topics may be read by this client')

  // After a reconnect the retained records arrive again; what does not was removed meanwhile.
  let sweep: ReturnType<typeof setTimeout> | undefined
  const offState = client.on('state', ({ state }) => {
    if (state !== 'online') return
    const reconnectedAt = Date.now()
    clearTimeout(sweep)
    sweep = setTimeout(() => { roster.forgetOlderThan(reconnectedAt); changed() }, 2000)
  })
  changed()
  return async () => {
    offState()
    clearTimeout(sweep)
    await Promise.all(stops.map((stop) => stop()))
  }
}
