// The HTTP(S) server: a small router for the HTTP endpoints; WebSocket upgrades are attached
// separately (websocket.ts).
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { readTlsFiles, type TlsFiles } from '../broker/listeners/tls.js'
import type { Logger } from '../broker/observability/logger.js'

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

/**
 * The path and query of a request, or null when its target is not a path: an origin-form
 * target starts with one "/" (RFC 9112 3.2.1). A target starting with "//" would be read by
 * WHATWG URL parsing as a host (`//x:99999/` throws, `//x/healthz` reaches /healthz), so it is
 * refused like any other target that is no path.
 */
export function requestTarget (req: IncomingMessage): URL | null {
  const target = req.url ?? ''
  if (!target.startsWith('/') || target.startsWith('//')) return null
  try {
    return new URL(target, 'http://localhost')
  } catch {
    return null
  }
}

const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH']
// Preflights are cached this long by browsers (Chrome caps it at 2 hours).
const corsMaxAgeS = 600

function allowedMethods (routes: Routes, path: string): string[] {
  return methods.filter((method) => findRoute(routes, method, path) !== undefined)
}

/** Answers a CORS preflight: an OPTIONS with Access-Control-Request-Method, from a page of another origin. */
function answerPreflight (res: ServerResponse, originAllowed: boolean, allowed: string[]): void {
  if (!originAllowed) return sendJson(res, 403, { error: 'this origin is not allowed (http.corsOrigins)' })
  if (allowed.length === 0) return sendJson(res, 404, { error: 'not found' })
  res.writeHead(204, {
    'access-control-allow-methods': allowed.join(', '),
    'access-control-allow-headers': 'authorization, content-type',
    'access-control-max-age': String(corsMaxAgeS)
  })
  res.end()
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

export interface HttpListenerOptions {
  tls: TlsFiles | undefined
  logger: Logger
  /** Origins whose pages may call these endpoints (CORS); empty: same-origin only. */
  corsOrigins: readonly string[]
}

export function createHttpListener (routes: Routes, { tls, logger, corsOrigins }: HttpListenerOptions): Server {
  const allowedOrigins = new Set(corsOrigins)
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = requestTarget(req)
    if (url === null) {
      // Not the target itself: it may carry a token.
      logger.info({ event: 'http.bad-request', remote: req.socket.remoteAddress, reason: 'the request target is not a path' }, 'HTTP request refused')
      res.setHeader('connection', 'close')
      sendJson(res, 400, { error: 'the request target is not a path' })
      return
    }
    // CORS: tokens travel in headers, never cookies, so an allowed origin needs no credentials mode.
    const { origin } = req.headers
    const corsAllowed = origin !== undefined && allowedOrigins.has(origin)
    if (allowedOrigins.size > 0) res.setHeader('vary', 'origin')
    if (corsAllowed) res.setHeader('access-control-allow-origin', origin)
    if (req.method === 'OPTIONS' && origin !== undefined && req.headers['access-control-request-method'] !== undefined) {
      answerPreflight(res, corsAllowed, allowedMethods(routes, url.pathname))
      return
    }
    const route = findRoute(routes, req.method ?? 'GET', url.pathname)
    if (route === undefined) {
      const allowed = allowedMethods(routes, url.pathname)
      if (allowed.length > 0) {
        res.setHeader('allow', allowed.join(', '))
        sendJson(res, 405, { error: 'method not allowed' })
      } else {
        sendJson(res, 404, { error: 'not found' })
      }
      return
    }
    // The executor runs the route at once, and turns a synchronous throw into a rejection too.
    new Promise<void>((resolve) => resolve(route(req, res, url))).catch((err: unknown) => {
      logger.error({ err, event: 'http.handler-failed', method: req.method, path: url.pathname }, 'HTTP handler failed')
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
