// The admin API's webhook routes: an endpoint's dead letters listed, and replayed (queued again
// with their event ids, for the receiver's dedupe). Mounted by admin.ts behind its admin check.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../broker/observability/logger.js'
import type { DeadLetter } from '../broker/webhooks/outbox.js'
import { sendJson, type Routes } from './http-server.js'
import { BodyTooLarge, isJsonBody, readBody, refuseTooLarge } from './request-body.js'

/** What the admin API needs of the webhooks (webhooks.ts). */
export interface WebhookAdmin {
  has: (endpoint: string) => boolean
  deadLetters: (endpoint: string, max: number) => Promise<DeadLetter[]>
  replay: (endpoint: string, ids: readonly string[] | null) => Promise<number>
}

type AdminHandler = (req: IncomingMessage, res: ServerResponse, url: URL, admin: string) => void
type Guard = (handler: AdminHandler) => (req: IncomingMessage, res: ServerResponse, url: URL) => void

const maxListed = 1000
const maxReplayBody = 1024 * 1024

export function addWebhookAdminRoutes (routes: Routes, prefix: string, guarded: Guard, webhooks: WebhookAdmin, audit: Logger): void {
  // /webhooks/<endpoint>/dead-letters[/replay]
  const parse = (url: URL): { endpoint: string, action: string } | null => {
    const [endpoint = '', list, action = '', ...rest] = url.pathname.slice(`${prefix}/webhooks/`.length).split('/')
    return list === 'dead-letters' && rest.length === 0 && webhooks.has(endpoint) ? { endpoint, action } : null
  }
  const failed = (res: ServerResponse) => (err: Error) => sendJson(res, 503, { error: `the webhook outbox is unavailable: ${err.message}` })

  routes.set(`GET ${prefix}/webhooks/*`, guarded((_req, res, url) => {
    const target = parse(url)
    if (target === null || target.action !== '') return sendJson(res, 404, { error: 'expected /webhooks/<configured endpoint>/dead-letters' })
    const limit = Math.min(maxListed, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100))
    webhooks.deadLetters(target.endpoint, limit).then((dead) => sendJson(res, 200, {
      endpoint: target.endpoint,
      deadLetters: dead.map((entry) => ({ id: entry.id, reason: entry.reason, queuedAt: new Date(entry.enqueuedAt).toISOString(), deadAt: new Date(entry.deadAt).toISOString(), event: JSON.parse(entry.event) as unknown }))
    }), failed(res))
  }))

  routes.set(`POST ${prefix}/webhooks/*`, guarded((req, res, url, admin) => {
    const target = parse(url)
    if (target === null || target.action !== 'replay') return sendJson(res, 404, { error: 'expected /webhooks/<configured endpoint>/dead-letters/replay' })
    readBody(req, maxReplayBody).then((bytes) => {
      // no body: every dead letter; {"ids": [...]}: those
      let ids: string[] | null = null
      if (bytes.length > 0) {
        const body: unknown = isJsonBody(req) ? JSON.parse(bytes.toString('utf8')) : null
        const given = (body as { ids?: unknown } | null)?.ids
        if (!Array.isArray(given) || !given.every((id) => typeof id === 'string')) return sendJson(res, 400, { error: 'expected no body, or application/json {"ids": ["<dead letter id>", ...]}' })
        ids = given
      }
      return webhooks.replay(target.endpoint, ids).then((replayed) => {
        audit.info({ event: 'admin.webhook-replay', admin, endpoint: target.endpoint, replayed }, 'admin replayed webhook dead letters')
        sendJson(res, 200, { endpoint: target.endpoint, replayed })
      }, failed(res))
    }).catch((err: Error) => {
      if (err instanceof BodyTooLarge) refuseTooLarge(res, err)
      else sendJson(res, 400, { error: `expected a JSON body: ${err.message}` })
    })
  }))
}
