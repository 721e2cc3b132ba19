// Serves the browser SDK (/sdk/realtime.js), the demo pages (/) and the operators' console
// (/console) built into clients/web/dist by `npm run build`. Each file is read once at start-up and becomes a route
// of its own, so a request path never reaches the file system: no traversal is possible.
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join, relative, sep } from 'node:path'
import { gzipSync } from 'node:zlib'
import type { Logger } from '../broker/observability/logger.js'
import { packageRoot } from '../broker/process/package-root.js'
import type { Routes } from './http-server.js'

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png'
}

// The pages load only their own scripts and styles and talk only to this origin (ws included).
// MQTT.js runs its keepalive timer in a blob: worker, which background tabs do not throttle.
const pagePolicy = "default-src 'self'; connect-src 'self'; worker-src 'self' blob:; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

interface StaticFile {
  body: Buffer
  gzipped: Buffer | null
  contentType: string
  etag: string
}

/** clients/web/dist of this package, whether running from src/ (tsx) or dist/src/ (built). */
export function webRoot (): string {
  return join(packageRoot(), 'clients', 'web', 'dist')
}

/** Which pages to serve: the demos (http.demos), the console (http.console); the SDK and the shared style go with either. */
export interface StaticPages {
  demos: boolean
  console: boolean
}

const isConsoleFile = (urlPath: string): boolean => /^\/(demos\/)?console\./.test(urlPath)
const isSharedFile = (urlPath: string): boolean => urlPath.startsWith('/sdk/') || urlPath === '/style.css' || urlPath === '/favicon.svg'

function served (urlPath: string, pages: StaticPages): boolean {
  if (isSharedFile(urlPath)) return true
  return isConsoleFile(urlPath) ? pages.console : pages.demos
}

export function addStaticRoutes (routes: Routes, logger: Logger, root: string = webRoot(), pages: StaticPages = { demos: true, console: true }): void {
  if (!existsSync(join(root, 'sdk', 'realtime.js'))) {
    logger.warn({ event: 'static.missing', root }, 'demo pages and /sdk/realtime.js are not built: run npm run build')
    routes.set('GET /', (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
      res.end('The demo pages are not built: run `npm run build` and restart the broker.\n')
    })
    return
  }
  for (const path of listFiles(root)) {
    const type = contentTypes[extname(path)]
    // Declarations (types/) are for npm users, not for pages.
    if (type === undefined || path.startsWith(`types${sep}`)) continue
    const file = loadFile(join(root, path), type)
    const urlPath = `/${path.split(sep).join('/')}`
    if (!served(urlPath, pages)) continue
    for (const alias of routePaths(urlPath)) {
      routes.set(`GET ${alias}`, (req, res) => serve(req, res, file))
      routes.set(`HEAD ${alias}`, (req, res) => serve(req, res, file))
    }
  }
}

/** `/index.html` is also `/`, and `/chat.html` also `/chat`. */
function routePaths (urlPath: string): string[] {
  if (urlPath === '/index.html') return ['/', urlPath]
  if (urlPath.endsWith('.html')) return [urlPath, urlPath.slice(0, -'.html'.length)]
  return [urlPath]
}

function listFiles (root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
}

function loadFile (path: string, contentType: string): StaticFile {
  const body = readFileSync(path)
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
  // Compressed once here rather than per request; small files are not worth it.
  return { body, gzipped: body.length > 1024 ? gzipSync(body) : null, contentType, etag }
}

function serve (req: IncomingMessage, res: ServerResponse, file: StaticFile): void {
  const headers: Record<string, string> = {
    'content-type': file.contentType,
    etag: file.etag,
    // Not fingerprinted: revalidate every time, answered with 304 while unchanged.
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    // origin: the CORS header depends on it (http.corsOrigins)
    vary: 'accept-encoding, origin'
  }
  if (file.contentType.startsWith('text/html')) headers['content-security-policy'] = pagePolicy
  if (req.headers['if-none-match'] === file.etag) {
    res.writeHead(304, headers)
    res.end()
    return
  }
  const gzip = file.gzipped !== null && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))
  const body = gzip && file.gzipped !== null ? file.gzipped : file.body
  if (gzip) headers['content-encoding'] = 'gzip'
  headers['content-length'] = String(body.length)
  res.writeHead(200, headers)
  res.end(req.method === 'HEAD' ? undefined : body)
}
