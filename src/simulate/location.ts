// `realtime-broker simulate location`: vehicles publishing their position, retained, on
// fleet/vehicles/<id>/position. A vehicle's last will clears its position, so a map never
// shows a vehicle whose connection died.
import { headingOf, moveVehicle, placeVehicle, type Vehicle } from './vehicle.js'
import { fleetIds, startFleet } from './fleet.js'
import type { Simulation } from './simulation.js'

export interface LocationOptions {
  url: string
  token?: string
  vehicles: number
  intervalMs: number
  random?: () => number
}

export const positionTopic = (id: string): string => `fleet/vehicles/${id}/position`

export function simulateLocation (options: LocationOptions): Simulation {
  const random = options.random ?? Math.random
  const ids = fleetIds('v', options.vehicles)
  const vehicles = new Map<string, Vehicle>(ids.map((id) => [id, placeVehicle(id, random)]))
  const report = (vehicle: Vehicle): string => JSON.stringify({
    id: vehicle.id,
    x: Math.round(vehicle.x * 10) / 10,
    y: Math.round(vehicle.y * 10) / 10,
    heading: headingOf(vehicle),
    speed: Math.round(vehicle.speed * 10) / 10,
    ts: Date.now()
  })
  const fleet = startFleet({
    url: options.url,
    ...(options.token === undefined ? {} : { token: options.token }),
    ids,
    clientOptions: (id) => ({ will: { topic: positionTopic(id), payload: Buffer.alloc(0), qos: 1, retain: true } })
  })
  let published = 0
  const timer = setInterval(() => {
    for (const [id, vehicle] of vehicles) {
      const moved = moveVehicle(vehicle, options.intervalMs / 1000, random)
      vehicles.set(id, moved)
      if (fleet.publish(id, positionTopic(id), report(moved), { retain: true })) published += 1
    }
  }, options.intervalMs)
  return {
    describe: `${options.vehicles} vehicles publishing fleet/vehicles/<id>/position every ${options.intervalMs} ms`,
    connected: fleet.connected,
    health: fleet.health,
    total: options.vehicles,
    published: () => published,
    stop: async () => {
      clearInterval(timer)
      // Leaving on purpose: clear the retained position, as the will would have.
      await fleet.stop((id, client) => client.publishAsync(positionTopic(id), '', { qos: 1, retain: true }))
    }
  }
}
