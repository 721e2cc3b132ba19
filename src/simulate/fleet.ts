// A fleet of simulated clients, one native MQTT connection (TCP) each, as real devices or
// phones would have. They reconnect by themselves (a broker restart), publish only while
// connected (nothing piles up in memory), and leave cleanly on stop().
import { connect, type IClientOptions, type MqttClient } from 'mqtt'

export interface FleetOptions {
  url: string
  /** A JWT for brokers that require one (sent as the password). */
  token?: string
  ids: string[]
  /** What each member's connection announces, e.g. its last will. */
  clientOptions: (id: string) => IClientOptions
  /** Runs on every (re)connect of a member, e.g. to publish its retained state. */
  onConnect?: (id: string, client: MqttClient) => void
}

/** How the members' connections went, for a report that says why none could connect. */
export interface FleetHealth {
  /** Members that got a CONNACK 0 at least once. */
  everConnected: number
  /** Members whose last attempt the broker refused by CONNACK: MQTT.js does not retry those. */
  refused: number
  /** Why the latest failed attempt failed: the CONNACK code and its meaning, or the socket error. */
  lastError: string | null
}

export interface Fleet {
  members: Map<string, MqttClient>
  connected: () => number
  health: () => FleetHealth
  /** Publishes if that member is connected now; false when it is not (the message is dropped). */
  publish: (id: string, topic: string, payload: string, options?: { qos?: 0 | 1, retain?: boolean }) => boolean
  /** `beforeLeave` publishes each member's goodbye; then every connection closes with DISCONNECT. */
  stop: (beforeLeave?: (id: string, client: MqttClient) => Promise<unknown>) => Promise<void>
}

export function startFleet (options: FleetOptions): Fleet {
  // One suffix per process, so two simulators never take over each other's sessions.
  const run = Math.random().toString(36).slice(2, 8)
  const members = new Map<string, MqttClient>()
  const everConnected = new Set<string>()
  const refused = new Set<string>()
  let lastError: string | null = null
  for (const id of options.ids) {
    const client = connect(options.url, {
      clientId: `sim-${id}-${run}`,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 5000,
      ...(options.token === undefined ? {} : { username: '', password: options.token }),
      ...options.clientOptions(id)
    })
    // Socket errors are retried by the reconnect; a CONNACK refusal is not (MQTT.js). The CLI
    // reports both.
    client.on('error', (err: Error & { code?: unknown }) => {
      // MQTT.js gives a refusal the CONNACK return code as a number, a socket error a string code.
      if (typeof err.code === 'number') {
        refused.add(id)
        lastError = `${err.message} (CONNACK return code ${err.code})`
      } else {
        lastError = err.message
      }
    })
    client.on('connect', () => {
      everConnected.add(id)
      refused.delete(id)
      options.onConnect?.(id, client)
    })
    members.set(id, client)
  }
  return {
    members,
    connected: () => [...members.values()].filter((c) => c.connected).length,
    health: () => ({ everConnected: everConnected.size, refused: refused.size, lastError }),
    publish: (id, topic, payload, publishOptions = {}) => {
      const client = members.get(id)
      if (client?.connected !== true) return false
      client.publish(topic, payload, { qos: publishOptions.qos ?? 0, retain: publishOptions.retain ?? false })
      return true
    },
    stop: async (beforeLeave) => {
      await Promise.all([...members].map(async ([id, client]) => {
        if (client.connected && beforeLeave !== undefined) await bounded(beforeLeave(id, client), 2000)
        await new Promise<void>((resolve) => client.end(!client.connected, {}, () => resolve()))
      }))
    }
  }
}

/** `count` ids like v01..v50: a prefix and a zero-padded number, so they sort as numbers. */
export function fleetIds (prefix: string, count: number): string[] {
  const width = String(count).length
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i + 1).padStart(width, '0')}`)
}

function bounded (work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    work.finally(() => { clearTimeout(timer); resolve() }).catch(() => {})
  })
}
