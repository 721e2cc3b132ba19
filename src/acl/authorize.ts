// Authorization policy: an identity and the ACL config in, a client's compiled grants out.
// Compiled once per connection, then each publish, subscribe and forward is a few matches.
//
// The model: a client may do what its roles grant (the union of their patterns); a token's
// `acl` claim can only narrow that (both must allow), and its `roles` claim can only pick
// among the roles the config gives the user.
import type { Identity } from './identity.js'
import { levelSeparator, levelsMatch, multiLevelWildcard } from './topic-grammar.js'
import { compilePattern, covers, unsafePlaceholderValue, type CompiledPattern } from './topic-pattern.js'

export interface RoleLimits {
  /** PUBLISH packets per second (token bucket, one second of burst). */
  maxPublishRate?: number | undefined
  /** Publish payload bytes per second (token bucket, one second of burst). */
  maxPublishBytesRate?: number | undefined
  maxSubscriptions?: number | undefined
  maxPayloadSize?: number | undefined
  maxQos?: 0 | 1 | 2 | undefined
  /** Concurrent connections of one user (cluster-wide with Redis); unset: limits.maxConnectionsPerUser. */
  maxConnections?: number | undefined
  /** New connections of one user per second, per node; unset: limits.maxConnectRatePerUser. */
  maxConnectRate?: number | undefined
  /** Retained messages one user may have stored (cluster-wide with Redis). */
  maxRetained?: number | undefined
  /** Payload bytes of the retained messages one user may have stored. */
  maxRetainedBytes?: number | undefined
}

/** Why a publish of `size` payload bytes at `qos` is over a role limit (a drop reason), or null. */
export function publishLimitViolation (limits: RoleLimits, qos: number, size: number): { cause: 'size' | 'qos_limit', reason: string } | null {
  if (limits.maxPayloadSize !== undefined && size > limits.maxPayloadSize) return { cause: 'size', reason: `payload over ${limits.maxPayloadSize} bytes` }
  if (limits.maxQos !== undefined && qos > limits.maxQos) return { cause: 'qos_limit', reason: `QoS over ${limits.maxQos}` }
  return null
}

export interface RoleConfig {
  pub: string[]
  sub: string[]
  /** The ShareNames of `$share/<ShareName>/<filter>` the role may join; unset: any. */
  shareNames?: string[] | undefined
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
  /** May it join shared subscription groups of this ShareName? */
  canShare: (shareName: string) => boolean
  limits: RoleLimits
}

export type GrantResult = { ok: true, grants: ClientGrants } | { ok: false, reason: string, culprit: 'user' | 'clientId' }

/** The roles an identity has: anonymous ones get `anonymous`; tokens may only narrow. */
export function resolveRoles (user: string | null, tokenRoles: readonly string[] | null, acl: AclConfig): readonly string[] {
  if (user === null) return sharedRoles(['anonymous'], acl)
  const configured = new Set([...(acl.users[user]?.roles ?? []), ...acl.defaultRoles])
  return sharedRoles(tokenRoles === null ? [...configured] : tokenRoles.filter((role) => configured.has(role)), acl)
}

// Grants that depend on the roles alone (no %u/%c in their patterns, no token `acl` claim) are
// the same for every client with those roles: compiled once and shared, so an idle connection
// does not carry its own copy. Keyed by the ACL config object, so a new config starts afresh.
type SharedGrants = GrantResult & { ok: true }
const sharedGrants = new WeakMap<AclConfig, Map<string, SharedGrants>>()
// Distinct role sets are few (tokens can only pick among configured roles); the bound keeps a
// config with many roles from growing the cache without limit.
const maxSharedGrants = 1024

// Every identity with the same list of roles (in the same order) holds one frozen array, not
// its own copy (~56 bytes per idle connection); bounded as the grants' cache is.
const rolesByList = new WeakMap<AclConfig, Map<string, readonly string[]>>()

function sharedRoles (roles: string[], acl: AclConfig): readonly string[] {
  const lists = rolesByList.get(acl) ?? new Map<string, readonly string[]>()
  rolesByList.set(acl, lists)
  const key = roles.join('\n')
  const shared = lists.get(key)
  if (shared !== undefined) return shared
  const frozen = Object.freeze(roles)
  if (lists.size < maxSharedGrants) lists.set(key, frozen)
  return frozen
}

