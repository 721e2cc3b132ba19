// Bans: a client id, a user, or a source address or CIDR range refused at CONNECT on every node,
// with a reason and an optional expiry. Stored in Redis (a hash and a version counter under one
// hash tag: one Redis Cluster slot), or in memory on one node. Every node keeps the list in
// memory, so a CONNECT is checked without a round trip, and reloads it when the version moves:
// at once when the admin API tells the nodes (admin-rpc.ts), and by polling the version every
// `refreshMs` in case a node missed that. A new ban also disconnects the matching live clients.
import { BlockList, isIP } from 'node:net'
import type { RedisClient } from '../storage/redis-clients.js'
import type { RedisKeys } from '../storage/redis-keys.js'
import { z } from 'zod'

export type BanKind = 'clientId' | 'user' | 'address'

export interface Ban {
  /** `<kind>:<value>`: banning the same thing again replaces the ban. */
  id: string
  kind: BanKind
  /** A client id, a user, or an IP address or CIDR range (`10.0.0.0/8`, `2001:db8::/32`). */
  value: string
  reason: string
  by: string
  createdAt: string
  /** ISO time, or null for a ban until lifted. */
  expiresAt: string | null
}

/** What a connection is matched against. */
export interface Connecting {
  clientId: string
  user: string | null
  address: string | undefined
}

// at most a year: a longer ban is a permanent one (no expiry)
const maxBanSeconds = 365 * 86_400

export const banRequest = z.object({
  clientId: z.string().min(1).max(65_535).optional(),
  user: z.string().min(1).max(1024).optional(),
  address: z.string().refine((value) => parseRange(value) !== null, 'expected an IP address or a CIDR range such as 10.0.0.0/8').optional(),
  reason: z.string().max(500).default(''),
  /** Seconds from now; absent: until lifted. */
  durationS: z.number().int().min(1).max(maxBanSeconds).optional()
}).strict().refine((ban) => [ban.clientId, ban.user, ban.address].filter((value) => value !== undefined).length === 1, 'expected exactly one of clientId, user or address')

export type BanRequest = z.infer<typeof banRequest>

/** The ban a request makes, by `by`, now. */
export function banOf (request: BanRequest, by: string, now = Date.now()): Ban {
  const [kind, value] = request.clientId !== undefined
    ? ['clientId', request.clientId] as const
    : request.user !== undefined ? ['user', request.user] as const : ['address', normalRange(request.address as string)] as const
  return {
    id: `${kind}:${value}`,
    kind,
    value,
    reason: request.reason,
    by,
    createdAt: new Date(now).toISOString(),
    expiresAt: request.durationS === undefined ? null : new Date(now + request.durationS * 1000).toISOString()
  }
}

/** An address or CIDR range as BlockList takes it; null when it is neither. */
function parseRange (value: string): { address: string, prefix: number, family: 'ipv4' | 'ipv6' } | null {
  const [address = '', prefixText, ...rest] = value.split('/')
  const version = isIP(address)
  if (version === 0 || rest.length > 0) return null
  const bits = version === 4 ? 32 : 128
  const prefix = prefixText === undefined ? bits : Number(prefixText)
  if (!/^\d{1,3}$/.test(prefixText ?? '0') || prefix > bits) return null
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' }
}

function normalRange (value: string): string {
  const range = parseRange(value) as { address: string, prefix: number, family: string }
  const bits = range.family === 'ipv4' ? 32 : 128
  return range.prefix === bits ? range.address : `${range.address}/${range.prefix}`
}

/** A socket's address as a BlockList checks it: an IPv4-mapped IPv6 address is its IPv4 one. */
function socketAddress (address: string): { address: string, family: 'ipv4' | 'ipv6' } | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  const plain = mapped?.[1] ?? address
  const version = isIP(plain)
  return version === 0 ? null : { address: plain, family: version === 4 ? 'ipv4' : 'ipv6' }
}

/** The bans in effect, indexed for a check at CONNECT: two map lookups, and a range check only when there are address bans. */
export class BanMatcher {
  private readonly byClientId = new Map<string, Ban>()
  private readonly byUser = new Map<string, Ban>()
  private readonly addressBans: Array<{ ban: Ban, list: BlockList }> = []
  private readonly anyAddress = new BlockList()

  constructor (readonly bans: readonly Ban[]) {
    for (const ban of bans) {
      if (ban.kind === 'clientId') this.byClientId.set(ban.value, ban)
      else if (ban.kind === 'user') this.byUser.set(ban.value, ban)
      else {
        const range = parseRange(ban.value)
        if (range === null) continue
        const list = new BlockList()
        list.addSubnet(range.address, range.prefix, range.family)
        this.anyAddress.addSubnet(range.address, range.prefix, range.family)
        this.addressBans.push({ ban, list })
      }
    }
  }

