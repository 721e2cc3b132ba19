// The HTTP(S) server: a small router for the HTTP endpoints; WebSocket upgrades are attached
// separately (websocket.ts).
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { readTlsFiles, type TlsFiles } from '../broker/listeners/tls.js'

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>

/**
 * Routes keyed by `METHOD /path`, e.g. `GET /healthz`. A key ending in `/*` matches every
 * path under its prefix (`GET /api/v1/admin/clients/*`); the longest prefix wins.
 */
export type Routes = Map<string, RouteHandler>

function findRoute (routes: Routes, method: string, path: string): RouteHandler | undefined {
  const exact = routes.get(`${method} ${path}`)
  if (exact !== undefined) return exact
  for (let cut = path.lastIndexOf('/'); cut >= 0; cut = path.lastIndexOf('/', cut - 1)) {
    const prefixed = routes.get(`${method} ${path.slice(0, cut)}/*`)
    if (prefixed !== undefined) return prefixed
    if (cut === 0) break
  }
  return undefined
}

export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}

/** A request whose headers are not complete after this is answered 408 and closed. */
export const httpHeadersTimeoutMs = 10_000
/** A request not received whole after this is answered 408 and closed. */
export const httpRequestTimeoutMs = 30_000

export function createHttpListener (routes: Routes, tls: TlsFiles | undefined, onError: (err: Error) => void): Server {
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const route = findRoute(routes, req.method ?? 'GET', url.pathname)
    if (route === undefined) {
      const allowed = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'].filter((method) => findRoute(routes, method, url.pathname) !== undefined)
      if (allowed.length > 0) {
        res.setHeader('allow', allowed.join(', '))
        sendJson(res, 405, { error: 'method not allowed' })
      } else {
        sendJson(res, 404, { error: 'not found' })
      }
      return
    }
    Promise.resolve(route(req, res, url)).catch((err: Error) => {
      onError(err)
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' })
      else res.destroy()
    })
  }
  // Bound the time a client may take to send its headers, and its whole request (slowloris).
  // Node enforces both only when it sweeps its connections, every `connectionsCheckingInterval`
  // (30 s by default, which would let a trickling request live 30 s whatever headersTimeout
  // says): sweep every second.
  const timeouts = { headersTimeout: httpHeadersTimeoutMs, requestTimeout: httpRequestTimeoutMs, connectionsCheckingInterval: 1000 }
  return tls === undefined ? createHttpServer(timeouts, handle) : createHttpsServer({ ...readTlsFiles(tls), ...timeouts }, handle)
}
