// The CLI as a user runs it: a real process, real ports, real mosquitto clients and MQTT.js.
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { connect } from 'mqtt'
import t from 'tap'
import { closeClient, collect, waitFor } from './helpers/broker.js'
import { diesWithTest } from './helpers/children.js'
import { cliPath, runCli, spawnBroker } from './helpers/process.js'
import type { Teardown } from './helpers/loopback.js'

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

/** `realtime-broker start` with stdout and stderr kept apart; resolves once it listens. */
async function startPiped (t: Teardown, closeStdoutAfterFirstLine = false): Promise<{ child: ReturnType<typeof spawn>, stdout: () => string, stderr: () => string, mqttPort: number, exited: Promise<number | null> }> {
  const child = diesWithTest(spawn(process.execPath, [cliPath, 'start'], {
    env: { ...process.env, MQTT_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'pipe']
  }))
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    // the reader goes away, as `| head -1` does
    if (closeStdoutAfterFirstLine && stdout.includes('\n')) child.stdout.destroy()
  })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  await waitFor(() => /HTTP \(health\) listening/.test(stderr) || child.exitCode !== null, 'the listening lines on stderr', 15_000)
  const mqttPort = Number(/MQTT over TCP listening on mqtt:\/\/[^\s]*:(\d+)/.exec(stderr)?.[1])
  return { child, stdout: () => stdout, stderr: () => stderr, mqttPort, exited }
}

t.test('stdout carries JSON log lines only; the human start-up lines, demo URL included, go to stderr', async (t) => {
  const broker = await startPiped(t)
  // the line after the listeners': a pipe may hand it over in a chunk of its own
  await waitFor(() => /Demos at/.test(broker.stderr()), 'the demo line', 5000).catch(() => {})
  t.match(broker.stderr(), /realtime-broker: Demos at http:\/\/127\.0\.0\.1:\d+\//, 'the demo pages are announced')
  const client = connect(`mqtt://127.0.0.1:${broker.mqttPort}`, { reconnectPeriod: 0 })
  await new Promise((resolve) => client.once('connect', resolve))
  await closeClient(client, false)
  broker.child.kill('SIGTERM')
  t.equal(await broker.exited, 0)
  const lines = broker.stdout().split('\n').filter((line) => line !== '')
  t.ok(lines.length > 3, 'the broker logged')
  for (const line of lines) t.doesNotThrow(() => JSON.parse(line), `a JSON line: ${line.slice(0, 80)}`)
  t.ok(lines.some((line) => (JSON.parse(line) as { event?: string }).event === 'listener.up'), 'the listeners are in the JSON log too')
})

t.test('a stdout closed after the first line (`| head -1`) neither crashes nor hangs the broker', async (t) => {
  const started = await startPiped(t, true)
  t.equal(started.child.exitCode, null, 'still running after its start-up lines')
  // debug logging: every connection writes lines to the closed pipe
  const client = connect(`mqtt://127.0.0.1:${started.mqttPort}`, { reconnectPeriod: 0 })
  t.teardown(() => closeClient(client))
  await new Promise((resolve) => client.once('connect', resolve))
  await client.subscribeAsync('after/close', { qos: 1 })
  const got = collect(client)
  await client.publishAsync('after/close', 'still serving', { qos: 1 })
  await waitFor(() => got.length === 1, 'the message through the broker')
  const timedOut = new Promise<string>((resolve) => setTimeout(() => resolve('still running after 15 s'), 15_000).unref())
  started.child.kill('SIGTERM')
  t.equal(await Promise.race([started.exited, timedOut]), 0)
})
