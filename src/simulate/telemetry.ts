// `realtime-broker simulate telemetry`: a device fleet publishing readings on
// telemetry/devices/<id>/readings and a retained status (online, alert, offline) on
// telemetry/devices/<id>/status; the last will says offline. Now and then a device drops off
// the network for a while, as real ones do.
import { createDevice, readDevice, statusOf, type Device } from './device.js'
import { fleetIds, startFleet } from './fleet.js'
import type { Simulation } from './simulation.js'

export interface TelemetryOptions {
  url: string
  token?: string
  devices: number
  /** Readings per device per second. */
  rate: number
  random?: () => number
}

export const readingsTopic = (id: string): string => `telemetry/devices/${id}/readings`
export const statusTopic = (id: string): string => `telemetry/devices/${id}/status`

const offline = (id: string): string => JSON.stringify({ id, status: 'offline', ts: Date.now() })

export function simulateTelemetry (options: TelemetryOptions): Simulation {
  const random = options.random ?? Math.random
  const ids = fleetIds('d', options.devices)
  const devices = new Map<string, Device>(ids.map((id) => [id, createDevice(id, random)]))
  const lastStatus = new Map<string, string>()
  const publishStatus = (id: string, status: string): void => {
    if (fleet.publish(id, statusTopic(id), JSON.stringify({ id, status, ts: Date.now() }), { qos: 1, retain: true })) lastStatus.set(id, status)
  }
  const fleet = startFleet({
    url: options.url,
    ...(options.token === undefined ? {} : { token: options.token }),
    ids,
    clientOptions: (id) => ({ will: { topic: statusTopic(id), payload: Buffer.from(offline(id)), qos: 1, retain: true } }),
    onConnect: (id) => publishStatus(id, statusOf(devices.get(id) as Device))
  })

  let published = 0
  const periodMs = 1000 / options.rate
  const timer = setInterval(() => {
    const now = Date.now()
    for (const [id, device] of devices) {
      const next = readDevice(device, now, random)
      devices.set(id, next.device)
      if (fleet.publish(id, readingsTopic(id), JSON.stringify(next.reading))) published += 1
      const status = statusOf(next.device)
      if (lastStatus.get(id) !== status) publishStatus(id, status)
    }
  }, periodMs)

  // Each second, each device has a 1 in 2000 chance to lose its network for 10-30 s; its
  // will marks it offline meanwhile.
  const outages = setInterval(() => {
    for (const [id, client] of fleet.members) {
      if (!client.connected || random() >= 0.0005) continue
      client.stream.destroy()
      client.options.reconnectPeriod = 0
      setTimeout(() => {
        client.options.reconnectPeriod = 1000
        if (!client.disconnecting) client.reconnect()
      }, 10_000 + random() * 20_000).unref()
      lastStatus.delete(id)
    }
  }, 1000)

  return {
    describe: `${options.devices} devices publishing telemetry/devices/<id>/readings ${options.rate} times a second each`,
    connected: fleet.connected,
    health: fleet.health,
    total: options.devices,
    published: () => published,
    stop: async () => {
      clearInterval(timer)
      clearInterval(outages)
      await fleet.stop((id, client) => client.publishAsync(statusTopic(id), offline(id), { qos: 1, retain: true }))
    }
  }
}
