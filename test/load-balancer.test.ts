// The cluster example of docs/cluster.md, for real: Redis, three nodes, and HAProxy with
// config/examples/haproxy.cfg in front (TCP for MQTT, HTTP upgrade for WebSocket).
import t from 'tap'
import { collect, openUrl, sleep, waitFor } from './helpers/broker.js'
import { spawnBroker, type BrokerProcess } from './helpers/process.js'
import { startHaproxy } from './helpers/haproxy.js'
import { startRedis } from './helpers/redis.js'

t.test('three nodes behind HAProxy act as one broker, and one can leave', async (t) => {
  const redis = await startRedis(t)
  const nodes = await Promise.all([1, 2, 3].map((i) => spawnBroker(t, ['--redis', redis.url], { NODE_ID: `lb-${i}`, LOG_LEVEL: 'warn' }))) as BrokerProcess[]
  const { mqttPort: lbMqtt, httpPort: lbHttp } = await startHaproxy(t, nodes)

  const { client: browser } = await openUrl(t, `ws://127.0.0.1:${lbHttp}/mqtt`, { clientId: 'browser', clean: false })
  await browser.subscribeAsync('lb/#', { qos: 1 })
  const got = collect(browser)
  const devices = await Promise.all(Array.from({ length: 6 }, async (_, i) => (await openUrl(t, `mqtt://127.0.0.1:${lbMqtt}`, { clientId: `device-${i}` })).client))
  await sleep(300)
  await Promise.all(devices.map((d, i) => d.publishAsync(`lb/${i}`, String(i), { qos: 1 })))
  await waitFor(() => got.length === devices.length, 'a message from every device')
  t.same(got.map((m) => m.payload).sort(), ['0', '1', '2', '3', '4', '5'], 'whichever node each device landed on')

  // a node leaves (rolling deploy): new connections go to the others
  const leaving = nodes[0] as BrokerProcess
  leaving.child.kill('SIGTERM')
  t.equal(await leaving.exited, 0)
  await sleep(2500) // the health check takes it out of rotation
  for (let i = 0; i < 6; i++) {
    const { connack } = await openUrl(t, `mqtt://127.0.0.1:${lbMqtt}`, { clientId: `after-${i}` })
    t.equal(connack.returnCode, 0, `connection ${i} through the balancer after the node left`)
  }
})
