// A persistent session gets a topic's QoS 1 messages in the order they were published
// [MQTT-4.6.0-6], on a Redis Cluster too: there, aedes-persistence-redis writes each message's
// session copy (outgoing:<client>:<broker>:<counter>) to whichever master holds that key's
// slot, so one message's update can resolve after the next one's. Here a master is paused
// while the first message's copy is written to it; the second message's keys are elsewhere.
import t, { type Test } from 'tap'
import { brokerUrl, collect, openUrl, sleep, startBroker, waitFor } from './helpers/broker.js'
import { startRedisCluster } from './helpers/redis-cluster.js'

// CRC16/XMODEM of a key's hash tag or whole name, as Redis Cluster places keys
function keySlot (key: string): number {
  const open = key.indexOf('{')
  const close = open === -1 ? -1 : key.indexOf('}', open + 1)
  const hashed = close > open + 1 ? key.slice(open + 1, close) : key
  let crc = 0
  for (const byte of Buffer.from(hashed)) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xFFFF : (crc << 1) & 0xFFFF
  }
  return crc % 16384
}

t.test('Redis Cluster: a persistent session gets QoS 1 messages in publish order while a master holding one message\'s copy is slow', async (t) => {
  await inPublishOrder(t, { retainSecond: false })
})

// A retained message delivered live keeps its RETAIN flag for a v5 subscription with Retain As
// Published [MQTT-3.3.1-13]; Aedes writes such a message without updating its session copy, so
// it must still wait for the write of the message before it
t.test('Redis Cluster: a retained message delivered live with Retain As Published does not pass the message before it', async (t) => {
  await inPublishOrder(t, { retainSecond: true })
})

async function inPublishOrder (t: Test, { retainSecond }: { retainSecond: boolean }): Promise<void> {
  const cluster = await startRedisCluster(t)
  const broker = await startBroker(t, { redis: { url: cluster.url } })
  const clientId = 'in-order'
  const { client: sub } = await openUrl(t, brokerUrl(broker, 'tcp'), { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 300 } })
  await sub.subscribeAsync('in-order/#', { qos: 1, rap: true })
  const got = collect(sub)

  // slot -> the port of its master
  const ranges = await slotMasters(cluster)
  const masterOf = (key: string): number => {
    const slot = keySlot(key)
    return (ranges.find(([from, to]) => slot >= from && slot <= to) as [number, number, number])[2]
  }
  const aedes = broker.aedes as unknown as { id: string, counter: number, publish: (packet: object, done: (err?: Error) => void) => void }
  const copyOf = (counter: number): string => `outgoing:${clientId}:${aedes.id}:${counter}`
  const sharedOf = (counter: number): string[] => [`packet:${aedes.id}:${counter}`, `packet:${aedes.id}:${counter}:offlineCount`]
  const queueMaster = masterOf(`outgoing:${clientId}`)
  // the first counter from the next one that `fits`
  const nextFitting = (fits: (counter: number) => boolean): number => {
    let counter = aedes.counter + 1
    while (!fits(counter)) counter++
    return counter
  }
  // publishes the message that takes `counter`: the counters before are spent on QoS 0 messages
  // nobody subscribes to (nothing stored), synchronously up to the publish
  const publishAt = (counter: number, payload: string, retain = false): Promise<void> => {
    t.ok(aedes.counter < counter, `counter ${counter} is still free`)
    while (aedes.counter + 1 < counter) aedes.publish({ topic: 'nobody/listens', payload: Buffer.alloc(0), qos: 0 }, () => {})
    return new Promise((resolve, reject) => aedes.publish({ topic: 'in-order/m', payload: Buffer.from(payload), qos: 1, retain }, (err) => err === undefined || err === null ? resolve() : reject(err)))
  }

  // the first message: its session copy alone on a master (not the retained messages' either),
  // paused for writes before it is sent
  const firstCounter = nextFitting((counter) => {
    const master = masterOf(copyOf(counter))
    return master !== queueMaster && master !== masterOf('retained') && !sharedOf(counter).some((key) => masterOf(key) === master)
  })
  const paused = masterOf(copyOf(firstCounter))
  await cluster.cli(paused, 'CLIENT', 'PAUSE', '2000', 'WRITE')
  const first = publishAt(firstCounter, '0')
  await sleep(100)
  // the second message: none of its keys on the paused master
  const second = publishAt(nextFitting((counter) => ![copyOf(counter), ...sharedOf(counter)].some((key) => masterOf(key) === paused)), '1', retainSecond)
  await waitFor(() => got.length >= 2, 'both messages', 10_000)
  await Promise.all([first, second])
  t.same(got.map((m) => m.payload), ['0', '1'], 'in the order published')
  t.same(got.map((m) => m.packet.retain), [false, retainSecond], 'each with the RETAIN flag it was published with')
}

/** [first slot, last slot, master port] of every slot range. */
async function slotMasters (cluster: Awaited<ReturnType<typeof startRedisCluster>>): Promise<Array<[number, number, number]>> {
  const ranges: Array<[number, number, number]> = []
  const masters = (await cluster.nodes()).filter((node) => node.role === 'master')
  for (const master of masters) {
    const line = (await cluster.cli(master.port, 'CLUSTER', 'NODES')).split('\n').find((l) => l.includes('myself')) as string
    for (const range of line.split(' ').slice(8)) {
      const [from, to] = range.split('-').map(Number) as [number, number | undefined]
      if (Number.isInteger(from)) ranges.push([from, to ?? from, master.port])
    }
  }
  return ranges
}

// An offline session's queue on a Redis Cluster: aedes-persistence-redis stores each message's
// copy on its slot's master before queueing it, and Aedes handles a publisher's messages in
// flight together at once, so the queue may be appended to out of the order published
t.test('Redis Cluster: an offline session\'s queue keeps the order of a publisher\'s messages in flight together', async (t) => {
  const cluster = await startRedisCluster(t)
  const broker = await startBroker(t, { redis: { url: cluster.url } })
  const url = brokerUrl(broker, 'tcp')
  const clientId = 'offline-order'
  const { client: sub } = await openUrl(t, url, { clientId, clean: false })
  await sub.subscribeAsync('offline-order/#', { qos: 1 })
  await sub.endAsync()
  const { client: pub } = await openUrl(t, url, { clientId: 'offline-order-publisher' })
  const sent = Array.from({ length: 40 }, (_, n) => String(n))
  // written back to back: the broker reads them together
  await Promise.all(sent.map((n) => pub.publishAsync('offline-order/m', n, { qos: 1 })))
  let got: ReturnType<typeof collect> = []
  const { client: resumed } = await openUrl(t, url, { clientId, clean: false }, (client) => { got = collect(client) })
  await waitFor(() => got.length >= sent.length, 'every queued message', 10_000)
  await sleep(200)
  t.same(got.map((m) => m.payload), sent, 'the queue in the order published')
  await resumed.endAsync()
})
