// The HTTP server: health endpoints, WebSocket upgrade rules, unknown routes.
import { request, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import t from 'tap'
import { createHttpListener, sendJson, type Routes } from '../src/bridge/http-server.js'
import { addStaticRoutes } from '../src/bridge/static.js'
import { resolveConfig } from '../src/broker/config/config.js'
import { capturingLogger, startBroker } from './helpers/broker.js'
import type { Teardown } from './helpers/loopback.js'

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
  const server = createHttpListener(routes, { tls: undefined, logger, corsOrigins: [] })
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

/** One request with the given headers (fetch would not send Origin as a browser does). */
function send (port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number, headers: IncomingHttpHeaders, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => { text += chunk.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function listenOn (t: Teardown, routes: Routes, corsOrigins: string[]): Promise<number> {
  const server = createHttpListener(routes, { tls: undefined, logger: capturingLogger().logger, corsOrigins })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return (server.address() as AddressInfo).port
}

t.test('the browser SDK can be loaded by pages of the configured origins only (CORS)', async (t) => {
  const root = t.testdir({ sdk: { 'realtime.js': 'export const connect = () => {}\n' } })
  const routes: Routes = new Map()
  addStaticRoutes(routes, capturingLogger().logger, root)
  const port = await listenOn(t, routes, ['https://app.example'])
  const allowed = await send(port, 'GET', '/sdk/realtime.js', { origin: 'https://app.example' })
  t.equal(allowed.status, 200)
  t.equal(allowed.headers['access-control-allow-origin'], 'https://app.example', 'a configured origin may import the module')
  t.match(allowed.headers.vary, /origin/, 'caches keep one answer per origin')
  t.notOk(allowed.headers['access-control-allow-credentials'], 'no credentials mode: tokens travel in headers')
  const other = await send(port, 'GET', '/sdk/realtime.js', { origin: 'https://evil.example' })
  t.equal(other.status, 200)
  t.equal(other.headers['access-control-allow-origin'], undefined, 'another origin is not allowed')
  const sameOriginOnly = await listenOn(t, routes, [])
  t.equal((await send(sameOriginOnly, 'GET', '/sdk/realtime.js', { origin: 'https://app.example' })).headers['access-control-allow-origin'], undefined, 'by default, same-origin only')
})

t.test('HTTP publish and SSE answer preflights and carry CORS headers for configured origins', async (t) => {
  const broker = await startBroker(t, { http: { port: 0, corsOrigins: ['https://app.example', 'http://localhost:3000'] } })
  const port = broker.addresses.http.port
  const preflight = (origin: string, path: string, method = 'POST'): ReturnType<typeof send> =>
    send(port, 'OPTIONS', path, { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization, content-type' })
  const ok = await preflight('http://localhost:3000', '/api/v1/publish')
  t.equal(ok.status, 204)
  t.equal(ok.headers['access-control-allow-origin'], 'http://localhost:3000')
  t.match(ok.headers['access-control-allow-methods'], /\bPOST\b/)
  t.match(ok.headers['access-control-allow-headers'], /authorization/)
  t.match(ok.headers['access-control-allow-headers'], /content-type/)
  t.ok(Number(ok.headers['access-control-max-age']) > 0, 'browsers cache the preflight')
  const refused = await preflight('https://evil.example', '/api/v1/publish')
  t.equal(refused.status, 403, 'an origin not configured')
  t.equal(refused.headers['access-control-allow-origin'], undefined)
  t.equal((await preflight('https://app.example', '/nowhere')).status, 404)
  t.equal((await preflight('https://app.example', '/api/v1/events', 'GET')).status, 204, 'SSE with an Authorization header needs a preflight too')

  const published = await send(port, 'POST', '/api/v1/publish', { origin: 'https://app.example', 'content-type': 'application/json' }, JSON.stringify({ topic: 'cors/x', payload: 1 }))
  t.equal(published.status, 200)
  t.equal(published.headers['access-control-allow-origin'], 'https://app.example', 'the page may read the answer')
  const events = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/v1/events?topic=cors/%23', headers: { origin: 'https://app.example' } }, (res) => { resolve(res.headers); req.destroy() })
    req.on('error', reject)
    req.end()
  })
  t.equal(events['access-control-allow-origin'], 'https://app.example', 'an EventSource of that origin may read the stream')

  const defaults = await startBroker(t)
  const plain = await send(defaults.addresses.http.port, 'OPTIONS', '/api/v1/publish', { origin: 'https://app.example', 'access-control-request-method': 'POST' })
  t.equal(plain.status, 403, 'no origin is allowed by default')
  t.equal((await send(defaults.addresses.http.port, 'GET', '/healthz', { origin: 'https://app.example' })).headers['access-control-allow-origin'], undefined)
})

t.test('http.corsOrigins and the SSE caps are validated at start, naming the key', async (t) => {
  t.throws(() => resolveConfig({ http: { corsOrigins: ['https://app.example/'] } }), /http\.corsOrigins\.0.*expected an origin/)
  t.throws(() => resolveConfig({ http: { corsOrigins: ['app.example'] } }), /http\.corsOrigins\.0/)
  t.throws(() => resolveConfig({ http: { sse: { maxStreamsPerUser: 0 } } }), /http\.sse\.maxStreamsPerUser/)
  t.throws(() => resolveConfig({ http: { sse: { maxStreams: 1.5 } } }), /http\.sse\.maxStreams/)
  const defaults = resolveConfig({})
  t.same(defaults.http.corsOrigins, [], 'same-origin only by default')
  t.match(defaults.http.sse, { maxStreamsPerUser: 8, maxStreams: 1000 })
})
