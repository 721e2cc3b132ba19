// Authorization policy: an identity and the ACL config in, a client's compiled grants out.
// Compiled once per connection, then each publish, subscribe and forward is a few matches.
//
// The model: a client may do what its roles grant (the union of their patterns); a token's
// `acl` claim can only narrow that (both must allow), and its `roles` claim can only pick
// among the roles the config gives the user.
import type { Identity } from './identity.js'
import { compilePattern, covers, matches, unsafePlaceholderValue, type CompiledPattern } from './topic-pattern.js'

export interface RoleLimits {
  /** PUBLISH packets per second (token bucket, one second of burst). */
  maxPublishRate?: number | undefined
  /** Publish payload bytes per second (token bucket, one second of burst). */
  maxPublishBytesRate?: number | undefined
  maxSubscriptions?: number | undefined
  maxPayloadSize?: number | undefined
  maxQos?: 0 | 1 | 2 | undefined
}

export interface RoleConfig {
  pub: string[]
  sub: string[]
  limits?: RoleLimits | undefined
}

export interface AclConfig {
  roles: Record<string, RoleConfig>
  users: Record<string, { roles: string[] }>
  /** Roles every authenticated (non-anonymous) user has. */
  defaultRoles: string[]
}

export interface ClientGrants {
  canPublish: (topic: string) => boolean
  /** Is every topic the filter can match readable? */
  canSubscribe: (filter: string) => boolean
  canRead: (topic: string) => boolean
  limits: RoleLimits
}

export type GrantResult = { ok: true, grants: ClientGrants } | { ok: false, reason: string, culprit: 'user' | 'clientId' }

/** The roles an identity has: anonymous ones get `anonymous`; tokens may only narrow. */
export function resolveRoles (user: string | null, tokenRoles: readonly string[] | null, acl: AclConfig): string[] {
  if (user === null) return ['anonymous']
  const configured = new Set([...(acl.users[user]?.roles ?? []), ...acl.defaultRoles])
  return tokenRoles === null ? [...configured] : tokenRoles.filter((role) => configured.has(role))
}

export function compileGrants (identity: Identity, clientId: string, acl: AclConfig): GrantResult {
  const roles = identity.roles.map((name) => acl.roles[name]).filter((role): role is RoleConfig => role !== undefined)
  const patterns = [...roles.flatMap((r) => [...r.pub, ...r.sub]), ...(identity.tokenAcl === null ? [] : [...identity.tokenAcl.pub, ...identity.tokenAcl.sub])]
  // A value substituted for a placeholder must not widen the pattern it lands in.
  for (const [placeholder, value, culprit] of [['%u', identity.user, 'user'], ['%c', clientId, 'clientId']] as const) {
    if (!patterns.some((p) => p.split('/').includes(placeholder))) continue
    const unsafe = unsafePlaceholderValue(value)
    if (unsafe !== null) return { ok: false, culprit, reason: `${culprit === 'user' ? 'user name' : 'client id'} ${unsafe}, so it cannot stand in for ${placeholder} in an ACL pattern` }
  }
  const values = { user: identity.user, clientId }
  const compile = (list: readonly string[]): CompiledPattern[] =>
    list.map((p) => compilePattern(p, values)).filter((p): p is CompiledPattern => p !== null)
  const rolePub = compile(roles.flatMap((r) => r.pub))
  const roleSub = compile(roles.flatMap((r) => r.sub))
  const tokenPub = identity.tokenAcl === null ? null : compile(identity.tokenAcl.pub)
  const tokenSub = identity.tokenAcl === null ? null : compile(identity.tokenAcl.sub)

  const anyMatches = (list: CompiledPattern[] | null, topic: string): boolean => list === null || list.some((p) => matches(p, topic))
  const anyCovers = (list: CompiledPattern[] | null, filter: string): boolean => list === null || list.some((p) => covers(p, filter))
  // The hot path: a grant of `#` (e.g. anonymous access, or a token narrowing nothing) allows
  // every topic not starting with $ without splitting it into levels.
  const everything = (list: CompiledPattern[] | null): boolean => list === null || list.some((p) => p.length === 1 && p[0] === '#')
  const publishAll = everything(rolePub) && everything(tokenPub)
  const readAll = everything(roleSub) && everything(tokenSub)
  return {
    ok: true,
    grants: {
      canPublish: (topic) => (publishAll && topic.charCodeAt(0) !== 36 /* $ */) || (rolePub.some((p) => matches(p, topic)) && anyMatches(tokenPub, topic)),
      canSubscribe: (filter) => roleSub.some((p) => covers(p, filter)) && anyCovers(tokenSub, filter),
      canRead: (topic) => (readAll && topic.charCodeAt(0) !== 36 /* $ */) || (roleSub.some((p) => matches(p, topic)) && anyMatches(tokenSub, topic)),
      limits: mergeLimits(roles.map((r) => r.limits ?? {}))
    }
  }
}

/** Per key, the most generous value across the roles; a role that leaves a key unset is unlimited in it. */
function mergeLimits (limits: RoleLimits[]): RoleLimits {
  const out: RoleLimits = {}
  for (const key of ['maxPublishRate', 'maxPublishBytesRate', 'maxSubscriptions', 'maxPayloadSize', 'maxQos'] as const) {
    const values = limits.map((l) => l[key]).filter((v): v is number => v !== undefined)
    if (values.length === limits.length && values.length > 0) out[key] = Math.max(...values) as never
  }
  return out
}
