// The HTTP server: health endpoints, WebSocket upgrade rules, unknown routes.
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import t from 'tap'
import { createHttpListener, sendJson, type Routes } from '../src/bridge/http-server.js'
import { capturingLogger, startBroker } from './helpers/broker.js'

t.test('health endpoints answer JSON', async (t) => {
  const broker = await startBroker(t)
  const base = `http://127.0.0.1:${broker.addresses.http.port}`
  const health = await fetch(`${base}/healthz`)
  t.equal(health.status, 200)
  t.match(health.headers.get('content-type'), /application\/json/)
  t.same(await health.json(), { status: 'ok' })
  t.equal((await fetch(`${base}/readyz`)).status, 200)
  t.equal((await fetch(`${base}/nowhere`)).status, 404)
  t.equal((await fetch(`${base}/healthz`, { method: 'POST' })).status, 405)
})

t.test('/readyz turns 503 while the broker shuts down', async (t) => {
  const broker = await startBroker(t, { shutdown: { timeoutMs: 2000 } })
  const port = broker.addresses.http.port
  // hold a keep-alive request open so the server is still reachable during close()
  const agentResponse = await fetch(`http://127.0.0.1:${port}/readyz`)
  t.equal(agentResponse.status, 200)
  const closing = broker.close()
  const status = await new Promise<number>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz' }, (res) => resolve(res.statusCode ?? 0))
    req.on('error', () => resolve(-1))
    req.end()
  })
  await closing
  t.ok(status === 503 || status === -1, 'not ready (or no longer accepting) once shutdown began')
})

t.test('WebSocket upgrades need the mqtt subprotocol and the configured path', async (t) => {
  const broker = await startBroker(t)
  const port = broker.addresses.http.port
  const refused = (url: string, protocols?: string[]): Promise<number> => new Promise((resolve) => {
    const ws = new WebSocket(url, protocols)
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate() })
    ws.on('open', () => { resolve(101); ws.close() })
    ws.on('error', () => {})
  })
  t.equal(await refused(`ws://127.0.0.1:${port}/mqtt`), 400, 'no subprotocol')
  t.equal(await refused(`ws://127.0.0.1:${port}/mqtt`, ['chat']), 400, 'another subprotocol')
  t.equal(await refused(`ws://127.0.0.1:${port}/other`, ['mqtt']), 400, 'another path')
  const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'])
  const protocol = await new Promise<string>((resolve, reject) => { ws.on('open', () => resolve(ws.protocol)); ws.on('error', reject) })
  t.equal(protocol, 'mqtt', 'the server selects "mqtt" [MQTT-6.0.0-4]')
  ws.close()
})

t.test('a WebSocket text frame closes that connection', async (t) => {
  const broker = await startBroker(t)
  const ws = new WebSocket(`ws://127.0.0.1:${broker.addresses.http.port}/mqtt`, ['mqtt'])
  await new Promise((resolve) => ws.on('open', resolve))
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  ws.send('not binary')
  t.equal(await closed, 1003)
})

t.test('a route that throws synchronously is answered 500 and logged; the server lives on', async (t) => {
  const { logger, lines } = capturingLogger()
  const routes: Routes = new Map()
  routes.set('GET /throws', () => { throw new Error('a bug in a route') })
  routes.set('GET /rejects', async () => { throw new Error('a bug after an await') })
  routes.set('GET /ok', (_req, res) => sendJson(res, 200, { ok: true }))
  const server = createHttpListener(routes, { tls: undefined, logger })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const thrown = await fetch(`${base}/throws`)
  t.equal(thrown.status, 500)
  t.same(await thrown.json(), { error: 'internal error' }, 'the error is not echoed')
  t.equal((await fetch(`${base}/rejects`)).status, 500)
  t.equal((await fetch(`${base}/ok`)).status, 200, 'the server still answers')
  t.same(lines.filter((l) => l.event === 'http.handler-failed').map((l) => [l.path, (l.err as { message: string }).message]), [['/throws', 'a bug in a route'], ['/rejects', 'a bug after an await']])
})
