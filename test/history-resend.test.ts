// An append call that ioredis sends again (autoResendUnfulfilledCommands) after its connection
// closed with the call unanswered: Redis may have run it. The store's connection goes through a
// proxy that loses the reply to the next request (Redis ran the call) or the request itself
// (it never reached Redis), and refuses connections until reopened, while another node (a
// second store, on its own connection) appends to the same topic before the call is resent. On a
// Redis Cluster ioredis sends the call again through another node (a closed node connection
// is not reconnected there: the call is retried on a random node, then MOVED to its own).
// Each message must be stored once and told the offset it has (docs/history.md, Storage).
import { connect, createServer, type Socket } from 'node:net'
import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import { redisHistoryStore } from '../src/broker/history/redis-history-store.js'
import type { HistoryStore } from '../src/broker/history/history-store.js'
import type { Teardown } from './helpers/loopback.js'
import { startRedis } from './helpers/redis.js'
import { startRedisCluster } from './helpers/redis-cluster.js'

const config = { filter: 'room/+', size: 1000, ttlSeconds: 600 }
const windowMs = 120_000

interface LossyProxy {
  port: number
  /** The next reply from Redis is not forwarded: the connection closes once Redis has answered. */
  loseNextReply: () => Promise<void>
  /** The next request is not forwarded: the connection closes before Redis reads it. */
  loseNextRequest: () => Promise<void>
  /** Accepts connections again (refused from a loss on). */
  reopen: () => void
}

