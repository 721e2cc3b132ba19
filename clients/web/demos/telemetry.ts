// Telemetry dashboard: a device fleet (`realtime-broker simulate telemetry`) publishes readings
// on telemetry/devices/<id>/readings and a retained status on telemetry/devices/<id>/status.
// The page counts rates per second and charts the last minute.
import { drawLineChart } from './lib/chart.js'
import { byId, el } from './lib/dom.js'
import { isReading, pushWindow, statusOf, type Device } from './lib/fleet.js'
import { randomId, startSession } from './lib/session.js'
import { showConnection, showFailure } from './lib/status.js'

const devices = new Map<string, Device>()
const messageRates: number[] = []
const averages: number[] = []
const minimums: number[] = []
const maximums: number[] = []
const banner = byId('error')
let messagesThisSecond = 0
let bytesThisSecond = 0
let lastTick = performance.now()
let selected: string | null = null
const tiles = new Map<string, HTMLButtonElement>()

function device (id: string): Device {
  let known = devices.get(id)
  if (known === undefined) {
    known = { id, status: 'online', last: null, temperatures: [] }
    devices.set(id, known)
  }
  return known
}

function tick (): void {
  // Per elapsed time, not per tick: a late timer must not show as a spike.
  const now = performance.now()
  const seconds = Math.max(0.001, (now - lastTick) / 1000)
  lastTick = now
  const messageRate = Math.round(messagesThisSecond / seconds)
  pushWindow(messageRates, messageRate)
  const temps: number[] = []
  for (const d of devices.values()) {
    if (d.last !== null) pushWindow(d.temperatures, d.last.temperature)
    if (d.status !== 'offline' && d.last !== null) temps.push(d.last.temperature)
  }
  if (temps.length > 0) {
    pushWindow(averages, temps.reduce((a, b) => a + b, 0) / temps.length)
    pushWindow(minimums, Math.min(...temps))
    pushWindow(maximums, Math.max(...temps))
  }
  const count = (status: Device['status']): number => [...devices.values()].filter((d) => d.status === status).length
  byId('online').textContent = String(count('online'))
  byId('alerts').textContent = String(count('alert'))
  byId('offline').textContent = String(count('offline'))
  byId('message-rate').textContent = String(messageRate)
  byId('byte-rate').textContent = (bytesThisSecond / 1000 / seconds).toFixed(1)
  byId('avg-temp').textContent = averages.length > 0 ? `${(averages.at(-1) ?? 0).toFixed(1)} °C` : '–'
  byId('device-count').textContent = `(${devices.size})`
  byId('hint').hidden = devices.size > 0
  messagesThisSecond = 0
  bytesThisSecond = 0
  renderTiles()
  drawCharts()
}

function renderTiles (): void {
  const grid = byId('devices')
  const ids = [...devices.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
  // Chart a device from the start; a click picks another.
  selected ??= ids[0] ?? null
  for (const id of ids) {
    let tile = tiles.get(id)
    if (tile === undefined) {
      tile = el('button', { text: id.replace(/^\D+/, '') })
      tile.addEventListener('click', () => { selected = id; renderTiles(); drawCharts() })
      tiles.set(id, tile)
    }
    const d = devices.get(id) as Device
    tile.className = `device ${d.status}${id === selected ? ' selected' : ''}`
    tile.title = d.last === null ? `${id}: ${d.status}` : `${id}: ${d.status}, ${d.last.temperature.toFixed(1)} °C, ${d.last.humidity.toFixed(0)} % RH, battery ${d.last.battery.toFixed(0)} %`
  }
  const ordered = ids.map((id) => tiles.get(id) as HTMLButtonElement)
  if (ordered.some((tile, i) => grid.children[i] !== tile)) grid.replaceChildren(...ordered)
}

function drawCharts (): void {
  drawLineChart(byId<HTMLCanvasElement>('rate-chart'), [{ values: messageRates, color: '#2f6fed', fill: true }], { min: 0, points: 60 })
  drawLineChart(byId<HTMLCanvasElement>('temp-chart'), [
    { values: maximums, color: '#e3a0a0' },
    { values: minimums, color: '#9fc0e8' },
    { values: averages, color: '#d98a00' }
  ], { points: 60, format: (v) => v.toFixed(1) })
  const d = selected === null ? undefined : devices.get(selected)
  if (d === undefined) return
  byId('device-title').textContent = `${d.id}: temperature`
  byId('device-detail').textContent = d.last === null ? d.status : `${d.status} · ${d.last.humidity.toFixed(0)} % RH · battery ${d.last.battery.toFixed(0)} %`
  drawLineChart(byId<HTMLCanvasElement>('device-chart'), [{ values: d.temperatures, color: d.status === 'alert' ? '#d64545' : '#1f9d55', fill: true }], { points: 60, format: (v) => v.toFixed(1) })
}

async function main (): Promise<void> {
  const { client } = await startSession({ user: `dashboard-${randomId()}`, grants: { pub: [], sub: ['telemetry/devices/#'] } })
  showConnection(client, byId('connection'), banner)
  setInterval(tick, 1000)
  await client.subscribe('telemetry/devices/+/status', (status, { topic, payload }) => {
    const id = topic.split('/')[2] ?? ''
    const value = statusOf(status)
    bytesThisSecond += payload.length
    if (value === null) devices.delete(id)
    else device(id).status = value
  })
  await client.subscribe('telemetry/devices/+/readings', (reading, { payload }) => {
    messagesThisSecond += 1
    bytesThisSecond += payload.length
    if (!isReading(reading)) return
    const d = device(reading.id)
    d.last = reading
    if (d.status === 'offline') d.status = 'online'
  }, { qos: 0 })
}

main().catch(showFailure(banner, ''))
