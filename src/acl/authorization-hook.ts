// The authorization hook as a policy: what the broker asks the app backend, what it takes from
// the answer, how long an answer holds, and how a connect answer narrows a client's grants.
// Plain inputs and outputs; the HTTP call is the broker's (broker/authorization-hook/).
//
// The JWT and role ACL still bound everything: the hook is asked only about what they allow,
// and what it grants at connect (roles, topic patterns) can only narrow what they grant.
import { isValidTopicFilter } from './topic-grammar.js'
import type { ClientGrants } from './authorize.js'
import type { Identity } from './identity.js'

export type HookAction = 'connect' | 'subscribe' | 'publish'

/** The question, as the backend receives it (JSON). */
export interface HookQuestion {
  action: HookAction
  /** null for an anonymous client. */
  user: string | null
  clientId: string
  /** The topic published to, or the filter subscribed to; absent on connect. */
  topic?: string
  /** The roles the JWT and config give the client. */
  roles: readonly string[]
}

/** What the broker takes from an answer. */
export interface HookAnswer {
  allow: boolean
  /** How long the answer holds (ms); 0: asked again next time. */
  ttlMs: number
  /** connect: the roles to keep (among those the client has). */
  roles?: string[]
  /** connect: topic patterns that narrow the client's grants further. */
  acl?: { pub: string[], sub: string[] }
}

/** Decides a question: from the cache at once, or after asking the backend. */
export interface HookDecider {
  asks: (action: HookAction) => boolean
  decide: (question: HookQuestion) => HookAnswer | Promise<HookAnswer>
}

/** The topic an admin publishes a revocation on (the admin API does the same): `{"user": ..., "disconnect"?: true, "unsubscribe"?: true | [filters]}`. */
export const revocationTopic = '$authz/revoke'

export interface Revocation {
  user: string
  /** Disconnect the user's clients. */
  disconnect: boolean
  /** Unsubscribe the user's clients: from every filter (true), or from those listed. */
  unsubscribe: boolean | string[]
}

/** A revocation from its JSON, or why it is not one. */
export function parseRevocation (body: unknown): Revocation | { error: string } {
  const value = body as { user?: unknown, disconnect?: unknown, unsubscribe?: unknown } | null
  if (typeof value !== 'object' || value === null || typeof value.user !== 'string' || value.user === '') return { error: 'expected {"user": "<name>"}' }
  if (value.disconnect !== undefined && typeof value.disconnect !== 'boolean') return { error: 'expected "disconnect" to be true or false' }
  const unsubscribe = value.unsubscribe ?? false
  if (typeof unsubscribe !== 'boolean' && !(Array.isArray(unsubscribe) && unsubscribe.every((f) => typeof f === 'string' && isValidTopicFilter(f)))) {
    return { error: 'expected "unsubscribe" to be true, false or a list of topic filters' }
  }
  return { user: value.user, disconnect: value.disconnect === true, unsubscribe: unsubscribe as boolean | string[] }
}

const maxTtlS = 86_400

/**
 * The answer in a backend's JSON: `{"allow": bool, "ttl"?: seconds, "roles"?: [...], "acl"?:
 * {"pub": [...], "sub": [...]}}`; anything else is a failure (null), decided by the failure policy.
 */
export function parseHookAnswer (body: unknown, defaultTtlS: number): HookAnswer | null {
  const value = body as { allow?: unknown, ttl?: unknown, roles?: unknown, acl?: { pub?: unknown, sub?: unknown } } | null
  if (typeof value !== 'object' || value === null || typeof value.allow !== 'boolean') return null
  const ttl = value.ttl ?? defaultTtlS
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) return null
  const answer: HookAnswer = { allow: value.allow, ttlMs: Math.min(ttl, maxTtlS) * 1000 }
  const strings = (list: unknown): list is string[] => Array.isArray(list) && list.every((item) => typeof item === 'string')
  if (value.roles !== undefined) {
    if (!strings(value.roles)) return null
    answer.roles = value.roles
  }
  if (value.acl !== undefined) {
    const pub = value.acl?.pub ?? []
    const sub = value.acl?.sub ?? []
    if (!strings(pub) || !strings(sub) || ![...pub, ...sub].every(isValidTopicFilter)) return null
    answer.acl = { pub, sub }
  }
  return answer
}

/** The answer a failure (timeout, error, unreadable answer) decides: never cached. */
export function failureAnswer (onFailure: 'deny' | 'allow'): HookAnswer {
  return { allow: onFailure === 'allow', ttlMs: 0 }
}

/**
 * An identity narrowed by a connect answer: its roles to those answered (never more), its
 * token `acl` replaced by the answer's when the token had none; when both have one, the
 * caller intersects the grants of each (intersectGrants).
 */
export function narrowedIdentity (identity: Identity, answer: HookAnswer): Identity {
  const roles = answer.roles === undefined ? identity.roles : identity.roles.filter((role) => answer.roles?.includes(role))
  return { ...identity, roles, tokenAcl: answer.acl ?? identity.tokenAcl }
}

/** Grants allowing only what both allow; the limits are the first's. */
export function intersectGrants (first: ClientGrants, second: ClientGrants): ClientGrants {
  return {
    canPublish: (topic) => first.canPublish(topic) && second.canPublish(topic),
    canSubscribe: (filter) => first.canSubscribe(filter) && second.canSubscribe(filter),
    canRead: (topic) => first.canRead(topic) && second.canRead(topic),
    canShare: (shareName) => first.canShare(shareName) && second.canShare(shareName),
    limits: first.limits
  }
}

interface CachedAnswer {
  user: string
  answer: HookAnswer
  expiresAt: number
}

/**
 * Answers per (user, action, topic) until their ttl, at most `maxEntries` (the oldest go
 * first); a user's are dropped at once on revocation.
 */
export class HookAnswerCache {
  // insertion order is age order: the first key is the one evicted
  private readonly answers = new Map<string, CachedAnswer>()
  private readonly keysByUser = new Map<string, Set<string>>()

  constructor (private readonly maxEntries: number) {}

  get (user: string, action: HookAction, topic: string, now: number): HookAnswer | undefined {
    const key = cacheKey(user, action, topic)
    const entry = this.answers.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt > now) return entry.answer
    this.delete(key)
    return undefined
  }

  set (user: string, action: HookAction, topic: string, answer: HookAnswer, now: number): void {
    if (answer.ttlMs === 0) return
    const key = cacheKey(user, action, topic)
    this.delete(key)
    this.answers.set(key, { user, answer, expiresAt: now + answer.ttlMs })
    let keys = this.keysByUser.get(user)
    if (keys === undefined) this.keysByUser.set(user, keys = new Set())
    keys.add(key)
    for (const oldest of this.answers.keys()) {
      if (this.answers.size <= this.maxEntries) break
      this.delete(oldest)
    }
  }

  /** Forgets a user's answers; returns how many there were. */
  revoke (user: string): number {
    const keys = this.keysByUser.get(user)
    if (keys === undefined) return 0
    const count = keys.size
    for (const key of [...keys]) this.delete(key)
    return count
  }

  get entries (): number {
    return this.answers.size
  }

  private delete (key: string): void {
    const entry = this.answers.get(key)
    if (entry === undefined) return
    this.answers.delete(key)
    const keys = this.keysByUser.get(entry.user)
    keys?.delete(key)
    if (keys?.size === 0) this.keysByUser.delete(entry.user)
  }
}

// NUL separates: it is in no user name, action or topic [MQTT-4.7.3-2]
const cacheKey = (user: string, action: HookAction, topic: string): string => `${user}\u0000${action}\u0000${topic}`
