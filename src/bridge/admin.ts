// The admin HTTP API, for tokens whose roles include `admin`. Any node answers for the whole
// cluster (src/broker/admin/: the nodes ask each other over Redis): clients, their
// subscriptions, disconnecting one, the nodes and draining one, bans; this node's view of the
// shared subscription groups; webhook dead letters and authorization hook revocations. Every call is an audit
// line; every action is also kept in the audit trail (GET /audit). A node that does not
// answer in time is listed in `unreachable` beside a partial answer.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Aedes } from 'aedes'
import type { Authenticator } from '../acl/authenticate.js'
import type { AuditTrail } from '../broker/admin/audit-trail.js'
import { banOf, banRequest } from '../broker/admin/bans.js'
import type { ClusterAdmin } from '../broker/admin/cluster-admin.js'
import { RpcError } from '../broker/admin/admin-rpc.js'
import type { RetainedAdmin } from '../broker/admin/retained-admin.js'
import type { SessionAdmin } from '../broker/admin/session-admin.js'
import type { ClientRegistry } from '../broker/client-registry.js'
import { topicFilterViolation, topicNameViolation } from '../acl/topic-grammar.js'
import type { Logger } from '../broker/observability/logger.js'
import type { GroupSummary } from '../broker/shared/shared-emitter.js'
import { adminRole } from '../acl/identity.js'
import type { Revocation } from '../acl/authorization-hook.js'
import { BadRequest, jsonBody, type Handler } from './admin-route.js'
import { addRevocationRoute } from './admin-authz.js'
import { addWebhookAdminRoutes, type WebhookAdmin } from './admin-webhooks.js'
import { authenticateRequest } from './bearer.js'
import { sendJson, type Routes } from './http-server.js'
import { BodyTooLarge, refuseTooLarge } from './request-body.js'

export { adminRole }
const prefix = '/api/v1/admin'
const maxPageSize = 1000
// offset pagination reads offset + limit entries from every node: deeper pages use `after`
const maxOffsetWindow = 10_000

export interface AdminParts {
  aedes: Aedes
  nodeId: string
  clients: ClientRegistry
  authenticator: Authenticator
  audit: Logger
  cluster: ClusterAdmin
  trail: AuditTrail
  sessions: SessionAdmin
  retained: RetainedAdmin
  /** The shared subscription groups this node knows: its members and the other nodes'. */
  sharedGroups: () => GroupSummary[]
  /** Webhook dead letters (list, replay); null when no endpoint is configured. */
  webhooks: WebhookAdmin | null
  /** Revokes a user's authorization hook answers on every node; null when the hook is off. */
  revoke: ((revocation: Revocation) => Promise<void>) | null
}

/** A percent-encoded path segment, decoded; null when it is not valid UTF-8 once decoded. */
function decodedSegment (segment: string): string | null {
  try {
    return decodeURIComponent(segment)
  } catch {
    return null
  }
}

/** `offset` and `limit` of a list, as the admin API has always read them; 400 past the offset window. */
function page (url: URL, maxWindow = maxOffsetWindow): { offset: number, limit: number } {
  const offset = Math.max(0, Number(url.searchParams.get('offset') ?? 0) || 0)
  const limit = Math.min(maxPageSize, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100))
  if (offset + limit > maxWindow) throw new BadRequest(`offset + limit over ${maxWindow}: page on with the \`after\` cursor instead`)
  return { offset, limit }
}

/** An optional query parameter; undefined when absent or empty. */
function param (url: URL, name: string): string | undefined {
  const value = url.searchParams.get(name)
  return value === null || value === '' ? undefined : value
}

/** The path segments after `base` (`/clients/a%2Fb/subscriptions` -> ['a/b', 'subscriptions']). */
function segments (url: URL, base: string): string[] {
  return url.pathname.slice(`${prefix}${base}/`.length).split('/').map((segment) => {
    const decoded = decodedSegment(segment)
    if (decoded === null) throw new BadRequest('a path segment is not valid percent-encoded UTF-8')
    return decoded
  })
}

