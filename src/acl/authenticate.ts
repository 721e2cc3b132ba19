// Authentication policy: credentials in, identity or refusal out. No I/O.
import { ConnackCode, type AuthResult, type Credentials } from './identity.js'

export type Authenticator = (credentials: Credentials) => AuthResult

export const anonymousRole = 'anonymous'

export interface AuthenticatorOptions {
  anonymous: boolean
}

export function createAuthenticator (options: AuthenticatorOptions): Authenticator {
  return () => options.anonymous
    ? { ok: true, identity: { user: null, roles: [anonymousRole], expiresAt: null } }
    : { ok: false, code: ConnackCode.NotAuthorized, reason: 'anonymous access is disabled and no authentication method is configured' }
}
