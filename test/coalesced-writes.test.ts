// A Redis connection whose writes are coalesced sends the commands of one event-loop turn in
// one write: Redis counts the reads it made (INFO stats total_reads_processed), one per
// arrival when the commands are small. The replies come back in order, commands of later turns
// are not held back, and a new socket after a reconnect is coalesced too.
import type { Socket } from 'node:net'
import { Redis } from 'ioredis'
import t from 'tap'
import { coalesceWrites } from '../src/broker/storage/coalesced-writes.js'
import { startRedis } from './helpers/redis.js'

async function readsProcessed (admin: Redis): Promise<number> {
  const info = await admin.info('stats')
  return Number(/total_reads_processed:(\d+)/.exec(info)?.[1])
}

/** Redis' reads while `work` runs on `client`, less those of the INFO that measures them. */
async function readsDuring (admin: Redis, work: () => Promise<unknown>): Promise<number> {
  const before = await readsProcessed(admin)
  await work()
  return await readsProcessed(admin) - before - 1
}

t.test('the commands of one turn reach Redis in one write, in order; the next turn is not held back', async (t) => {
  const redis = await startRedis(t)
  const admin = new Redis(redis.url)
  const plain = new Redis(redis.url)
  const coalesced = coalesceWrites(new Redis(redis.url)) as Redis
  t.teardown(() => { admin.disconnect(); plain.disconnect(); coalesced.disconnect() })
  await Promise.all([plain.ping(), coalesced.ping()])

  const sendHundred = (client: Redis) => async () => {
    const sent = Array.from({ length: 100 }, (_, i) => client.rpush(`list:${client === plain ? 'plain' : 'coalesced'}`, String(i)))
    // still in the turn that sent them: held by the cork, or already written one by one
    const socket = client.stream as Socket
    const held = { corked: socket.writableCorked, bytes: socket.writableLength }
    await Promise.all(sent)
    return held
  }
  let plainHeld = { corked: -1, bytes: -1 }
  let coalescedHeld = { corked: -1, bytes: -1 }
  const plainReads = await readsDuring(admin, async () => { plainHeld = await sendHundred(plain)() })
  const coalescedReads = await readsDuring(admin, async () => { coalescedHeld = await sendHundred(coalesced)() })
  t.same(plainHeld, { corked: 0, bytes: 0 }, 'uncoalesced: each command written as it is sent')
  t.equal(coalescedHeld.corked, 1, 'coalesced: the socket is corked for the rest of the turn')
  t.ok(coalescedHeld.bytes > 100 * 20, `with the turn's commands in it (${coalescedHeld.bytes} bytes)`)
  t.ok(coalescedReads <= 3, `and Redis reads them at once (${coalescedReads} reads for 100 commands, ${plainReads} uncoalesced)`)
  t.same(await coalesced.lrange('list:coalesced', 0, -1), Array.from({ length: 100 }, (_, i) => String(i)), 'in the order sent')

  // a command of a later turn goes out at the end of its own turn, not with a later batch
  const startedAt = performance.now()
  await coalesced.set('alone', '1')
  t.ok(performance.now() - startedAt < 100, 'a lone command is answered at once')
})

t.test('after a reconnect the new socket is coalesced too', async (t) => {
  const redis = await startRedis(t)
  const admin = new Redis(redis.url)
  const coalesced = coalesceWrites(new Redis(redis.url, { retryStrategy: () => 50 })) as Redis
  t.teardown(() => { admin.disconnect(); coalesced.disconnect() })
  await coalesced.client('SETNAME', 'coalesced')
  const reconnected = new Promise((resolve) => coalesced.once('ready', resolve))
  await admin.client('KILL', 'SKIPME', 'yes', 'TYPE', 'normal')
  await reconnected
  const admin2 = new Redis(redis.url)
  t.teardown(() => admin2.disconnect())
  let corked = -1
  const reads = await readsDuring(admin2, async () => {
    const sent = Array.from({ length: 100 }, (_, i) => coalesced.incrby('counter', i))
    corked = (coalesced.stream as Socket).writableCorked
    await Promise.all(sent)
  })
  t.equal(corked, 1, 'the new socket is corked for the turn')
  t.ok(reads <= 3, `one write for the turn (${reads} reads for 100 commands)`)
  t.equal(await coalesced.get('counter'), String(99 * 100 / 2), 'every command ran')
})
