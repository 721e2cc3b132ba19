// Live location demo: vehicles publish retained positions on fleet/vehicles/<id>/position
// (`realtime-broker simulate location`); the page draws them on a 1000 x 1000 city plane,
// gliding from one reported position to the next.
import { colorFor, byId, el } from './lib/dom.js'
import { fitCanvas } from './lib/chart.js'
import { randomId, startSession } from './lib/session.js'
import { showConnection, showFailure } from './lib/status.js'

interface Position { id: string, x: number, y: number, heading: number, speed: number, ts: number }

interface Vehicle {
  id: string
  color: string
  from: { x: number, y: number }
  to: Position
  /** When `to` arrived; the vehicle glides from `from` to `to` over one report interval. */
  arrivedAt: number
  trail: Array<{ x: number, y: number }>
}

const plane = 1000
const block = 100
const glideMs = 1000
const staleMs = 15_000
const vehicles = new Map<string, Vehicle>()
const banner = byId('error')
let updates = 0

function isPosition (value: unknown): value is Position {
  if (typeof value !== 'object' || value === null) return false
  const { id, x, y, heading, speed, ts } = value as Record<string, unknown>
  return typeof id === 'string' && [x, y, heading, speed, ts].every((n) => typeof n === 'number' && Number.isFinite(n))
}

function onPosition (topic: string, position: unknown): void {
  const id = topic.split('/')[2] ?? ''
  if (position === null) {
    vehicles.delete(id) // cleared: the vehicle left (or its connection died)
    return
  }
  if (!isPosition(position)) return
  updates += 1
  const now = performance.now()
  const known = vehicles.get(id)
  if (known === undefined) {
    vehicles.set(id, { id, color: colorFor(id), from: position, to: position, arrivedAt: now, trail: [] })
    return
  }
  known.from = displayed(known, now)
  known.trail = [...known.trail, { x: known.to.x, y: known.to.y }].slice(-12)
  known.to = position
  known.arrivedAt = now
}

function displayed (vehicle: Vehicle, now: number): { x: number, y: number } {
  const t = Math.min(1, (now - vehicle.arrivedAt) / glideMs)
  return { x: vehicle.from.x + (vehicle.to.x - vehicle.from.x) * t, y: vehicle.from.y + (vehicle.to.y - vehicle.from.y) * t }
}

function draw (): void {
  const canvas = byId<HTMLCanvasElement>('map')
  const context = fitCanvas(canvas)
  const { width, height } = canvas.getBoundingClientRect()
  // A margin keeps vehicles on the outer streets (and their labels) inside the canvas.
  const margin = 24
  const size = Math.min(width, height) - 2 * margin
  const scale = size / plane
  const ox = (width - size) / 2
  const oy = (height - size) / 2
  const px = (x: number): number => ox + x * scale
  const py = (y: number): number => oy + y * scale

  context.fillStyle = '#1b2233'
  context.fillRect(0, 0, width, height)
  // City blocks between the roads, a park and a river for orientation.
  for (let bx = 0; bx < plane; bx += block) {
    for (let by = 0; by < plane; by += block) {
      const park = bx >= 300 && bx < 500 && by >= 600 && by < 800
      context.fillStyle = park ? '#1f3d2c' : '#252e42'
      context.fillRect(px(bx + 8), py(by + 8), (block - 16) * scale, (block - 16) * scale)
    }
  }
  context.strokeStyle = '#1d4e6e'
  context.lineWidth = 10 * scale
  context.beginPath()
  context.moveTo(px(0), py(250))
  context.bezierCurveTo(px(300), py(150), px(600), py(380), px(1000), py(270))
  context.stroke()

  const now = performance.now()
  const wallNow = Date.now()
  for (const vehicle of vehicles.values()) {
    const stale = wallNow - vehicle.to.ts > staleMs
    const at = displayed(vehicle, now)
    context.globalAlpha = stale ? 0.3 : 1
    context.strokeStyle = vehicle.color
    context.lineWidth = 2
    context.globalAlpha *= 0.35
    context.beginPath()
    vehicle.trail.forEach((p, i) => (i === 0 ? context.moveTo(px(p.x), py(p.y)) : context.lineTo(px(p.x), py(p.y))))
    context.lineTo(px(at.x), py(at.y))
    context.stroke()
    context.globalAlpha = stale ? 0.3 : 1
    drawVehicle(context, px(at.x), py(at.y), vehicle.to.heading, vehicle.color, Math.max(5, 9 * scale * 1.4))
    if (vehicles.size <= 60) {
      context.fillStyle = '#d6dcea'
      context.font = '11px system-ui, sans-serif'
      context.fillText(vehicle.id, px(at.x) + 9, py(at.y) - 7)
    }
  }
  context.globalAlpha = 1
  requestAnimationFrame(draw)
}

/** An arrow pointing along the heading (degrees clockwise from north). */
function drawVehicle (context: CanvasRenderingContext2D, x: number, y: number, heading: number, color: string, size: number): void {
  context.save()
  context.translate(x, y)
  context.rotate((heading * Math.PI) / 180)
  context.beginPath()
  context.moveTo(0, -size)
  context.lineTo(size * 0.7, size * 0.8)
  context.lineTo(0, size * 0.4)
  context.lineTo(-size * 0.7, size * 0.8)
  context.closePath()
  context.fillStyle = color
  context.fill()
  context.strokeStyle = '#0b0f18'
  context.lineWidth = 1
  context.stroke()
  context.restore()
}

function renderStats (): void {
  byId('vehicle-count').textContent = String(vehicles.size)
  byId('update-rate').textContent = String(updates)
  updates = 0
  byId('hint').hidden = vehicles.size > 0
  const sorted = [...vehicles.values()].sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }))
  byId('vehicles').replaceChildren(...sorted.map((vehicle) => {
    const swatch = el('span', { className: 'swatch' })
    swatch.style.background = vehicle.color
    return el('li', {}, swatch, el('span', { text: vehicle.id }), el('span', { className: 'speed', text: `${(vehicle.to.speed * 3.6).toFixed(0)} km/h` }))
  }))
}

async function main (): Promise<void> {
  const { client } = await startSession({ user: `viewer-${randomId()}`, grants: { pub: [], sub: ['fleet/vehicles/+/position'] } })
  showConnection(client, byId('connection'), banner)
  requestAnimationFrame(draw)
  setInterval(renderStats, 1000)
  await client.subscribe('fleet/vehicles/+/position', (position, { topic }) => onPosition(topic, position), { qos: 0 })
}

main().catch(showFailure(banner, ''))
