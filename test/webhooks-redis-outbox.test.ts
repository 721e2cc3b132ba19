// The Redis outbox on a real redis-server: the lease holder sends the entries it appended from
// memory, and entries it has not in memory (appended before it held the lease, or by another
// node) from Redis, all in stream order, each once.
import t from 'tap'
import { Redis } from 'ioredis'
import { RedisKeys } from '../src/broker/storage/redis-keys.js'
import { entryEvents } from '../src/broker/webhooks/outbox.js'
import { RedisOutbox } from '../src/broker/webhooks/redis-outbox.js'
import { startRedis } from './helpers/redis.js'

t.test('own entries from memory, the others from Redis, in order, each once', async (t) => {
  const server = await startRedis(t)
  const clients = [new Redis(server.url), new Redis(server.url)]
  t.teardown(() => { for (const client of clients) client.disconnect() })
  const keys = new RedisKeys('rb:', false)
  const outbox = (client: Redis, nodeId: string): RedisOutbox => new RedisOutbox(client, { nodeId, keys, maxPerEntry: 2, maxPending: 100, maxDeadLetters: 10, appendDelayMs: 20, leaseMs: 5000, onLost: () => t.fail('no event lost') })
  const [sender, other] = [outbox(clients[0] as Redis, 'node-a'), outbox(clients[1] as Redis, 'node-b')]
  const event = (n: number): string => JSON.stringify({ id: String(n) })
  const appendAll = async (box: RedisOutbox, from: number, to: number): Promise<void> => {
    for (let n = from; n <= to; n++) box.append('e', event(n))
    await box.written()
  }
  await appendAll(sender, 1, 3) // before node-a holds the lease: read back from Redis
  t.ok(await sender.acquire('e'), 'node-a takes the lease')
  await appendAll(sender, 4, 6) // own, while holding it: from memory
  await appendAll(other, 7, 8) // another node's: from Redis
  await appendAll(sender, 9, 9)
  const taken: string[] = []
  for (let round = 0; round < 10 && taken.length < 9; round++) {
    const { entries } = await sender.take('e', 4)
    taken.push(...entries.flatMap(entryEvents))
    await sender.ack('e', entries)
  }
  t.same(taken, [1, 2, 3, 4, 5, 6, 7, 8, 9].map(event), 'every event once, in stream order')
  const xrangeCalls = /cmdstat_xrange:calls=(\d+)/.exec(await (clients[0] as Redis).info('commandstats'))?.[1]
  t.equal(xrangeCalls, '2', 'read back: only the two entries appended before the lease (events 1-2 and 3)')
  t.equal(await clients[0]?.xlen(keys.owned('webhooks', 'e', 'outbox')), 0, 'acknowledged entries deleted')
  t.equal(await clients[0]?.get(keys.owned('webhooks', 'e', 'pending')), '0', 'no backlog')
  await sender.close()
  await other.close()
})

t.test('an append of 32 KB or more is copied into a reused slab: given back only once acknowledged', async (t) => {
  const server = await startRedis(t)
  const client = new Redis(server.url)
  t.teardown(() => { client.disconnect() })
  const keys = new RedisKeys('rb:', false)
  const box = new RedisOutbox(client, { nodeId: 'node-a', keys, maxPerEntry: 100, maxPending: 1000, maxDeadLetters: 10, appendDelayMs: 20, leaseMs: 5000, onLost: () => t.fail('no event lost') })
  t.ok(await box.acquire('e'), 'the lease: its own entries are sent from memory')
  // 40 events of ~1 KB a round: one entry of ~40 KB
  const round = async (name: string): Promise<string[]> => {
    const events = Array.from({ length: 40 }, (_, n) => JSON.stringify({ id: `${name}-${n}`, text: name.repeat(1000) }))
    for (const event of events) box.append('e', event)
    await box.written()
    return events
  }
  const first = await round('a')
  const held = await box.take('e', 100)
  t.equal(held.entries.length, 1, 'one entry')
  const second = await round('b')
  t.same(held.entries.flatMap(entryEvents), first, 'an entry the sender holds keeps its bytes while later appends are copied')
  const slabOf = (entries: typeof held.entries): ArrayBufferLike => (entries[0]?.events as Buffer).buffer
  const firstSlab = slabOf(held.entries)
  await box.ack('e', held.entries)
  const next = await box.take('e', 100)
  t.same(next.entries.flatMap(entryEvents), second, 'the next entry intact')
  await box.ack('e', next.entries)
  const third = await round('c')
  const last = await box.take('e', 100)
  t.same(last.entries.flatMap(entryEvents), third, 'intact in a reused slab')
  t.ok(slabOf(last.entries) === firstSlab || slabOf(last.entries) === slabOf(next.entries), 'the slab of an acknowledged entry reused')
  await box.ack('e', last.entries)
  await box.close()
})

