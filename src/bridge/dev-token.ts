// POST /api/v1/dev/token mints a token for whoever asks, signed with the broker's own key, so
// that demo pages can show per-user permissions. Development only: registered only when
// http.devTokens is true (404 otherwise). Tokens are never logged.
import { z } from 'zod'
import { signToken, type JwtConfig } from '../acl/jwt.js'
import { isPlainLevel } from '../acl/topic-grammar.js'
import type { Logger } from '../broker/observability/logger.js'
import { sendJson, type Routes } from './http-server.js'
import { BodyTooLarge, isJsonBody, readBody, refuseTooLarge } from './request-body.js'

const maxBodyBytes = 16 * 1024
const topicFilter = z.string().min(1).max(1024)

const tokenRequest = z.object({
  // A user name fit for %u in ACL patterns (docs/auth.md).
  user: z.string().min(1).max(128).refine(isPlainLevel, 'expected a user name without "/", "+", "#" or NUL'),
  pub: z.array(topicFilter).max(64).optional(),
  sub: z.array(topicFilter).max(64).optional(),
  roles: z.array(z.string().min(1).max(64)).max(16).optional(),
  ttl: z.number().int().min(1).max(86_400).default(3600)
}).strict()

export interface DevTokenOptions {
  jwt: JwtConfig | undefined
  env: Record<string, string | undefined>
  logger: Logger
}

export function addDevTokenRoute (routes: Routes, { jwt, env, logger }: DevTokenOptions): void {
  const sign = (request: z.infer<typeof tokenRequest>): string => signToken(jwt as JwtConfig, env, {
    user: request.user,
    ttlS: request.ttl,
    ...(request.pub === undefined ? {} : { pub: request.pub }),
    ...(request.sub === undefined ? {} : { sub: request.sub }),
    ...(request.roles === undefined ? {} : { roles: request.roles })
  })
  try {
    if (jwt === undefined) throw new Error('no auth.jwt configuration')
    sign({ user: 'startup-check', ttl: 1 })
  } catch (err) {
    logger.warn({ event: 'dev-token.unavailable', reason: (err as Error).message }, 'http.devTokens is on but no signing key is configured: POST /api/v1/dev/token is off')
    return
  }
  logger.warn({ event: 'dev-token.enabled' }, 'http.devTokens is on: anyone who can reach the HTTP port can mint tokens (development only)')

  routes.set('POST /api/v1/dev/token', async (req, res) => {
    if (!isJsonBody(req)) {
      sendJson(res, 415, { error: 'expected content-type: application/json' })
      return
    }
    let json: unknown
    try {
      json = JSON.parse((await readBody(req, maxBodyBytes)).toString('utf8'))
    } catch (err) {
      if (err instanceof BodyTooLarge) return refuseTooLarge(res, err)
      sendJson(res, 400, { error: 'body is not JSON' })
      return
    }
    const parsed = tokenRequest.safeParse(json)
    if (!parsed.success) {
      sendJson(res, 400, { error: 'invalid token request', issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) })
      return
    }
    const request = parsed.data
    const token = sign(request)
    logger.info({ event: 'dev-token.minted', user: request.user, ttlS: request.ttl, remote: req.socket.remoteAddress }, 'development token minted')
    sendJson(res, 200, { token, user: request.user, expiresAt: new Date(Date.now() + request.ttl * 1000).toISOString() })
  })
}
