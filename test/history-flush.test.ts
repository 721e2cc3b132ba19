// The Redis history store's flush (docs/history.md, Cost): on one Redis it waits while turns
// keep bringing appends, so that a call carries more messages, and leaves at the first turn that
// brings none, or after maxFlushTurns turns or maxFlushMessages appends. Script calls are
// counted by Redis itself (INFO commandstats). The call the store writes itself: its keys
// prefixed, its reply read as text, the script sent again once flushed from Redis.
import { Redis } from 'ioredis'
import t from 'tap'
import { redisHistoryStore } from '../src/broker/history/redis-history-store.js'
import type { Append, HistoryStore } from '../src/broker/history/history-store.js'
import { startRedis } from './helpers/redis.js'

const config = { filter: 'room/+', size: 1000, ttlSeconds: 600 }
const nextTurn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

/** Script calls (EVAL and EVALSHA) Redis has run since its stats were reset. */
async function scriptCalls (admin: Redis): Promise<number> {
  const stats = await admin.info('commandstats')
  return [...stats.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].reduce((sum, [, calls]) => sum + Number(calls), 0)
}

/** Appends `perTurn` messages in each of `turns` consecutive turns; resolves with their offsets per topic once all are stored. */
async function appendOverTurns (store: HistoryStore, turns: number, perTurn: number): Promise<Map<string, number[]>> {
  const offsets = new Map<string, number[]>()
  const stored: Array<Promise<void>> = []
  for (let turn = 0; turn < turns; turn++) {
    if (turn > 0) await nextTurn()
    for (let i = 0; i < perTurn; i++) {
      const topic = `room/${i % 2}`
      stored.push(new Promise((resolve, reject) => {
        const append: Append = {
          topic,
          payload: Buffer.from(`t${turn}m${i}`),
          qos: 1,
          time: Date.now(),
          appended: (err, _epoch, offset) => {
            if (err !== null) return reject(err)
            offsets.set(topic, [...offsets.get(topic) ?? [], offset])
            resolve()
          }
        }
        store.append(append, config, 0)
      }))
    }
  }
  await Promise.all(stored)
  return offsets
}

t.test('Redis history: a flush waits while turns bring appends, within its bounds', async (t) => {
  const server = await startRedis(t)
  const redis = new Redis(server.url)
  const admin = new Redis(server.url)
  t.teardown(() => { redis.disconnect(); admin.disconnect() })
  const store = redisHistoryStore(redis)

  const run = async (turns: number, perTurn: number): Promise<{ calls: number, offsets: Map<string, number[]> }> => {
    await admin.flushall()
    await admin.config('RESETSTAT')
    const offsets = await appendOverTurns(store, turns, perTurn)
    return { calls: await scriptCalls(admin), offsets }
  }
  const consecutive = (count: number): number[] => Array.from({ length: count }, (_, i) => i + 1)

  const five = await run(5, 10)
  t.equal(five.calls, 1, 'appends of five consecutive turns go in one call')
  t.same(five.offsets.get('room/0'), consecutive(25), 'offsets per topic in the order of the appends')
  t.same(five.offsets.get('room/1'), consecutive(25))

  const twelve = await run(12, 10)
  t.equal(twelve.calls, 2, 'a flush waits at most 8 turns: twelve consecutive turns make two calls')
  t.same(twelve.offsets.get('room/0'), consecutive(60))

  const many = await run(6, 100)
  t.equal(many.calls, 2, 'a flush leaves at 500 appends: 600 in six turns make two calls')
  t.same(many.offsets.get('room/1'), consecutive(300))

  const lone = await run(1, 1)
  t.equal(lone.calls, 1, 'one append alone is stored: the next turn brings nothing')
  t.same(lone.offsets.get('room/0'), [1])
})

t.test('Redis history: the append call as the store writes it, with a key prefix, across a SCRIPT FLUSH', async (t) => {
  const server = await startRedis(t)
  const redis = new Redis(server.url, { keyPrefix: 'p:' })
  const admin = new Redis(server.url)
  t.teardown(() => { redis.disconnect(); admin.disconnect() })
  const store = redisHistoryStore(redis)
  const topic = 'room/ü'
  const append = async (payload: string, idempotencyKey?: string): Promise<[string, number, boolean]> => await new Promise((resolve, reject) => {
    store.append({
      topic,
      payload: Buffer.from(payload),
      qos: 1,
      time: Date.now(),
      ...(idempotencyKey === undefined ? {} : { idempotencyKey, properties: { userProperties: { 'idempotency-key': idempotencyKey } } }),
      appended: (err, epoch, offset, duplicate) => { if (err !== null) reject(err); else resolve([epoch, offset, duplicate]) }
    }, config, 60_000)
  })

  const [first, keyed] = await Promise.all([append('é1'), append('é2', 'k')])
  t.equal(typeof first[0], 'string', 'the epoch comes back as a string')
  t.same([first[1], keyed[1]], [1, 2], 'offsets in the order of the appends')
  t.ok((await admin.keys('p:history:*')).length >= 3, "the topic's keys carry the connection's key prefix")
  await admin.script('FLUSH')
  const [repeat, third] = await Promise.all([append('é2', 'k'), append('é3')])
  t.same([repeat[1], repeat[2]], [2, true], 'after the script is flushed from Redis, a repeated key is still found')
  t.same([third[0], third[1], third[2]], [first[0], 3, false], 'and the next message stored in the same epoch')
  const read = await store.read({ topic, limit: 10, now: Date.now() }, config)
  t.same(read.messages.map((message) => [message.offset, message.payload.toString(), message.properties?.userProperties?.['idempotency-key']]), [[1, 'é1', undefined], [2, 'é2', 'k'], [3, 'é3', undefined]], 'read back as appended')
})
