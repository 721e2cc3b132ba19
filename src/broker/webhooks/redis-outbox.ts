// The durable outbox of a clustered broker: per endpoint, a Redis Stream read through a
// consumer group. One node at a time holds an endpoint's lease and sends (keeping its events
// in order); a node taking the lease over first claims what the previous holder read and did
// not acknowledge (XAUTOCLAIM), so a SIGKILLed node's events are still delivered. A stream
// entry holds the events a node queued in one turn (one XADD per endpoint per turn, not per
// event; the turn's entries and their count in one script call); a counter next to the stream
// counts the events, the backlog. Acknowledged entries are deleted. The keys of an endpoint
// are its own (RedisKeys.owned, tagged by the endpoint on a Redis Cluster): each MULTI and
// script stays on one slot.
import type { RedisClient } from '../storage/redis-clients.js'
import type { RedisKeys } from '../storage/redis-keys.js'
import type { EventBytes } from './events.js'
import { AppendSignal, entriesWithin, entryEvents, eventCount, type Batch, type DeadLetter, type OutboxEntry, type WebhookOutbox } from './outbox.js'

const group = 'senders'

interface EndpointKeys {
  /** The stream of entries waiting, read through the consumer group. */
  outbox: string
  /** The number of events in `outbox`. */
  pending: string
  dead: string
  lease: string
}

// KEYS[1] lease; ARGV node id, lease ms: 1 when the node holds the lease (taken or renewed)
const leaseScript = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0`
// KEYS[1] lease; ARGV node id: gives the lease up if held
const releaseScript = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`

// KEYS[1] outbox stream; ARGV group, consumer (this node), count. New entries through the group
// (XREADGROUP >), those this node appended ('o' its id) as their id and event count only: it
// holds their events already, so 30 KB replies are not read back to the node that wrote them
const readNewScript = `
local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if not read then return {} end
local out = {}
for i, entry in ipairs(read[1][2]) do
  local fields = entry[2]
  local origin, count = nil, nil
  for f = 1, #fields, 2 do
    if fields[f] == 'o' then origin = fields[f + 1] elseif fields[f] == 'n' then count = fields[f + 1] end
  end
  if origin == ARGV[2] then out[i] = {entry[1], {'n', count}} else out[i] = entry end
end
return out`

// KEYS[1] outbox stream, KEYS[2] its event count; ARGV node id, events in all, then each
// entry's events and count: the turn's entries and the count in one atomic call (the backlog
// counter never misses an entry), one command where MULTI, XADDs, INCRBY, EXEC were four or more
const appendScript = `
local ids = {}
for i = 3, #ARGV, 2 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i], 'n', ARGV[i + 1], 'o', ARGV[1])
end
ids[#ids + 1] = redis.call('INCRBY', KEYS[2], ARGV[2])
return ids`

type StreamEntry = [id: string, fields: string[]]

/** The scripts, sent by their SHA1 (EVALSHA; ioredis loads a script Redis does not know yet). */
interface OutboxCommands {
  webhookAppend: (outbox: string, pending: string, nodeId: string, events: number, ...entries: Array<Buffer | string>) => Promise<[...ids: string[], length: number]>
  webhookLease: (lease: string, nodeId: string, leaseMs: number) => Promise<number>
  webhookReadNew: (outbox: string, group: string, consumer: string, count: number) => Promise<StreamEntry[]>
}

// entries appended by this node kept in memory for sending at most (a quarter batch each: some
// 25,000 events, ~7 MB); past that, as behind an endpoint that is down, they are read back
const maxOwnEntries = 1000

/** The value of `name` in a stream entry's field list. */
function field (fields: string[], name: string): string {
  const at = fields.indexOf(name)
  return at === -1 || at % 2 === 1 ? '' : fields[at + 1] ?? ''
}

/** A stream id's milliseconds: when the entry was added. */
const idTime = (id: string): number => Number(id.slice(0, id.indexOf('-')))

// An append's entries are copied into reused slabs (those of 32-128 KB: at 10,000 events a
// second an entry holds ~200 events, ~66 KB). Each copied into a new buffer, their memory,
// outside V8's heap, was freed only by a full garbage collection: --trace-gc-verbose showed it
// growing by ~1.5 MB a scavenge, and a Mark-Compact every ~7 s (none without webhooks).
const slabBytes = 128 * 1024
const minSlabbed = 32 * 1024
const maxSpareSlabs = 16
// own entries in slabs at most (more wait in new buffers): an endpoint down keeps them all
const maxSlabbedOwn = 64

