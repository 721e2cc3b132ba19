// The admin audit trail: every admin action (and every refused admin call) is a structured
// audit log line, and the latest `maxEntries` are kept where the admin API reads them back:
// a Redis list shared by the nodes (LPUSH + LTRIM in one transaction), or memory on one node.
// Never a token, a password or a payload.
import type { RedisClient } from '../storage/redis-clients.js'
import type { RedisKeys } from '../storage/redis-keys.js'
import type { Logger } from '../observability/logger.js'

export interface AuditEntry {
  at: string
  node: string
  /** Who: the admin's user, or what a refused caller was. */
  admin: string
  event: string
  /** What it was about (a client id, a ban, a topic, a node, a path). */
  target?: string
  detail?: Record<string, unknown>
}

export class AuditTrail {
  private readonly memory: AuditEntry[] = []
  // on the admin concern's slot, with its other keys
  private readonly key: string

  constructor (private readonly parts: { redis: RedisClient | null, keys: RedisKeys, audit: Logger, nodeId: string, maxEntries: number }) {
    this.key = parts.keys.shared('admin', 'audit')
  }

  /** Logs the action and appends it to the trail (the log line stands if Redis is away). */
  record (entry: Omit<AuditEntry, 'at' | 'node'>): void {
    const full: AuditEntry = { at: new Date().toISOString(), node: this.parts.nodeId, ...entry }
    this.parts.audit.info({ ...entry.detail, event: entry.event, admin: entry.admin, target: entry.target }, 'admin action')
    const { redis, maxEntries } = this.parts
    if (redis === null) {
      this.memory.unshift(full)
      if (this.memory.length > maxEntries) this.memory.length = maxEntries
      return
    }
    redis.multi().lpush(this.key, JSON.stringify(full)).ltrim(this.key, 0, maxEntries - 1).exec().catch((err: Error) => {
      this.parts.audit.warn({ event: 'admin.audit-unstored', reason: err.message }, 'an admin action is logged but not in the audit trail')
    })
  }

  /** The latest entries, newest first, from `offset`. */
  async list (offset: number, limit: number): Promise<AuditEntry[]> {
    if (this.parts.redis === null) return this.memory.slice(offset, offset + limit)
    const texts = await this.parts.redis.lrange(this.key, offset, offset + limit - 1)
    return texts.map((text) => JSON.parse(text) as AuditEntry)
  }
}
