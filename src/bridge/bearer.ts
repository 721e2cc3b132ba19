// Authentication of HTTP requests with the same policy as MQTT: a JWT as a Bearer token
// (or, where a client cannot set headers, a `token` query parameter).
import type { IncomingMessage } from 'node:http'
import type { Authenticator } from '../acl/authenticate.js'
import type { Identity } from '../acl/identity.js'

export type BearerResult = { ok: true, identity: Identity } | { ok: false, status: 401, error: string }

/** `url` is null when the request target is no path (see requestTarget): no query to read. */
export function bearerToken (req: IncomingMessage, url: URL | null, allowQuery: boolean): string | undefined {
  const header = req.headers.authorization
  if (header !== undefined && /^Bearer /i.test(header)) return header.slice(7).trim()
  return allowQuery ? url?.searchParams.get('token') ?? undefined : undefined
}

export function authenticateRequest (authenticator: Authenticator, req: IncomingMessage, url: URL, allowQuery = false): BearerResult {
  const token = bearerToken(req, url, allowQuery)
  const result = authenticator({
    clientId: 'http',
    username: undefined,
    password: token === undefined ? undefined : Buffer.from(token, 'utf8'),
    upgradeToken: undefined
  })
  if (!result.ok) return { ok: false, status: 401, error: result.kind === 'no_credentials' ? 'a Bearer token is required' : result.kind === 'banned' ? result.reason : 'invalid token' }
  return { ok: true, identity: result.identity }
}
