// The Redis history store's flush (docs/history.md, Cost): on one Redis it waits while turns
// keep bringing appends, so that a call carries more messages, and leaves at the first turn that
// brings none, or after maxFlushTurns turns or maxFlushMessages appends. Script calls are
// counted by Redis itself (INFO commandstats).
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