  /** The ban in effect at `now` that matches the connection, if any. */
  match (connecting: Connecting, now = Date.now()): Ban | undefined {
    const live = (ban: Ban | undefined): Ban | undefined => ban !== undefined && (ban.expiresAt === null || Date.parse(ban.expiresAt) > now) ? ban : undefined
    const byId = live(this.byClientId.get(connecting.clientId))
    if (byId !== undefined) return byId
    const byUser = connecting.user === null ? undefined : live(this.byUser.get(connecting.user))
    if (byUser !== undefined) return byUser
    if (this.addressBans.length === 0 || connecting.address === undefined) return undefined
    const address = socketAddress(connecting.address)
    if (address === null || !this.anyAddress.check(address.address, address.family)) return undefined
    return this.addressBans.map(({ ban, list }) => list.check(address.address, address.family) ? live(ban) : undefined).find((ban) => ban !== undefined)
  }
}

/** Where bans are kept: shared by the nodes, with a version that moves on every change. */
export interface BanStore {
  all: () => Promise<Ban[]>
  version: () => Promise<string>
  put: (ban: Ban) => Promise<void>
  /** Whether there was such a ban. */
  remove: (id: string) => Promise<boolean>
}

export function memoryBanStore (): BanStore {
  const bans = new Map<string, Ban>()
  let version = 0
  return {
    all: async () => [...bans.values()],
    version: async () => String(version),
    put: async (ban) => {
      bans.set(ban.id, ban)
      version++
    },
    remove: async (id) => {
      const removed = bans.delete(id)
      if (removed) version++
      return removed
    }
  }
}

// The admin concern's keys share one slot, so that the MULTIs below stay on one Redis Cluster slot.
export function redisBanStore (redis: RedisClient, keys: RedisKeys): BanStore {
  const bansKey = keys.shared('admin', 'bans')
  const versionKey = keys.shared('admin', 'bans', 'version')
  const exec = async (multi: ReturnType<RedisClient['multi']>): Promise<unknown[]> => {
    const results = await multi.exec() ?? []
    for (const [err] of results) if (err !== null) throw err
    return results.map(([, value]) => value)
  }
  return {
    all: async () => Object.values(await redis.hgetall(bansKey)).map((text) => JSON.parse(text) as Ban),
    version: async () => await redis.get(versionKey) ?? '0',
    put: async (ban) => { await exec(redis.multi().hset(bansKey, ban.id, JSON.stringify(ban)).incr(versionKey)) },
    remove: async (id) => {
      const [removed] = await exec(redis.multi().hdel(bansKey, id).incr(versionKey))
      return removed === 1
    }
  }
}

export interface BansOptions {
  store: BanStore
  refreshMs: number
  /** Called with the bans new since the last load, to disconnect the live clients they match. */
  onNewBans: (matcher: BanMatcher) => void
  onError: (err: Error) => void
}

/** The bans this node enforces: the store's, kept in memory and reloaded when they change. */
export class Bans {
  private matcher = new BanMatcher([])
  private version = ''
  private loading: Promise<void> | null = null
  private timer: NodeJS.Timeout | null = null

  constructor (private readonly options: BansOptions) {}

  async start (): Promise<void> {
    await this.refresh()
    this.timer = setInterval(() => { this.refresh().catch(this.options.onError) }, this.options.refreshMs)
    this.timer.unref()
  }

  /** The ban a CONNECT meets, if any (no I/O). */
  match (connecting: Connecting): Ban | undefined {
    return this.matcher.match(connecting)
  }

  /** The bans in effect now. */
  list (): Ban[] {
    const now = Date.now()
    return this.matcher.bans.filter((ban) => ban.expiresAt === null || Date.parse(ban.expiresAt) > now)
  }

  async add (ban: Ban): Promise<void> {
    await this.options.store.put(ban)
    await this.reloadAfterChange()
  }

  async lift (id: string): Promise<boolean> {
    const removed = await this.options.store.remove(id)
    await this.reloadAfterChange()
    return removed
  }

  /** Reloads the bans if their version moved (concurrent calls share one load). */
  refresh (): Promise<void> {
    this.loading ??= this.load().finally(() => { this.loading = null })
    return this.loading
  }

  /** A load under way may have read the store before the change: one more after it. */
  private async reloadAfterChange (): Promise<void> {
    await this.loading?.catch(() => {})
    await this.refresh()
  }

  close (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  private async load (): Promise<void> {
    const { store } = this.options
    const version = await store.version()
    if (version === this.version) return
    const bans = await store.all()
    const known = new Set(this.matcher.bans.map((ban) => `${ban.id} ${ban.createdAt}`))
    this.matcher = new BanMatcher(bans)
    this.version = version
    const fresh = bans.filter((ban) => !known.has(`${ban.id} ${ban.createdAt}`))
    if (fresh.length > 0) this.options.onNewBans(new BanMatcher(fresh))
    // expired bans leave the store (whichever node sees them first; removing twice is harmless)
    const now = Date.now()
    for (const ban of bans) if (ban.expiresAt !== null && Date.parse(ban.expiresAt) <= now) await store.remove(ban.id)
  }
}