export function compileGrants (identity: Identity, clientId: string, acl: AclConfig): GrantResult {
  // Looked up before anything is allocated: most connections (anonymous ones, tokens without an
  // `acl` claim) get grants compiled before.
  const key = identity.tokenAcl === null ? roleSetKey(identity.roles) : null
  const shared = key === null ? undefined : sharedGrants.get(acl)?.get(key)
  if (shared !== undefined) return shared

  const roles = identity.roles.map((name) => acl.roles[name]).filter((role): role is RoleConfig => role !== undefined)
  const patterns = [...roles.flatMap((r) => [...r.pub, ...r.sub]), ...(identity.tokenAcl === null ? [] : [...identity.tokenAcl.pub, ...identity.tokenAcl.sub])]
  const placeholders = (['%u', '%c'] as const).filter((placeholder) => patterns.some((p) => p.split(levelSeparator).includes(placeholder)))
  // A value substituted for a placeholder must not widen the pattern it lands in.
  for (const placeholder of placeholders) {
    const [value, culprit] = placeholder === '%u' ? [identity.user, 'user' as const] : [clientId, 'clientId' as const]
    const unsafe = unsafePlaceholderValue(value)
    if (unsafe !== null) return { ok: false, culprit, reason: `${culprit === 'user' ? 'user name' : 'client id'} ${unsafe}, so it cannot stand in for ${placeholder} in an ACL pattern` }
  }

  const values = { user: identity.user, clientId }
  const compile = (list: readonly string[]): CompiledPattern[] =>
    list.map((p) => compilePattern(p, values)).filter((p): p is CompiledPattern => p !== null)
  const result = {
    ok: true as const,
    grants: new CompiledGrants(
      compile(roles.flatMap((r) => r.pub)),
      compile(roles.flatMap((r) => r.sub)),
      identity.tokenAcl === null ? null : compile(identity.tokenAcl.pub),
      identity.tokenAcl === null ? null : compile(identity.tokenAcl.sub),
      mergeLimits(roles.map((r) => r.limits ?? {})),
      // a union, as the patterns are: one role without a list allows any ShareName
      roles.some((r) => r.shareNames === undefined) ? null : new Set(roles.flatMap((r) => r.shareNames ?? []))
    )
  }
  if (key !== null && placeholders.length === 0) {
    const cache = sharedGrants.get(acl) ?? new Map<string, SharedGrants>()
    sharedGrants.set(acl, cache)
    if (cache.size < maxSharedGrants) cache.set(key, result)
  }
  return result
}

/** One key per set of roles, whatever their order. */
function roleSetKey (roles: readonly string[]): string {
  return roles.length === 1 ? roles[0] as string : [...roles].sort().join('\n')
}

// A grant of `#` (e.g. anonymous access, or a token narrowing nothing) allows every topic not
// starting with $: the hot path skips splitting the topic into levels.
const grantsEverything = (list: CompiledPattern[] | null): boolean => list === null || list.some((p) => p.length === 1 && p[0] === multiLevelWildcard)
const anyMatches = (list: CompiledPattern[] | null, topic: string): boolean => list === null || list.some((p) => levelsMatch(p, topic))
const anyCovers = (list: CompiledPattern[] | null, filter: string): boolean => list === null || list.some((p) => covers(p, filter))
const isSysTopic = (topic: string): boolean => topic.charCodeAt(0) === 36 /* $ */

/** Role patterns (a union) narrowed by the token's `acl` claim when it has one (null: no claim). */
class CompiledGrants implements ClientGrants {
  private readonly publishAll: boolean
  private readonly readAll: boolean

  constructor (
    private readonly rolePub: CompiledPattern[],
    private readonly roleSub: CompiledPattern[],
    private readonly tokenPub: CompiledPattern[] | null,
    private readonly tokenSub: CompiledPattern[] | null,
    readonly limits: RoleLimits,
    private readonly shareNames: ReadonlySet<string> | null
  ) {
    this.publishAll = grantsEverything(rolePub) && grantsEverything(tokenPub)
    this.readAll = grantsEverything(roleSub) && grantsEverything(tokenSub)
  }

  canPublish (topic: string): boolean {
    return (this.publishAll && !isSysTopic(topic)) || (anyMatches(this.rolePub, topic) && anyMatches(this.tokenPub, topic))
  }

  canSubscribe (filter: string): boolean {
    return anyCovers(this.roleSub, filter) && anyCovers(this.tokenSub, filter)
  }

  canShare (shareName: string): boolean {
    return this.shareNames === null || this.shareNames.has(shareName)
  }

  canRead (topic: string): boolean {
    return (this.readAll && !isSysTopic(topic)) || (anyMatches(this.roleSub, topic) && anyMatches(this.tokenSub, topic))
  }
}

/** Per key, the most generous value across the roles; a role that leaves a key unset is unlimited in it. */
function mergeLimits (limits: RoleLimits[]): RoleLimits {
  const out: RoleLimits = {}
  for (const key of ['maxPublishRate', 'maxPublishBytesRate', 'maxSubscriptions', 'maxPayloadSize', 'maxQos', 'maxConnections', 'maxConnectRate', 'maxRetained', 'maxRetainedBytes'] as const) {
    const values = limits.map((l) => l[key]).filter((v): v is number => v !== undefined)
    if (values.length === limits.length && values.length > 0) out[key] = Math.max(...values) as never
  }
  return out
}
