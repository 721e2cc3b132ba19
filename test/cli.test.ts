// The CLI as a user runs it: a real process, real ports, real mosquitto clients and MQTT.js.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { connect } from 'mqtt'
import t from 'tap'
import { closeClient, collect, waitFor } from './helpers/broker.js'
import { runCli, spawnBroker } from './helpers/process.js'

const run = promisify(execFile)

t.test('npm start equivalent: mosquitto_pub over TCP reaches MQTT.js over WebSocket, and back', async (t) => {
  const broker = await spawnBroker(t)
  t.match(broker.output(), /MQTT over WebSocket \(ws\) listening on ws:\/\/127\.0\.0\.1:\d+\/mqtt/)
  t.match(broker.output(), /anonymous clients are accepted/, 'the default config warns about anonymous access')

  const ws = connect(`ws://127.0.0.1:${broker.httpPort}/mqtt`, { reconnectPeriod: 0 })
  t.teardown(() => closeClient(ws))
  await new Promise((resolve) => ws.once('connect', resolve))
  await ws.subscribeAsync('quickstart/#', { qos: 1 })
  const got = collect(ws)
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.mqttPort), '-t', 'quickstart/tcp', '-m', 'from mosquitto_pub', '-q', '1'])
  await waitFor(() => got.length === 1, 'the message from mosquitto_pub')
  t.equal(got[0]?.payload, 'from mosquitto_pub')

  const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(broker.mqttPort), '-t', 'reverse/#', '-C', '1', '-W', '10', '-q', '1'])
  // give mosquitto_sub time to subscribe, then publish from the browser-side client
  await new Promise((resolve) => setTimeout(resolve, 300))
  await ws.publishAsync('reverse/ws', 'from websocket', { qos: 1 })
  const { stdout } = await sub
  t.equal(stdout.trim(), 'from websocket')
})

t.test('GET /healthz answers 200 and /readyz reports listeners', async (t) => {
  const broker = await spawnBroker(t)
  const health = await fetch(`http://127.0.0.1:${broker.httpPort}/healthz`)
  t.equal(health.status, 200)
  t.same(await health.json(), { status: 'ok' })
  const ready = await fetch(`http://127.0.0.1:${broker.httpPort}/readyz`)
  t.equal(ready.status, 200)
  t.match(await ready.json(), { status: 'ready', checks: { listeners: true } })
})

t.test('SIGTERM disconnects clients and exits 0 in bounded time', async (t) => {
  const broker = await spawnBroker(t)
  const client = connect(`mqtt://127.0.0.1:${broker.mqttPort}`, { reconnectPeriod: 0 })
  t.teardown(() => closeClient(client))
  await new Promise((resolve) => client.once('connect', resolve))
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  const started = Date.now()
  broker.child.kill('SIGTERM')
  t.equal(await broker.exited, 0)
  await closed
  t.ok(Date.now() - started < 5000, 'exited within the bound')
  t.match(broker.output(), /broker closed/)
})

t.test('SIGTERM still exits 0 when nothing reads stdout any more (a log shipper died, `| head`)', async (t) => {
  const broker = await spawnBroker(t)
  // no reader left: every log line after this fails with EPIPE, the one flushed at exit too,
  // which sonic-boom retried forever (patches/sonic-boom+4.2.1.patch)
  broker.child.stdout?.destroy()
  const timedOut = new Promise<string>((resolve) => setTimeout(() => resolve('still running after 15 s'), 15_000).unref())
  broker.child.kill('SIGTERM')
  t.equal(await Promise.race([broker.exited, timedOut]), 0)
})

t.test('flags override environment variables', async (t) => {
  const broker = await spawnBroker(t, ['--mqtt-port', '0', '--host', '127.0.0.1'], { MQTT_PORT: '1' })
  t.ok(broker.mqttPort > 1, 'the flag --mqtt-port 0 won over MQTT_PORT=1')
})

t.test('a bad config exits with code 2 naming the key', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'http:\n  port: "eighty"\n' })
  const result = await runCli(['start', '--config', `${dir}/bad.yaml`])
  t.equal(result.code, 2)
  t.match(result.stderr, /http\.port \(from config file .*\): expected a port number/)

  const env = await runCli(['start'], { MQTT_PORT: '-5' })
  t.equal(env.code, 2)
  t.match(env.stderr, /mqtt\.port \(from environment variable MQTT_PORT\)/)

  const flag = await runCli(['start', '--bogus'])
  t.equal(flag.code, 2)
  t.match(flag.stderr, /Unknown option '--bogus'/)
})
