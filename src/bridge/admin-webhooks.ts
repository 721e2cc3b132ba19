// The admin API's webhook routes: an endpoint's dead letters listed, and replayed (queued again
// with their event ids, for the receiver's dedupe). Mounted by admin.ts behind its admin check.
import type { AuditTrail } from '../broker/admin/audit-trail.js'
import type { DeadLetter } from '../broker/webhooks/outbox.js'
import { BadRequest, parsedJson, type AdminRoute } from './admin-route.js'
import { isJsonBody, readBody } from './request-body.js'

/** What the admin API needs of the webhooks (webhooks.ts). */
export interface WebhookAdmin {
  has: (endpoint: string) => boolean
  deadLetters: (endpoint: string, max: number) => Promise<DeadLetter[]>
  replay: (endpoint: string, ids: readonly string[] | null) => Promise<number>
}

const maxListed = 1000
const maxReplayBody = 1024 * 1024

export function addWebhookAdminRoutes (route: AdminRoute, prefix: string, webhooks: WebhookAdmin, trail: AuditTrail): void {
  // /webhooks/<endpoint>/dead-letters[/replay]
  const parse = (url: URL): { endpoint: string, action: string } | null => {
    const [endpoint = '', list, action = '', ...rest] = url.pathname.slice(`${prefix}/webhooks/`.length).split('/')
    return list === 'dead-letters' && rest.length === 0 && webhooks.has(endpoint) ? { endpoint, action } : null
  }
  const unavailable = (err: unknown): [number, unknown] => [503, { error: `the webhook outbox is unavailable: ${(err as Error).message}` }]

  route(`GET ${prefix}/webhooks/*`, async (_req, url) => {
    const target = parse(url)
    if (target === null || target.action !== '') return [404, { error: 'expected /webhooks/<configured endpoint>/dead-letters' }]
    const limit = Math.min(maxListed, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100))
    try {
      const dead = await webhooks.deadLetters(target.endpoint, limit)
      return [200, {
        endpoint: target.endpoint,
        deadLetters: dead.map((entry) => ({ id: entry.id, reason: entry.reason, queuedAt: new Date(entry.enqueuedAt).toISOString(), deadAt: new Date(entry.deadAt).toISOString(), event: JSON.parse(entry.event) as unknown }))
      }]
    } catch (err) {
      return unavailable(err)
    }
  })

  route(`POST ${prefix}/webhooks/*`, async (req, url, admin) => {
    const target = parse(url)
    if (target === null || target.action !== 'replay') return [404, { error: 'expected /webhooks/<configured endpoint>/dead-letters/replay' }]
    // no body: every dead letter; {"ids": [...]}: those
    let ids: string[] | null = null
    const bytes = await readBody(req, maxReplayBody)
    if (bytes.length > 0) {
      const given = (isJsonBody(req) ? parsedJson(bytes) as { ids?: unknown } | null : null)?.ids
      if (!Array.isArray(given) || !given.every((id) => typeof id === 'string')) throw new BadRequest('expected no body, or application/json {"ids": ["<dead letter id>", ...]}')
      ids = given
    }
    try {
      const replayed = await webhooks.replay(target.endpoint, ids)
      trail.record({ admin, event: 'admin.webhook-replay', target: target.endpoint, detail: { replayed } })
      return [200, { endpoint: target.endpoint, replayed }]
    } catch (err) {
      return unavailable(err)
    }
  })
}
