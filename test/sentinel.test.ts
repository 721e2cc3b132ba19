// Redis Sentinel: nodes find the master through a real sentinel (redis-server --sentinel).
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import t from 'tap'
import { collect, connectClient, startBroker, waitFor } from './helpers/broker.js'
import { freePort } from './helpers/loopback.js'
import { startRedis } from './helpers/redis.js'
import { diesWithTest } from './helpers/children.js'

t.test('two in-process nodes reach Redis through Sentinel and act as one broker', async (t) => {
  const redis = await startRedis(t)
  const sentinelPort = await freePort()
  const dir = t.testdir({})
  writeFileSync(`${dir}/sentinel.conf`, `port ${sentinelPort}\nbind 127.0.0.1\nsentinel monitor primary 127.0.0.1 ${redis.port} 1\n`)
  const sentinel = diesWithTest(spawn('redis-server', [`${dir}/sentinel.conf`, '--sentinel'], { stdio: 'ignore' }))
  t.teardown(() => { sentinel.kill('SIGKILL') })
  await new Promise((resolve) => setTimeout(resolve, 500))
  // the URL's host is a dead end on purpose: only the sentinel knows where the master is
  const redisConfig = { url: 'redis://127.0.0.1:1', sentinel: { name: 'primary', nodes: [`127.0.0.1:${sentinelPort}`] } }
  const a = await startBroker(t, { redis: redisConfig, nodeId: 'sentinel-a' })
  const b = await startBroker(t, { redis: redisConfig, nodeId: 'sentinel-b' })
  const sub = await connectClient(t, b, 'tcp')
  await sub.subscribeAsync('via/sentinel', { qos: 1 })
  const got = collect(sub)
  await new Promise((resolve) => setTimeout(resolve, 200))
  const pub = await connectClient(t, a, 'tcp')
  await pub.publishAsync('via/sentinel', 'found the master', { qos: 1 })
  await waitFor(() => got.length === 1, 'a message across nodes')
  t.equal(got[0]?.payload, 'found the master')
})
