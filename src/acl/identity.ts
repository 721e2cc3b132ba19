// Who a connection is, once authenticated: the input of every authorization decision.

export interface Identity {
  /** The user (a token's subject), or null for an anonymous client. */
  user: string | null
  /** Roles whose grants apply. */
  roles: readonly string[]
  /** When the credentials stop being valid (epoch ms), or null if they never expire. */
  expiresAt: number | null
  /** The token's `acl` claim, which narrows what the roles grant; null when absent. */
  tokenAcl: { pub: string[], sub: string[] } | null
}

/** The role of the admin API and of the broker commands clients may publish (the authorization hook's revocations). */
export const adminRole = 'admin'

/** CONNACK return codes a failed authentication maps to (MQTT 3.1.1 table 3.1). */
export const enum ConnackCode {
  BadUsernameOrPassword = 4,
  NotAuthorized = 5
}

/** Why authentication failed, in a bounded set (a metrics label). */
// client_id_owned: the client id belongs to another user's session; session_store_unavailable:
// who owns the client id could not be read; hook_denied: the authorization hook refused it;
// banned: a ban of the admin API; draining: the node is drained through the admin API.
export type AuthFailureKind = 'no_credentials' | 'bad_token' | 'username_mismatch' | 'identifier_rejected' | 'will_denied' | 'unsafe_identity' | 'connection_limit' | 'connect_rate_limit' | 'client_id_owned' | 'session_store_unavailable' | 'hook_denied' | 'banned' | 'draining'

export type AuthResult =
  | { ok: true, identity: Identity }
  | { ok: false, code: ConnackCode, kind: AuthFailureKind, reason: string }

/** What a client presents when it connects. */
export interface Credentials {
  clientId: string
  username: string | undefined
  password: Buffer | undefined
  /** A token from the WebSocket upgrade (Authorization header or `token` query parameter). */
  upgradeToken: string | undefined
}