/** An append's copy of an entry's events; `slab`: the reused buffer they are in, given back once sent (null: a buffer of their own). */
interface EntryCopy {
  events: Buffer
  count: number
  slab: Buffer | null
}

class SlabPool {
  private readonly spare: Buffer[] = []

  /** Copies into a slab while `budget.slabs` lasts (one spent a slab), else into a buffer of its own. */
  copy (bytes: Buffer, count: number, budget: { slabs: number }): EntryCopy {
    if (budget.slabs <= 0 || bytes.length < minSlabbed || bytes.length > slabBytes) return { events: Buffer.from(bytes), count, slab: null }
    budget.slabs--
    const slab = this.spare.pop() ?? Buffer.allocUnsafeSlow(slabBytes)
    bytes.copy(slab)
    return { events: slab.subarray(0, bytes.length), count, slab }
  }

  /** `slab` is read no more (its entry acknowledged, or its append done and the copy not kept). */
  giveBack (slab: Buffer | null): void {
    if (slab !== null && this.spare.length < maxSpareSlabs) this.spare.push(slab)
  }
}

/**
 * An endpoint's events waiting for the next append, as bytes, one after another (commas
 * between them), cut into entries of maxPerEntry events; its buffer is reused, each append's
 * entries copied out.
 */
class AppendBuffer {
  bytes = Buffer.allocUnsafeSlow(16 * 1024)
  length = 0
  /** Events waiting. */
  events = 0
  /** Where each entry but the last ends. */
  private readonly cuts: number[] = []
  private inEntry = 0

  constructor (private readonly maxPerEntry: number) {}

  /** Room for an event of at most `size` bytes, its comma written. */
  room (size: number): void {
    if (this.inEntry === this.maxPerEntry) {
      this.cuts.push(this.length)
      this.inEntry = 0
    }
    if (this.length + size + 1 > this.bytes.length) {
      const larger = Buffer.allocUnsafeSlow(Math.max(2 * this.bytes.length, this.length + size + 1))
      this.bytes.copy(larger, 0, 0, this.length)
      this.bytes = larger
    }
    if (this.inEntry > 0) this.bytes[this.length++] = comma
  }

  counted (): void {
    this.inEntry++
    this.events++
  }

  /** The entries waiting, copied out (at most `maxSlabs` of them into slabs of `slabs`); empties the buffer. */
  take (slabs: SlabPool, maxSlabs: number): EntryCopy[] {
    const entries: EntryCopy[] = []
    const budget = { slabs: maxSlabs }
    let start = 0
    for (const end of this.cuts) {
      entries.push(slabs.copy(this.bytes.subarray(start, end), this.maxPerEntry, budget))
      start = end
    }
    entries.push(slabs.copy(this.bytes.subarray(start, this.length), this.inEntry, budget))
    this.cuts.length = 0
    this.length = this.events = this.inEntry = 0
    return entries
  }
}

const comma = 0x2c

export interface RedisOutboxOptions {
  nodeId: string
  keys: RedisKeys
  /** Events in one entry at most (webhooks.batchSize: an entry fits in a request). */
  maxPerEntry: number
  maxPending: number
  maxDeadLetters: number
  /** A sender silent this long loses its endpoint to another node. */
  leaseMs: number
  /** Events Redis did not take (counted as dropped). */
  onLost: (endpoint: string, events: number) => void
  /** How long appended events wait for more to share their append, unless written() is waited for. */
  appendDelayMs: number
}

export class RedisOutbox implements WebhookOutbox {
  private readonly buffered = new Map<string, AppendBuffer>()
  // the write of the events buffered now: resolves once Redis has them
  private flushing: Promise<void> | null = null
  // the events buffered now waiting for more (appendDelayMs), their write not started
  private delayed: NodeJS.Timeout | null = null
  // the append in flight (never rejects): the next waits for it, so the turns meanwhile go out together
  private storing: Promise<void> | null = null
  private readonly lengths = new Map<string, number>()
  private readonly recounted = new Map<string, number>()
  private readonly leases = new Map<string, NodeJS.Timeout>()
  /** When this node last learned it holds an endpoint's lease (the lease script's call, taken or renewed). */
  private readonly leaseConfirmed = new Map<string, number>()
  /** Endpoints whose lease was just taken: the previous holder's unacknowledged entries come first. */
  private readonly claimFirst = new Set<string>()
  private readonly groups = new Set<string>()
  /**
   * Per endpoint, the entries this node read from the group and has not acknowledged, in
   * order (read once, not again at each take); `pendingLeft`: the group may hold more of
   * this node's pending entries (after a takeover), read before any new one.
   */
  private readonly held = new Map<string, { entries: OutboxEntry[], pendingLeft: boolean }>()
  /**
   * Per endpoint, while this node holds its lease, the events of the entries it appended and
   * not yet sent, by entry id: sent from here rather than read back from Redis.
   */
  private readonly own = new Map<string, Map<string, EntryCopy>>()
  private readonly slabs = new SlabPool()
  /** The slabs of the entries the sender holds (their copies from `own`), given back when acknowledged. */
  private readonly lentSlabs = new WeakMap<OutboxEntry, Buffer>()
  private readonly signal = new AppendSignal()
  private closed = false
  private readonly keysOf = new Map<string, EndpointKeys>()

