// The admin HTTP API, for tokens whose roles include `admin`: this node's clients, their
// subscriptions, disconnecting one, node stats, the live nodes of the cluster and its shared
// subscription groups. Every action is an audit line.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Aedes, Client } from 'aedes'
import type { Authenticator } from '../acl/authenticate.js'
import { adminRole } from '../acl/identity.js'
import { subscriptionsOf } from '../broker/aedes-adapter.js'
import type { ClientRegistry, ClientState } from '../broker/client-registry.js'
import type { LiveNode } from '../broker/cluster/node-registry.js'
import type { Logger } from '../broker/observability/logger.js'
import type { GroupSummary } from '../broker/shared/shared-emitter.js'
import { authenticateRequest } from './bearer.js'
import { addWebhookAdminRoutes, type WebhookAdmin } from './admin-webhooks.js'
import { addRevocationRoute } from './admin-authz.js'
import type { Revocation } from '../acl/authorization-hook.js'
import { sendJson, type Routes } from './http-server.js'

export { adminRole }
const prefix = '/api/v1/admin'
const maxPageSize = 1000

export interface AdminParts {
  aedes: Aedes
  nodeId: string
  clients: ClientRegistry
  authenticator: Authenticator
  audit: Logger
  /** The nodes of the cluster that beat within the node timeout (the node registry). */
  liveNodes: () => Promise<LiveNode[]>
  /** The shared subscription groups this node knows: its members and the other nodes'. */
  sharedGroups: () => GroupSummary[]
  /** Webhook dead letters (list, replay); null when no endpoint is configured. */
  webhooks?: WebhookAdmin | null
  /** Revokes a user's authorization hook answers on every node; null when the hook is off. */
  revoke?: ((revocation: Revocation) => Promise<void>) | null
}

function describe (client: Client, state: ClientState, nodeId: string): Record<string, unknown> {
  return {
    id: client.id,
    user: state.identity.user,
    node: nodeId,
    transport: state.connection.transport,
    address: state.connection.remote ?? null,
    connectedSince: new Date(state.connectedSince).toISOString(),
    subscriptions: subscriptionsOf(client).length
  }
}

/** A percent-encoded path segment, decoded; null when it is not valid UTF-8 once decoded. */
function decodedSegment (segment: string): string | null {
  try {
    return decodeURIComponent(segment)
  } catch {
    return null
  }
}

export function addAdminRoutes (routes: Routes, parts: AdminParts): void {
  const { aedes, nodeId, clients, audit } = parts
  const started = Date.now()

  /** Runs `handler` for an admin; answers 401/403 otherwise. */
  const guarded = (handler: (req: IncomingMessage, res: ServerResponse, url: URL, admin: string) => void) =>
    (req: IncomingMessage, res: ServerResponse, url: URL): void => {
      const auth = authenticateRequest(parts.authenticator, req, url)
      if (!auth.ok) {
        audit.warn({ event: 'admin.denied', path: url.pathname, reason: auth.error }, 'admin request refused')
        sendJson(res, 401, { error: auth.error })
        return
      }
      if (!auth.identity.roles.includes(adminRole)) {
        audit.warn({ event: 'admin.denied', path: url.pathname, user: auth.identity.user, reason: 'not an admin' }, 'admin request refused')
        sendJson(res, 403, { error: `the ${adminRole} role is required` })
        return
      }
      handler(req, res, url, auth.identity.user ?? 'anonymous')
    }

  const findClient = (id: string): { client: Client, state: ClientState } | undefined =>
    [...clients.clients(aedes)].find(({ client }) => client.id === id)

  routes.set(`GET ${prefix}/clients`, guarded((_req, res, url) => {
    const offset = Math.max(0, Number(url.searchParams.get('offset') ?? 0) || 0)
    const limit = Math.min(maxPageSize, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100))
    const all = [...clients.clients(aedes)].sort((a, b) => a.client.id.localeCompare(b.client.id))
    sendJson(res, 200, { node: nodeId, total: all.length, offset, limit, clients: all.slice(offset, offset + limit).map(({ client, state }) => describe(client, state, nodeId)) })
  }))

  // /clients/<id> and /clients/<id>/subscriptions
  const clientRoute = (method: 'GET' | 'DELETE') => guarded((_req, res, url, admin) => {
    const rest = url.pathname.slice(`${prefix}/clients/`.length).split('/')
    const id = decodedSegment(rest[0] ?? '')
    if (id === null) {
      sendJson(res, 400, { error: 'the client id is not valid percent-encoded UTF-8' })
      return
    }
    const sub = rest[1]
    const found = findClient(id)
    if (found === undefined || rest.length > 2 || (sub !== undefined && sub !== 'subscriptions') || (method === 'DELETE' && sub !== undefined)) {
      sendJson(res, 404, { error: `no client ${JSON.stringify(id)} on node ${nodeId}` })
      return
    }
    if (method === 'DELETE') {
      audit.info({ event: 'admin.disconnect', admin, clientId: id, user: found.state.identity.user }, 'admin disconnected a client')
      clients.disconnect(found.client, 'admin')
      sendJson(res, 200, { disconnected: id })
    } else if (sub === 'subscriptions') {
      sendJson(res, 200, { id, subscriptions: subscriptionsOf(found.client) })
    } else {
      sendJson(res, 200, { ...describe(found.client, found.state, nodeId), subscriptions: subscriptionsOf(found.client) })
    }
  })
  routes.set(`GET ${prefix}/clients/*`, clientRoute('GET'))
  routes.set(`DELETE ${prefix}/clients/*`, clientRoute('DELETE'))

  routes.set(`GET ${prefix}/stats`, guarded((_req, res) => {
    const memory = process.memoryUsage()
    sendJson(res, 200, {
      node: nodeId,
      uptimeS: Math.round((Date.now() - started) / 1000),
      clients: [...clients.clients(aedes)].length,
      memory: { rss: memory.rss, heapUsed: memory.heapUsed }
    })
  }))

  if (parts.webhooks != null) addWebhookAdminRoutes(routes, prefix, guarded, parts.webhooks, audit)
  if (parts.revoke != null) addRevocationRoute(routes, prefix, guarded, parts.revoke, audit)

  routes.set(`GET ${prefix}/nodes`, guarded((_req, res) => {
    parts.liveNodes().then((nodes) => {
      const listed = nodes.sort((a, b) => a.id.localeCompare(b.id)).map(({ id, lastBeat }) => ({ id, lastBeat: new Date(lastBeat).toISOString() }))
      sendJson(res, 200, { node: nodeId, nodes: listed })
    }, (err: Error) => sendJson(res, 503, { error: `the node list is unavailable: ${err.message}` }))
  }))

  routes.set(`GET ${prefix}/shared-subscriptions`, guarded((_req, res) => {
    const groups = parts.sharedGroups().sort((a, b) => a.group.localeCompare(b.group))
    sendJson(res, 200, { node: nodeId, groups })
  }))
}