export function addAdminRoutes (routes: Routes, parts: AdminParts): void {
  const { aedes, nodeId, clients, audit, cluster, trail, sessions, retained } = parts
  const started = Date.now()

  /** Runs `handler` for an admin (every call an audit line); answers 401/403 otherwise. */
  const route = (key: string, handler: Handler): void => {
    routes.set(key, async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
      const auth = authenticateRequest(parts.authenticator, req, url)
      if (!auth.ok) {
        audit.warn({ event: 'admin.denied', method: req.method, path: url.pathname, remote: req.socket.remoteAddress, reason: auth.error }, 'admin request refused')
        sendJson(res, 401, { error: auth.error })
        return
      }
      const admin = auth.identity.user ?? 'anonymous'
      if (!auth.identity.roles.includes(adminRole)) {
        audit.warn({ event: 'admin.denied', method: req.method, path: url.pathname, user: admin, reason: 'not an admin' }, 'admin request refused')
        sendJson(res, 403, { error: `the ${adminRole} role is required` })
        return
      }
      audit.info({ event: 'admin.request', method: req.method, path: url.pathname, admin }, 'admin request')
      try {
        const [status, body] = await handler(req, url, admin)
        sendJson(res, status, body)
      } catch (err) {
        if (err instanceof BodyTooLarge) return refuseTooLarge(res, err)
        if (err instanceof BadRequest) return sendJson(res, 400, { error: err.message })
        if (err instanceof RpcError) return sendJson(res, 503, { error: `node ${err.node}: ${err.message}` })
        throw err
      }
    })
  }

  route(`GET ${prefix}/clients`, async (_req, url) => {
    const { offset, limit } = page(url)
    const filters = { prefix: param(url, 'prefix'), user: param(url, 'user'), transport: param(url, 'transport'), node: param(url, 'node'), after: param(url, 'after') }
    const defined = Object.fromEntries(Object.entries(filters).filter(([, value]) => value !== undefined))
    const found = await cluster.listClients({ ...defined, offset, limit })
    return [200, { node: nodeId, offset, limit, ...found }]
  })

  // /clients/<id> and /clients/<id>/subscriptions
  route(`GET ${prefix}/clients/*`, async (_req, url) => {
    const [id = '', sub, ...rest] = segments(url, '/clients')
    const { client, unreachable } = rest.length > 0 || (sub !== undefined && sub !== 'subscriptions') ? { client: null, unreachable: [] } : await cluster.findClient(id)
    if (client === null) return [404, { error: `no client ${JSON.stringify(id)} connected to the cluster`, unreachable }]
    return sub === 'subscriptions' ? [200, { id, subscriptions: client.subscriptions }] : [200, { ...client, unreachable }]
  })

  route(`DELETE ${prefix}/clients/*`, async (_req, url, admin) => {
    const [id = '', ...rest] = segments(url, '/clients')
    if (rest.length > 0) return [404, { error: 'not found' }]
    const { nodes, unreachable } = await cluster.disconnectClient(id)
    if (nodes.length === 0) return [404, { error: `no client ${JSON.stringify(id)} connected to the cluster`, unreachable }]
    trail.record({ admin, event: 'admin.disconnect', target: id, detail: { clientId: id, nodes } })
    return [200, { disconnected: id, nodes, unreachable }]
  })

  route(`GET ${prefix}/stats`, () => {
    const memory = process.memoryUsage()
    return [200, {
      node: nodeId,
      uptimeS: Math.round((Date.now() - started) / 1000),
      clients: [...clients.clients(aedes)].length,
      memory: { rss: memory.rss, heapUsed: memory.heapUsed }
    }]
  })

  route(`GET ${prefix}/nodes`, async () => {
    try {
      return [200, { node: nodeId, ...await cluster.nodes() }]
    } catch (err) {
      return [503, { error: `the node list is unavailable: ${(err as Error).message}` }]
    }
  })

  // /nodes/<id>/drain: POST drains the node (as SIGTERM's drain, the process stays up), DELETE lifts it
  const drainRoute = (drain: boolean): Handler => async (_req, url, admin) => {
    const [node = '', action, ...rest] = segments(url, '/nodes')
    if (action !== 'drain' || rest.length > 0) return [404, { error: 'not found' }]
    if ((await cluster.nodeIds(node)).length === 0) return [404, { error: `no live node ${JSON.stringify(node)}` }]
    const stats = await cluster.drain(node, drain)
    trail.record({ admin, event: drain ? 'admin.drain' : 'admin.undrain', target: node })
    return [200, stats]
  }
  route(`POST ${prefix}/nodes/*`, drainRoute(true))
  route(`DELETE ${prefix}/nodes/*`, drainRoute(false))

  route(`GET ${prefix}/bans`, async () => [200, { bans: await cluster.bans() }])

  route(`POST ${prefix}/bans`, async (req, _url, admin) => {
    const parsed = banRequest.safeParse(await jsonBody(req))
    if (!parsed.success) return [400, { error: 'invalid ban', issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) }]
    const ban = banOf(parsed.data, admin)
    const { unreachable } = await cluster.ban(ban)
    trail.record({ admin, event: 'admin.ban', target: ban.id, detail: { reason: ban.reason, expiresAt: ban.expiresAt } })
    return [201, { ...ban, unreachable }]
  })

  route(`DELETE ${prefix}/bans/*`, async (_req, url, admin) => {
    const [id = '', ...rest] = segments(url, '/bans')
    if (rest.length > 0) return [404, { error: 'not found' }]
    const { lifted, unreachable } = await cluster.lift(id)
    if (!lifted) return [404, { error: `no ban ${JSON.stringify(id)}` }]
    trail.record({ admin, event: 'admin.unban', target: id })
    return [200, { lifted: id, unreachable }]
  })

  route(`GET ${prefix}/subscriptions`, async (_req, url) => {
    const { offset, limit } = page(url)
    return [200, { node: nodeId, offset, limit, ...await cluster.subscriptions(param(url, 'prefix') ?? '', offset, limit) }]
  })

  // persistent sessions, online and offline: ?state=online|offline, paged by `cursor`
  route(`GET ${prefix}/sessions`, async (_req, url) => {
    const { limit } = page(url)
    const state = param(url, 'state')
    if (state !== undefined && state !== 'online' && state !== 'offline') throw new BadRequest('state: expected "online" or "offline"')
    return [200, { limit, ...await sessions.page(param(url, 'cursor') ?? '', limit, state) }]
  })

  route(`GET ${prefix}/sessions/*`, async (_req, url) => {
    const [id = '', ...rest] = segments(url, '/sessions')
    const session = rest.length > 0 ? null : await sessions.get(id)
    return session === null ? [404, { error: `no session ${JSON.stringify(id)}` }] : [200, session]
  })

  route(`DELETE ${prefix}/sessions/*`, async (_req, url, admin) => {
    const [id = '', ...rest] = segments(url, '/sessions')
    if (rest.length > 0) return [404, { error: 'not found' }]
    const { deleted, disconnected, unreachable } = await sessions.delete(id)
    if (!deleted) return [404, { error: `no session ${JSON.stringify(id)}`, unreachable }]
    trail.record({ admin, event: 'admin.session-delete', target: id, detail: { clientId: id, disconnected } })
    return [200, { deleted: id, disconnected, unreachable }]
  })

  // retained messages: ?filter= (default #), offset pagination
  const retainedFilter = (url: URL): string => {
    const filter = param(url, 'filter') ?? '#'
    const violation = topicFilterViolation(filter)
    if (violation !== null) throw new BadRequest(`filter: ${violation}`)
    return filter
  }
  route(`GET ${prefix}/retained`, async (_req, url) => {
    const { offset, limit } = page(url)
    const filter = retainedFilter(url)
    return [200, { filter, offset, limit, ...await retained.list(filter, offset, limit) }]
  })

  route(`DELETE ${prefix}/retained`, async (_req, url, admin) => {
    if (param(url, 'filter') === undefined) throw new BadRequest('filter: expected the filter of the retained messages to delete (# for all)')
    const filter = retainedFilter(url)
    const result = await retained.deleteMatching(filter)
    trail.record({ admin, event: 'admin.retained-delete', target: filter, detail: { deleted: result.deleted } })
    return [200, { filter, ...result }]
  })

  // /retained/<topic>: the topic percent-encoded as one segment, or its levels as segments
  const retainedTopic = (url: URL): string => {
    const topic = segments(url, '/retained').join('/')
    const violation = topicNameViolation(topic)
    if (violation !== null) throw new BadRequest(`topic: ${violation}`)
    return topic
  }
  route(`GET ${prefix}/retained/*`, async (_req, url) => {
    const topic = retainedTopic(url)
    const message = await retained.read(topic)
    return message === null ? [404, { error: `no retained message on ${JSON.stringify(topic)}` }] : [200, message]
  })

  route(`DELETE ${prefix}/retained/*`, async (_req, url, admin) => {
    const topic = retainedTopic(url)
    if (!await retained.delete(topic)) return [404, { error: `no retained message on ${JSON.stringify(topic)}` }]
    trail.record({ admin, event: 'admin.retained-delete', target: topic })
    return [200, { deleted: topic }]
  })

  route(`GET ${prefix}/shared-subscriptions`, () => [200, { node: nodeId, groups: parts.sharedGroups().sort((a, b) => a.group.localeCompare(b.group)) }])

  if (parts.webhooks !== null) addWebhookAdminRoutes(route, prefix, parts.webhooks, trail)
  if (parts.revoke !== null) addRevocationRoute(route, prefix, parts.revoke, trail)

  route(`GET ${prefix}/audit`, async (_req, url) => {
    const { offset, limit } = page(url)
    return [200, { offset, limit, entries: await trail.list(offset, limit) }]
  })
}