  private readonly commands: OutboxCommands
  /** How often a held lease is renewed; one confirmed this recently is not asked for again. */
  private readonly renewEveryMs: number

  constructor (private readonly redis: RedisClient, private readonly options: RedisOutboxOptions) {
    redis.defineCommand('webhookAppend', { numberOfKeys: 2, lua: appendScript })
    redis.defineCommand('webhookLease', { numberOfKeys: 1, lua: leaseScript })
    redis.defineCommand('webhookReadNew', { numberOfKeys: 1, lua: readNewScript })
    this.commands = redis as unknown as OutboxCommands
    this.renewEveryMs = Math.max(100, Math.floor(options.leaseMs / 3))
  }

  private keys (endpoint: string): EndpointKeys {
    let named = this.keysOf.get(endpoint)
    if (named === undefined) {
      const key = (name: string): string => this.options.keys.owned('webhooks', endpoint, name)
      this.keysOf.set(endpoint, named = { outbox: key('outbox'), pending: key('pending'), dead: key('dead'), lease: key('lease') })
    }
    return named
  }

  append (endpoint: string, event: string): boolean {
    const buffer = this.bufferOf(endpoint)
    if (buffer === null) return false
    // UTF-8 takes 3 bytes at most per UTF-16 unit
    buffer.room(event.length * 3)
    buffer.length += buffer.bytes.write(event, buffer.length)
    this.counted(buffer)
    return true
  }

  appendBytes (endpoint: string, event: EventBytes): boolean {
    const buffer = this.bufferOf(endpoint)
    if (buffer === null) return false
    buffer.room(event.length)
    event.writeTo(buffer.bytes, buffer.length)
    buffer.length += event.length
    this.counted(buffer)
    return true
  }

  /** The endpoint's events waiting for the next append; null when its backlog is full. */
  private bufferOf (endpoint: string): AppendBuffer | null {
    let buffer = this.buffered.get(endpoint)
    if ((this.lengths.get(endpoint) ?? 0) + (buffer?.events ?? 0) >= this.options.maxPending) {
      this.recount(endpoint)
      return null
    }
    if (buffer === undefined) this.buffered.set(endpoint, buffer = new AppendBuffer(this.options.maxPerEntry))
    return buffer
  }

  private counted (buffer: AppendBuffer): void {
    buffer.counted()
    // one append for the events of appendDelayMs, and of the turns while an append is in
    // flight; a QoS 1/2 message's PUBACK waiting (written()) cuts the delay to its turn
    if (this.flushing === null && this.delayed === null) {
      this.delayed = setTimeout(() => {
        this.delayed = null
        this.startFlush(false)
      }, this.options.appendDelayMs)
    }
  }

  /** Appends the events buffered now once the append in flight is done (and, `atTurnEnd`, once this turn's events are in). */
  private startFlush (atTurnEnd: boolean): void {
    const ready = this.storing ?? (atTurnEnd ? new Promise<void>((resolve) => setImmediate(resolve)) : Promise.resolve())
    this.flushing ??= ready.then(async () => await this.flush())
  }

  private async flush (): Promise<void> {
    const appends: Array<Promise<void>> = []
    for (const [endpoint, buffer] of this.buffered) {
      if (buffer.events === 0) continue
      const own = this.leases.has(endpoint) ? this.own.get(endpoint) : undefined
      // kept entries hold their slabs until acknowledged (at most maxSlabbedOwn of them); the
      // others give theirs back at the reply, so more than the spares would only be garbage
      appends.push(this.store(endpoint, buffer.take(this.slabs, own === undefined ? maxSpareSlabs : maxSlabbedOwn - own.size)))
    }
    this.flushing = null
    const storing = this.storing = Promise.all(appends).then(() => {}, () => {})
    await storing
    if (this.storing === storing) this.storing = null
  }