async function startLossyProxy (t: Teardown, redisPort: number): Promise<LossyProxy> {
  const sockets = new Set<Socket>()
  let open = true
  let lose: { side: 'reply' | 'request', lost: () => void } | null = null
  const server = createServer((client) => {
    if (!open) return client.destroy()
    const upstream = connect(redisPort, '127.0.0.1')
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('close', () => { sockets.delete(socket); client.destroy(); upstream.destroy() })
      socket.on('error', () => {})
    }
    const forward = (side: 'reply' | 'request', to: Socket) => (chunk: Buffer): void => {
      if (lose?.side === side) {
        const { lost } = lose
        lose = null
        open = false
        client.destroy()
        upstream.destroy()
        lost()
        return
      }
      to.write(chunk)
    }
    client.on('data', forward('request', upstream))
    upstream.on('data', forward('reply', client))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('proxy has no port')
  const arm = async (side: 'reply' | 'request'): Promise<void> => { await new Promise<void>((resolve) => { lose = { side, lost: resolve } }) }
  return { port: address.port, loseNextReply: async () => { await arm('reply') }, loseNextRequest: async () => { await arm('request') }, reopen: () => { open = true } }
}

interface Stored { topic: string, payload: string, offset: number, repeat: boolean }
interface Message { topic: string, payload: string, key?: string }

/** Appends `messages` in one turn (one call); resolves with what each was told once all are. */
async function appendTurn (store: HistoryStore, messages: Message[], window = windowMs): Promise<Stored[]> {
  return await Promise.all(messages.map(async ({ topic, payload, key }) => await new Promise<Stored>((resolve, reject) => {
    store.append({
      topic,
      payload: Buffer.from(payload),
      qos: 1,
      time: Date.now(),
      ...(key === undefined ? {} : { idempotencyKey: key }),
      appended: (err, _epoch, offset, repeat) => {
        if (err !== null) reject(err)
        else resolve({ topic, payload, offset, repeat })
      }
    }, config, window)
  })))
}

/** The payloads of `topic`'s history by offset. */
async function history (store: HistoryStore, topic: string): Promise<Array<[number, string]>> {
  const { messages } = await store.read({ topic, limit: 100, now: Date.now() }, config)
  return messages.map((message) => [message.offset, message.payload.toString()])
}

async function setup (t: Teardown): Promise<{ proxy: LossyProxy, store: HistoryStore, other: HistoryStore }> {
  const server = await startRedis(t)
  const proxy = await startLossyProxy(t, server.port)
  // ioredis' defaults, as the broker's connections: unanswered commands are sent again on reconnect
  const redis = new Redis({ host: '127.0.0.1', port: proxy.port, retryStrategy: () => 20 })
  redis.on('error', () => {})
  const direct = new Redis(server.url)
  t.teardown(() => { redis.disconnect(); direct.disconnect() })
  await redis.ping()
  return { proxy, store: redisHistoryStore(redis), other: redisHistoryStore(direct) }
}

t.test('a call whose reply was lost is resent and stores its messages once', async (t) => {
  const { proxy, store, other } = await setup(t)
  await appendTurn(store, [{ topic: 'room/a', payload: 'a1', key: 'k0' }, { topic: 'room/b', payload: 'b1' }])
  await appendTurn(other, [{ topic: 'room/a', payload: 'o1' }])

  const lost = proxy.loseNextReply()
  const resent = appendTurn(store, [
    { topic: 'room/a', payload: 'a2', key: 'k1' },
    { topic: 'room/a', payload: 'a1 again', key: 'k0' },
    { topic: 'room/a', payload: 'a2 again', key: 'k1' },
    { topic: 'room/a', payload: 'a3' },
    { topic: 'room/b', payload: 'b2' }
  ])
  await lost
  // another node appends before the call is resent: the call's entry is no longer the newest,
  // ten entries (more than the script reads back at once) stand between
  const others = Array.from({ length: 10 }, (_, i) => `o${i + 2}`)
  for (const payload of others) await appendTurn(other, [{ topic: 'room/a', payload }])
  proxy.reopen()

  t.same(await resent, [
    { topic: 'room/a', payload: 'a2', offset: 3, repeat: false },
    { topic: 'room/a', payload: 'a1 again', offset: 1, repeat: true },
    { topic: 'room/a', payload: 'a2 again', offset: 3, repeat: true },
    { topic: 'room/a', payload: 'a3', offset: 4, repeat: false },
    { topic: 'room/b', payload: 'b2', offset: 2, repeat: false }
  ], 'each message told the offset (or the repeat) the call that ran gave it')
  t.same(await history(other, 'room/a'), [[1, 'a1'], [2, 'o1'], [3, 'a2'], [4, 'a3'], ...others.map((payload, i) => [5 + i, payload])], 'stored once, in the order Redis ran the calls')
  t.same(await history(other, 'room/b'), [[1, 'b1'], [2, 'b2']])

  // the store goes on after the resend
  t.same((await appendTurn(store, [{ topic: 'room/a', payload: 'a4' }]))[0]?.offset, 15)
})

t.test('a resent call whose repeats\' idempotency keys expired meanwhile answers them as repeats all the same', async (t) => {
  const { proxy, store, other } = await setup(t)
  const shortWindowMs = 200
  await appendTurn(store, [{ topic: 'room/a', payload: 'a1', key: 'k0' }], shortWindowMs)

  const lost = proxy.loseNextReply()
  const resent = appendTurn(store, [
    { topic: 'room/a', payload: 'a1 again', key: 'k0' },
    { topic: 'room/a', payload: 'a2' },
    { topic: 'room/a', payload: 'a3' }
  ], shortWindowMs)
  await lost
  await appendTurn(other, [{ topic: 'room/a', payload: 'o1' }], shortWindowMs)
  // past the window: k0 is forgotten by the time the call is resent
  await new Promise((resolve) => setTimeout(resolve, shortWindowMs * 3))
  proxy.reopen()

  t.same((await resent).map(({ offset, repeat }) => [offset, repeat]), [[1, true], [2, false], [3, false]], 'the repeat and the offsets the call that ran gave')
  t.same(await history(other, 'room/a'), [[1, 'a1'], [2, 'a2'], [3, 'a3'], [4, 'o1']], 'stored once')
})

t.test('a call whose request was lost is resent and stores its messages once', async (t) => {
  const { proxy, store, other } = await setup(t)
  await appendTurn(store, [{ topic: 'room/a', payload: 'a1' }])

  const lost = proxy.loseNextRequest()
  const resent = appendTurn(store, [{ topic: 'room/a', payload: 'a2', key: 'k1' }, { topic: 'room/a', payload: 'a3' }])
  await lost
  const others = Array.from({ length: 10 }, (_, i) => `o${i + 1}`)
  for (const payload of others) await appendTurn(other, [{ topic: 'room/a', payload }])
  proxy.reopen()

  t.same(await resent, [
    { topic: 'room/a', payload: 'a2', offset: 12, repeat: false },
    { topic: 'room/a', payload: 'a3', offset: 13, repeat: false }
  ], 'stored when resent, after the other node\'s messages')
  t.same(await history(other, 'room/a'), [[1, 'a1'], ...others.map((payload, i) => [2 + i, payload]), [12, 'a2'], [13, 'a3']])
})

t.test('a resent call holding several entries of one topic answers each from its own', async (t) => {
  const { proxy, store, other } = await setup(t)
  await appendTurn(store, [{ topic: 'room/a', payload: 'a0' }])

  const lost = proxy.loseNextReply()
  // 250 messages of one topic in one turn: three entries (at most 100 messages each) in one call
  const payloads = Array.from({ length: 250 }, (_, i) => `a${i + 1}`)
  const resent = appendTurn(store, payloads.map((payload) => ({ topic: 'room/a', payload })))
  await lost
  await appendTurn(other, [{ topic: 'room/a', payload: 'o1' }])
  proxy.reopen()

  t.same((await resent).map(({ offset, repeat }) => [offset, repeat]), payloads.map((_, i) => [i + 2, false]), 'each message told its own offset')
  const { messages } = await other.read({ topic: 'room/a', limit: 1000, now: Date.now() }, config)
  t.same(messages.map((message) => message.payload.toString()), ['a0', ...payloads, 'o1'], 'stored once')
})

t.test('Redis Cluster: a call whose reply was lost is sent again through another node and stores its messages once', async (t) => {
  const cluster = await startRedisCluster(t)
  const masters = (await cluster.nodes()).filter((node) => node.role === 'master')
  // each master behind a proxy of its own, the store's Cluster connection mapped to them
  const proxies = new Map<number, LossyProxy>()
  for (const master of masters) proxies.set(master.port, await startLossyProxy(t, master.port))
  const natMap = Object.fromEntries(masters.map((master) => [`127.0.0.1:${master.port}`, { host: '127.0.0.1', port: (proxies.get(master.port) as LossyProxy).port }]))
  const options = { retryDelayOnFailover: 20, maxRedirections: 1000 }
  const redis = new Cluster([{ host: '127.0.0.1', port: (proxies.get(masters[0]?.port as number) as LossyProxy).port }], { ...options, natMap })
  const direct = new Cluster(masters.map((master) => ({ host: '127.0.0.1', port: master.port })), options)
  redis.on('error', () => {})
  t.teardown(() => { redis.disconnect(); direct.disconnect() })
  const store = redisHistoryStore(redis)
  const other = redisHistoryStore(direct)
  await appendTurn(store, [{ topic: 'room/a', payload: 'a1' }])
  await appendTurn(other, [{ topic: 'room/a', payload: 'o1' }])

  const proxy = proxies.get((await cluster.masterOf('history:{room/a}:s')).port) as LossyProxy
  const lost = proxy.loseNextReply()
  const resent = appendTurn(store, [{ topic: 'room/a', payload: 'a2' }, { topic: 'room/a', payload: 'a3' }])
  await lost
  await appendTurn(other, [{ topic: 'room/a', payload: 'o2' }])
  proxy.reopen()

  t.same((await resent).map(({ offset, repeat }) => [offset, repeat]), [[3, false], [4, false]], 'told the offsets the call that ran gave them')
  t.same(await history(other, 'room/a'), [[1, 'a1'], [2, 'o1'], [3, 'a2'], [4, 'a3'], [5, 'o2']], 'stored once')
})
