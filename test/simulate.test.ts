// The demo simulators: their models, and `realtime-broker simulate` as a user runs it.
import jwt from 'jsonwebtoken'
import t from 'tap'
import { alertTemperature, createDevice, readDevice, statusOf } from '../src/simulate/device.js'
import { blockSize, headingOf, moveVehicle, placeVehicle, planeSize } from '../src/simulate/vehicle.js'
import { collect, connectClient, startBroker, waitFor } from './helpers/broker.js'
import { runCli } from './helpers/process.js'

/** A seeded generator, so a failure can be replayed. */
function seeded (seed: number): () => number {
  let state = seed
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31
    return state / 2 ** 31
  }
}

t.test('vehicles stay on the streets and on the plane', async (t) => {
  const random = seeded(7)
  let vehicle = placeVehicle('v1', random)
  const onStreet = (v: { x: number, y: number }): boolean =>
    Math.abs(v.x / blockSize - Math.round(v.x / blockSize)) < 1e-6 || Math.abs(v.y / blockSize - Math.round(v.y / blockSize)) < 1e-6
  let travelled = 0
  for (let i = 0; i < 2000; i++) {
    const next = moveVehicle(vehicle, 1, random)
    travelled += Math.abs(next.x - vehicle.x) + Math.abs(next.y - vehicle.y)
    vehicle = next
    if (vehicle.x < 0 || vehicle.x > planeSize || vehicle.y < 0 || vehicle.y > planeSize || !onStreet(vehicle)) {
      t.fail(`off the streets at step ${i}: ${JSON.stringify(vehicle)}`)
      return
    }
    if (vehicle.speed < 3 || vehicle.speed > 17) t.fail(`speed ${vehicle.speed}`)
  }
  t.ok(travelled > 2000 * 3 * 0.5, 'it keeps moving')
  t.same([headingOf({ dx: 0, dy: -1 }), headingOf({ dx: 1, dy: 0 }), headingOf({ dx: 0, dy: 1 }), headingOf({ dx: -1, dy: 0 })], [0, 90, 180, 270])
})

t.test('devices drift around their baseline and overheat now and then', async (t) => {
  const random = seeded(11)
  let device = createDevice('d1', random)
  let alerts = 0
  for (let i = 0; i < 20_000; i++) {
    const next = readDevice(device, i * 500, random)
    device = next.device
    if (statusOf(device) === 'alert') alerts += 1
  }
  t.ok(alerts > 0, `it overheated (${alerts} readings over ${alertTemperature} °C)`)
  t.ok(alerts < 20_000 / 2, 'but not most of the time')
  t.ok(device.humidity >= 15 && device.humidity <= 95)
})

t.test('realtime-broker simulate location publishes retained positions and clears them on stop', async (t) => {
  const broker = await startBroker(t)
  const watcher = await connectClient(t, broker, 'tcp')
  const got = collect(watcher)
  await watcher.subscribeAsync('fleet/vehicles/+/position', { qos: 1 })
  const run = await runCli(['simulate', 'location', '--vehicles', '3', '--interval-ms', '200', '--duration', '2', '--url', `mqtt://127.0.0.1:${broker.addresses.mqtt.port}`])
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /3 vehicles publishing/)
  const positions = got.filter((m) => m.payload !== '').map((m) => JSON.parse(m.payload) as { id: string, x: number })
  t.same([...new Set(positions.map((p) => p.id))].sort(), ['v1', 'v2', 'v3'])
  t.ok(positions.length >= 15, `${positions.length} positions`)
  await waitFor(() => got.filter((m) => m.payload === '').length === 3, 'the three positions cleared')
})

t.test('realtime-broker simulate telemetry publishes readings and a retained status', async (t) => {
  const broker = await startBroker(t)
  const run = await runCli(['simulate', 'telemetry', '--devices', '4', '--rate', '5', '--duration', '2', '--url', `mqtt://127.0.0.1:${broker.addresses.mqtt.port}`])
  t.equal(run.code, 0, run.stderr)
  const watcher = await connectClient(t, broker, 'tcp')
  const got = collect(watcher)
  await watcher.subscribeAsync('telemetry/devices/+/status', { qos: 1 })
  await waitFor(() => got.length === 4, 'four retained statuses')
  t.same(got.map((m) => (JSON.parse(m.payload) as { status: string }).status), ['offline', 'offline', 'offline', 'offline'], 'stopped devices say offline')
  t.match(run.stdout, /stopped after \d+ messages/)
})

t.test('simulate refuses bad arguments with a usage message', async (t) => {
  const kind = await runCli(['simulate', 'boats'])
  t.equal(kind.code, 2)
  t.match(kind.stderr, /expected "location" or "telemetry"/)
  const count = await runCli(['simulate', 'location', '--vehicles', '0'])
  t.equal(count.code, 2)
  t.match(count.stderr, /--vehicles expects a whole number from 1 to 10000/)
})

t.test('simulate against a broker that refuses its clients says why and exits non-zero', async (t) => {
  const secret = 'simulate-secret-0123456789abcdef'
  const acl = { roles: { device: { pub: ['telemetry/#', 'fleet/#'], sub: [] } }, defaultRoles: ['device'] }
  const broker = await startBroker(t, { auth: { anonymous: false, jwt: { secret } }, acl })
  const url = `mqtt://127.0.0.1:${broker.addresses.mqtt.port}`
  const started = Date.now()
  const noToken = await runCli(['simulate', 'location', '--vehicles', '3', '--interval-ms', '200', '--duration', '30', '--url', url])
  t.equal(noToken.code, 1, 'no client could connect: a failure')
  t.match(noToken.stderr, /none of the 3 clients could connect .*: Connection refused: (Not authorized|Bad username or password) \(CONNACK return code [45]\)/)
  t.ok(Date.now() - started < 15_000, 'it stops once every client was refused, not after --duration')
  const forged = await runCli(['simulate', 'telemetry', '--devices', '2', '--duration', '30', '--url', url, '--token', jwt.sign({ sub: 'x' }, 'another-secret-0123456789abcdef', { expiresIn: 60 })])
  t.equal(forged.code, 1)
  t.match(forged.stderr, /Bad username or password \(CONNACK return code 4\)/)
  const valid = await runCli(['simulate', 'telemetry', '--devices', '2', '--duration', '1', '--url', url, '--token', jwt.sign({ sub: 'sim' }, secret, { expiresIn: 60 })])
  t.equal(valid.code, 0, `a valid token still works: ${valid.stdout}${valid.stderr}`)
  const nobody = await runCli(['simulate', 'location', '--vehicles', '1', '--duration', '1', '--url', 'mqtt://127.0.0.1:1'])
  t.equal(nobody.code, 1, 'no broker at all')
  t.match(nobody.stderr, /could connect to mqtt:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/)
})