  /** Appends one turn's entries of an endpoint, and their count. */
  private async store (endpoint: string, entries: EntryCopy[]): Promise<void> {
    const { outbox, pending } = this.keys(endpoint)
    const args: Array<Buffer | string> = []
    let events = 0
    for (const entry of entries) {
      args.push(entry.events, String(entry.count))
      events += entry.count
    }
    // Redis briefly away: ioredis holds the commands until it is back (maxRetriesPerRequest:
    // null); an append Redis refused (out of memory, say) is an event lost, counted
    const results = await this.commands.webhookAppend(outbox, pending, this.options.nodeId, events, ...args).catch(() => null)
    if (results === null) {
      // safe only because every failure is final: a `commandTimeout` (none set) would reject
      // while the command stays queued, and it would then write a reused slab's bytes
      for (const entry of entries) this.slabs.giveBack(entry.slab)
      this.options.onLost(endpoint, events)
      return
    }
    const length = results[results.length - 1]
    if (typeof length === 'number') this.lengths.set(endpoint, length)
    // kept only while this node sends the endpoint's events (and so drops them once acknowledged)
    const own = this.leases.has(endpoint) ? this.own.get(endpoint) : undefined
    entries.forEach((entry, at) => {
      const id = results[at]
      if (own !== undefined && own.size < maxOwnEntries && typeof id === 'string') own.set(id, entry)
      // Redis has it: the copy is read no more
      else this.slabs.giveBack(entry.slab)
    })
    this.signal.notify(endpoint)
  }

  /**
   * Reads the backlog again (at most once a second): while it refuses appends, and when the
   * gauge is read (the sender, which updates it, may be another node).
   */
  private recount (endpoint: string): void {
    const now = Date.now()
    if (now - (this.recounted.get(endpoint) ?? 0) < 1000) return
    this.recounted.set(endpoint, now)
    this.redis.get(this.keys(endpoint).pending).then((length) => this.lengths.set(endpoint, Number(length ?? 0)), () => {})
  }

  async acquire (endpoint: string): Promise<boolean> {
    if (this.closed) return false
    // renewed (or taken) within two thirds of the lease (two renewal periods): still held a third
    // of it at least, so not asked again (the sender asks before every take: that was 2.4 lease
    // scripts per 1,000 messages); a renewal that fails or finds the lease lost ends this
    const confirmed = this.leaseConfirmed.get(endpoint)
    if (confirmed !== undefined && this.leases.has(endpoint) && Date.now() - confirmed < this.options.leaseMs * 2 / 3) return true
    const { lease } = this.keys(endpoint)
    const asked = Date.now()
    const held = Number(await this.commands.webhookLease(lease, this.options.nodeId, this.options.leaseMs))
    if (held !== 1) this.held.delete(endpoint)
    if (held === 0) {
      this.stopRenewing(endpoint)
      return false
    }
    this.leaseConfirmed.set(endpoint, asked)
    if (held === 2) {
      this.claimFirst.add(endpoint)
      this.forgetOwn(endpoint)
    }
    // renewed while the sender waits (a backoff can outlast the lease)
    if (!this.leases.has(endpoint)) {
      const timer = setInterval(() => {
        const renewing = Date.now()
        this.commands.webhookLease(lease, this.options.nodeId, this.options.leaseMs).then((renewed) => {
          const state = Number(renewed)
          if (state !== 1) this.held.delete(endpoint)
          if (state === 0) {
            this.stopRenewing(endpoint)
            return
          }
          this.leaseConfirmed.set(endpoint, renewing)
          // taken anew (the key was gone: Redis restarted or flushed): what others left pending comes first
          if (state === 2) {
            this.claimFirst.add(endpoint)
            this.forgetOwn(endpoint)
          }
        }, () => {})
      }, this.renewEveryMs)
      timer.unref()
      this.leases.set(endpoint, timer)
      this.own.set(endpoint, new Map())
    }
    return true
  }

  private stopRenewing (endpoint: string): void {
    clearInterval(this.leases.get(endpoint))
    this.leases.delete(endpoint)
    this.leaseConfirmed.delete(endpoint)
    this.forgetOwn(endpoint)
    this.own.delete(endpoint)
  }

