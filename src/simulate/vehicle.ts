// How a simulated vehicle moves: along a grid of streets every 100 m on a 1000 m x 1000 m
// plane, turning at random at crossings, never leaving the plane. Pure: time and chance are inputs.

export const planeSize = 1000
export const blockSize = 100

export interface Vehicle {
  id: string
  x: number
  y: number
  /** Unit direction along a street: exactly one of dx, dy is non-zero. y grows southwards. */
  dx: number
  dy: number
  /** m/s */
  speed: number
}

const directions = [{ dx: 1, dy: 0 }, { dx: -1, dy: 0 }, { dx: 0, dy: 1 }, { dx: 0, dy: -1 }]

export function placeVehicle (id: string, random: () => number): Vehicle {
  const crossings = planeSize / blockSize
  const x = Math.floor(random() * (crossings + 1)) * blockSize
  const y = Math.floor(random() * (crossings + 1)) * blockSize
  const { dx, dy } = pickDirection(x, y, null, random)
  return { id, x, y, dx, dy, speed: 6 + random() * 10 }
}

/** Moves `seconds` along the streets; the speed drifts between 3 and 17 m/s. */
export function moveVehicle (vehicle: Vehicle, seconds: number, random: () => number): Vehicle {
  let { x, y, dx, dy } = vehicle
  const speed = Math.min(17, Math.max(3, vehicle.speed + (random() - 0.5) * 2))
  let left = speed * seconds
  while (left > 1e-9) {
    const toCrossing = distanceToNextCrossing(dx !== 0 ? x : y, dx !== 0 ? dx : dy)
    const step = Math.min(left, toCrossing)
    x += dx * step
    y += dy * step
    left -= step
    if (step === toCrossing) {
      x = Math.round(x)
      y = Math.round(y);
      ({ dx, dy } = pickDirection(x, y, { dx, dy }, random))
    }
  }
  return { ...vehicle, x, y, dx, dy, speed }
}

/** Degrees clockwise from north (up on the map). */
export function headingOf ({ dx, dy }: Pick<Vehicle, 'dx' | 'dy'>): number {
  return (Math.round((Math.atan2(dx, -dy) * 180) / Math.PI) + 360) % 360
}

function distanceToNextCrossing (position: number, direction: number): number {
  const next = direction > 0 ? Math.floor(position / blockSize + 1e-9) * blockSize + blockSize : Math.ceil(position / blockSize - 1e-9) * blockSize - blockSize
  return Math.abs(next - position)
}

/** A direction that stays on the plane, turning back only at a dead end. */
function pickDirection (x: number, y: number, current: { dx: number, dy: number } | null, random: () => number): { dx: number, dy: number } {
  const inside = directions.filter(({ dx, dy }) => x + dx * blockSize >= 0 && x + dx * blockSize <= planeSize && y + dy * blockSize >= 0 && y + dy * blockSize <= planeSize)
  const forward = inside.filter(({ dx, dy }) => current === null || dx !== -current.dx || dy !== -current.dy)
  const options = forward.length > 0 ? forward : inside
  // Keep going straight more often than turning, as traffic does.
  const straight = current === null ? undefined : options.find(({ dx, dy }) => dx === current.dx && dy === current.dy)
  if (straight !== undefined && random() < 0.5) return straight
  return options[Math.floor(random() * options.length)] ?? { dx: 1, dy: 0 }
}