t.test('the turns appended while an append is in flight go out together, in order, in its next call', async (t) => {
  const server = await startRedis(t)
  const [client, admin] = [new Redis(server.url), new Redis(server.url)]
  t.teardown(() => { client.disconnect(); admin.disconnect() })
  const keys = new RedisKeys('rb:', false)
  const box = new RedisOutbox(client, { nodeId: 'node-a', keys, maxPerEntry: 100, maxPending: 100, maxDeadLetters: 10, appendDelayMs: 20, leaseMs: 5000, onLost: () => t.fail('no event lost') })
  const event = (n: number): string => JSON.stringify({ id: String(n) })
  const evalshaCalls = async (): Promise<number> => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0)
  box.append('e', event(0))
  await box.written() // the script loaded, an append's round trip timed by nothing but Redis
  const before = await evalshaCalls()
  // Redis holds the first append 300 ms: the two turns after it wait for it
  await admin.client('PAUSE', 300, 'ALL')
  box.append('e', event(1))
  const first = box.written()
  await new Promise((resolve) => setTimeout(resolve, 30))
  box.append('e', event(2))
  await new Promise((resolve) => setTimeout(resolve, 30))
  box.append('e', event(3))
  const last = box.written()
  t.not(first, last, 'a write of its own for what came after the one in flight')
  await first
  await last
  t.equal(await evalshaCalls() - before, 2, 'two appends: the first turn, then both turns that waited for it')
  const entries = await client.xrange(keys.owned('webhooks', 'e', 'outbox'), '-', '+')
  t.same(entries.map(([, fields]) => fields[1]), [event(0), event(1), `${event(2)},${event(3)}`], 'in order, the waiting turns in one entry')
  t.equal(await client.get(keys.owned('webhooks', 'e', 'pending')), '4', 'all counted')
  await box.close()
})

t.test('events appended within appendDelayMs share one append; written() sends at once', async (t) => {
  const server = await startRedis(t)
  const client = new Redis(server.url)
  t.teardown(() => { client.disconnect() })
  const keys = new RedisKeys('rb:', false)
  // a delay no test run reaches unless written() cuts it short
  const box = new RedisOutbox(client, { nodeId: 'node-a', keys, maxPerEntry: 100, maxPending: 100, maxDeadLetters: 10, appendDelayMs: 60_000, leaseMs: 5000, onLost: () => t.fail('no event lost') })
  const event = (n: number): string => JSON.stringify({ id: String(n) })
  const stream = keys.owned('webhooks', 'e', 'outbox')
  box.append('e', event(1))
  await new Promise((resolve) => setTimeout(resolve, 50))
  box.append('e', event(2))
  t.equal(await client.xlen(stream), 0, 'nothing appended while the delay runs')
  await box.written()
  const entries = await client.xrange(stream, '-', '+')
  t.same(entries.map(([, fields]) => fields[1]), [`${event(1)},${event(2)}`], 'both events in one entry, appended when written() was asked')
  box.append('e', event(3))
  await box.close()
  t.equal(await client.xlen(stream), 2, 'close appends what waits')
})

t.test('a lease confirmed within two thirds of it is not asked for again; one its renewal takes anew (the key lost) first claims what another node left pending', async (t) => {
  const server = await startRedis(t)
  const clients = [new Redis(server.url), new Redis(server.url), new Redis(server.url)]
  t.teardown(() => { for (const client of clients) client.disconnect() })
  const [a, b, admin] = clients as [Redis, Redis, Redis]
  const keys = new RedisKeys('rb:', false)
  // renewed every 2 s: the steps below between two renewals take a few ms
  const outbox = (client: Redis, nodeId: string): RedisOutbox => new RedisOutbox(client, { nodeId, keys, maxPerEntry: 100, maxPending: 100, maxDeadLetters: 10, appendDelayMs: 20, leaseMs: 6000, onLost: () => t.fail('no event lost') })
  const [first, second] = [outbox(a, 'node-a'), outbox(b, 'node-b')]
  const event = (n: number): string => JSON.stringify({ id: String(n) })
  const scriptCalls = async (): Promise<number> => {
    const stats = await admin.info('commandstats')
    return ['eval', 'evalsha'].reduce((sum, name) => sum + Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0), 0)
  }
  t.ok(await first.acquire('e'), 'node-a takes the lease')
  const before = await scriptCalls()
  for (let n = 0; n < 10; n++) t.ok(await first.acquire('e'))
  t.equal(await scriptCalls() - before, 0, 'held: not asked again')
  t.same((await first.take('e', 10)).entries, [], 'nothing to send yet (what the lease had to claim first is claimed)')
  // the lease key lost (node-a paused past it, or Redis restarted): node-b takes it, reads two events, and stops before acknowledging them
  await admin.del(keys.owned('webhooks', 'e', 'lease'))
  t.ok(await second.acquire('e'), 'node-b takes the lost lease')
  second.append('e', event(1))
  second.append('e', event(2))
  await second.written()
  t.same((await second.take('e', 10)).entries.flatMap(entryEvents), [event(1), event(2)], 'node-b reads them')
  await second.close()
  // node-a's renewal finds the key gone and takes the lease anew
  await new Promise((resolve) => setTimeout(resolve, 2300))
  t.same((await first.take('e', 10)).entries.flatMap(entryEvents), [event(1), event(2)], 'node-a claims what node-b read and did not acknowledge')
  await first.close()
})