  /**
   * Drops the copies never handed to the sender: after the lease was taken anew or the group
   * made again, their entries may come back only by a claim, or never (Redis lost them), and
   * a copy left would hold its slab for good. An entry without its copy is read from Redis.
   */
  private forgetOwn (endpoint: string): void {
    const own = this.own.get(endpoint)
    if (own === undefined) return
    for (const copy of own.values()) this.slabs.giveBack(copy.slab)
    own.clear()
  }

  private async ensureGroup (endpoint: string): Promise<void> {
    if (this.groups.has(endpoint)) return
    await this.redis.xgroup('CREATE', this.keys(endpoint).outbox, group, '0', 'MKSTREAM').catch((err: Error) => {
      if (!err.message.includes('BUSYGROUP')) throw err
    })
    this.groups.add(endpoint)
  }

  async take (endpoint: string, max: number, maxBytes?: number): Promise<Batch> {
    await this.ensureGroup(endpoint)
    const { outbox } = this.keys(endpoint)
    const readPending = async (count: number): Promise<OutboxEntry[]> => {
      const answer = await this.redis.xreadgroup('GROUP', group, this.options.nodeId, 'COUNT', count, 'STREAMS', outbox, '0') as Array<[string, StreamEntry[]]> | null
      // deleted entries still pending come back without fields
      return (answer?.[0]?.[1] ?? []).filter((entry) => Array.isArray(entry[1])).map(toEntry)
    }
    const readNew = async (count: number): Promise<OutboxEntry[]> => {
      const answer = await this.commands.webhookReadNew(outbox, group, this.options.nodeId, count)
      return await this.withOwnEvents(endpoint, answer.map(toEntry))
    }
    try {
      if (this.claimFirst.has(endpoint)) {
        // what any consumer read and never acknowledged (a dead node's batch) becomes this one's
        let cursor = '0-0'
        do {
          [cursor] = await this.redis.xautoclaim(outbox, group, this.options.nodeId, 0, cursor, 'COUNT', 1000, 'JUSTID') as [string, string[]]
        } while (cursor !== '0-0')
        this.claimFirst.delete(endpoint)
        this.held.delete(endpoint)
      }
      // this consumer's unacknowledged entries first (claimed, or read before a restart), then
      // new ones: all in stream order. An entry holds one event at least: `max` entries are
      // enough for a batch
      let held = this.held.get(endpoint)
      if (held === undefined || (held.entries.length === 0 && held.pendingLeft)) {
        const pending = await readPending(max)
        this.held.set(endpoint, held = { entries: pending, pendingLeft: pending.length >= max })
      }
      const events = eventCount(held.entries)
      if (!held.pendingLeft && events < max) held.entries.push(...await readNew(max - events))
      return entriesWithin(held.entries, max, maxBytes)
    } catch (err) {
      this.held.delete(endpoint)
      // the stream or its group is gone (Redis restarted without persistence): made again
      if ((err as Error).message.includes('NOGROUP')) {
        this.groups.delete(endpoint)
        this.forgetOwn(endpoint)
      }
      throw err
    }
  }

  /**
   * The events of the entries this node appended, from memory (each taken out: it is held
   * from now on); read from Redis for those it no longer has (appended before it took the lease).
   */
  private async withOwnEvents (endpoint: string, entries: OutboxEntry[]): Promise<OutboxEntry[]> {
    const own = this.own.get(endpoint)
    const missing: OutboxEntry[] = []
    for (const entry of entries) {
      if (entry.events !== '' || entry.count === 0) continue
      const copy = own?.get(entry.id)
      if (copy === undefined) missing.push(entry)
      else {
        entry.events = copy.events
        if (copy.slab !== null) this.lentSlabs.set(entry, copy.slab)
        own?.delete(entry.id)
      }
    }
    if (missing.length > 0) {
      const { outbox } = this.keys(endpoint)
      const multi = this.redis.multi()
      for (const entry of missing) multi.xrange(outbox, entry.id, entry.id)
      const results = await multi.exec() ?? []
      missing.forEach((entry, at) => {
        const [stored] = (results[at]?.[1] ?? []) as StreamEntry[]
        entry.events = stored === undefined ? '' : field(stored[1], 'e')
      })
    }
    // an entry deleted meanwhile (acknowledged by a previous holder) has nothing left to send
    return entries.filter((entry) => entry.events !== '')
  }

