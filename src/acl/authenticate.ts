// Authentication policy: credentials in, identity or refusal out. No I/O.
import { resolveRoles, type AclConfig } from './authorize.js'
import { ConnackCode, type AuthResult, type Credentials } from './identity.js'
import type { JwtVerifier } from './jwt.js'

export type Authenticator = (credentials: Credentials) => AuthResult

export interface AuthenticatorOptions {
  anonymous: boolean
  /** null when JWT authentication is not configured. */
  jwt: JwtVerifier | null
  /** 'empty-or-subject': the user name may be empty or equal the token's sub; 'subject': must equal it. */
  username: 'empty-or-subject' | 'subject'
  acl: AclConfig
}

export function createAuthenticator (options: AuthenticatorOptions): Authenticator {
  // Every anonymous client has the same identity: one object, not one per connection.
  const anonymous: AuthResult = { ok: true, identity: Object.freeze({ user: null, roles: resolveRoles(null, null, options.acl), expiresAt: null, tokenAcl: null }) }
  return ({ username, password, upgradeToken }) => {
    const token = password !== undefined && password.length > 0 ? password.toString('utf8') : upgradeToken
    if (token === undefined) {
      if (options.anonymous) return anonymous
      return { ok: false, code: ConnackCode.NotAuthorized, kind: 'no_credentials', reason: options.jwt === null ? 'anonymous access is disabled and no authentication method is configured' : 'no token presented' }
    }
    if (options.jwt === null) {
      if (options.anonymous) return anonymous
      return { ok: false, code: ConnackCode.BadUsernameOrPassword, kind: 'bad_token', reason: 'credentials presented but no authentication method is configured' }
    }
    const verified = options.jwt.verify(token)
    if (!verified.ok) return { ok: false, code: ConnackCode.BadUsernameOrPassword, kind: 'bad_token', reason: `invalid token: ${verified.reason}` }
    const { claims } = verified
    const nameOk = options.username === 'subject' ? username === claims.sub : username === undefined || username === '' || username === claims.sub
    if (!nameOk) return { ok: false, code: ConnackCode.BadUsernameOrPassword, kind: 'username_mismatch', reason: 'user name does not match the token subject' }
    const roles = resolveRoles(claims.sub, claims.roles, options.acl)
    return {
      ok: true,
      identity: { user: claims.sub, roles, expiresAt: claims.exp === null ? null : claims.exp * 1000, tokenAcl: claims.acl }
    }
  }
}