  /** Entries acknowledged or dead-lettered: no longer held (the oldest held, unless another take interleaved). */
  private release (endpoint: string, entries: readonly OutboxEntry[]): void {
    // a copy recorded after its entry was already read back (the append's reply came late)
    const own = this.own.get(endpoint)
    for (const entry of entries) {
      const copy = own?.get(entry.id)
      if (copy !== undefined) {
        own?.delete(entry.id)
        this.slabs.giveBack(copy.slab)
      }
      // sent and acknowledged (or dead-lettered): its slab is read no more
      const slab = this.lentSlabs.get(entry)
      if (slab !== undefined) {
        this.lentSlabs.delete(entry)
        this.slabs.giveBack(slab)
      }
    }
    const held = this.held.get(endpoint)
    if (held === undefined) return
    if (entries.every((entry, at) => held.entries[at]?.id === entry.id)) held.entries.splice(0, entries.length)
    else this.held.delete(endpoint)
  }

  async ack (endpoint: string, entries: readonly OutboxEntry[]): Promise<void> {
    const { outbox, pending } = this.keys(endpoint)
    const ids = entries.map((entry) => entry.id)
    const results = await this.redis.multi().xack(outbox, group, ...ids).xdel(outbox, ...ids).decrby(pending, eventCount(entries)).exec()
    this.release(endpoint, entries)
    const length = results?.[2]?.[1]
    if (typeof length === 'number') this.lengths.set(endpoint, Math.max(0, length))
  }

  async deadLetter (endpoint: string, entries: readonly OutboxEntry[], reason: string): Promise<void> {
    const { outbox, dead, pending } = this.keys(endpoint)
    const ids = entries.map((entry) => entry.id)
    const now = String(Date.now())
    const multi = this.redis.multi()
    for (const entry of entries) {
      for (const event of entryEvents(entry)) multi.xadd(dead, 'MAXLEN', '~', this.options.maxDeadLetters, '*', 'e', event, 'reason', reason, 'at', String(entry.enqueuedAt), 'dead', now)
    }
    await multi.xack(outbox, group, ...ids).xdel(outbox, ...ids).decrby(pending, eventCount(entries)).exec()
    this.release(endpoint, entries)
  }

  async deadLetters (endpoint: string, max: number): Promise<DeadLetter[]> {
    const entries = await this.redis.xrange(this.keys(endpoint).dead, '-', '+', 'COUNT', max) as StreamEntry[]
    return entries.map(toDeadLetter)
  }

  async replay (endpoint: string, ids: readonly string[] | null): Promise<number> {
    const { outbox, dead, pending } = this.keys(endpoint)
    const all = await this.redis.xrange(dead, '-', '+') as StreamEntry[]
    const wanted = ids === null ? null : new Set(ids)
    const chosen = all.filter(([id]) => wanted === null || wanted.has(id))
    if (chosen.length === 0) return 0
    // moved in one transaction: queued again (the same event ids, for the receiver's dedupe) and no longer dead
    const multi = this.redis.multi()
    for (const [, fields] of chosen) multi.xadd(outbox, '*', 'e', field(fields, 'e'), 'n', '1')
    await multi.incrby(pending, chosen.length).xdel(dead, ...chosen.map(([id]) => id)).exec()
    this.signal.notify(endpoint)
    return chosen.length
  }

  written (): Promise<void> | null {
    if (this.delayed !== null) {
      clearTimeout(this.delayed)
      this.delayed = null
      // the turn's events together (a QoS 1 PUBACK waits one round trip more at most)
      this.startFlush(true)
    }
    return this.flushing
  }

  pending (endpoint: string): number {
    this.recount(endpoint)
    return this.lengths.get(endpoint) ?? 0
  }

  appended (endpoint: string, ms: number): Promise<void> {
    return this.signal.wait(endpoint, ms)
  }

  /** Flushes what is buffered, gives the leases up (another node sends from now on). */
  async close (): Promise<void> {
    this.closed = true
    this.signal.close()
    // the flush it starts waits for the append in flight; with none to start, that append itself
    await (this.written() ?? this.storing)?.catch(() => {})
    for (const endpoint of [...this.leases.keys()]) {
      this.stopRenewing(endpoint)
      await this.redis.eval(releaseScript, 1, this.keys(endpoint).lease, this.options.nodeId).catch(() => {})
    }
  }
}

function toEntry ([id, fields]: StreamEntry): OutboxEntry {
  return { id, events: field(fields, 'e'), count: Number(field(fields, 'n')), enqueuedAt: idTime(id) }
}


function toDeadLetter ([id, fields]: StreamEntry): DeadLetter {
  return { id, event: field(fields, 'e'), enqueuedAt: Number(field(fields, 'at')), deadAt: Number(field(fields, 'dead')), reason: field(fields, 'reason') }
}
