// A canary pair of clients that publishes and receives at QoS 1 while a test attacks the
// broker: whatever the attack, it must lose nothing.
import type { BrokerHandle } from '../../src/server.js'
import { connectClient, sleep, waitFor } from './broker.js'
import type { Teardown } from './loopback.js'


/** Publishes numbered QoS 1 messages to itself until stopped; `check` asserts zero loss. */
export async function startCanary (t: Teardown, broker: BrokerHandle, options = {}): Promise<{ stop: () => Promise<{ sent: number, missing: number[] }> }> {
  const sub = await connectClient(t, broker, 'tcp', { ...options, clientId: 'canary-sub', clean: false })
  await sub.subscribeAsync('canary/#', { qos: 1 })
  const got = new Set<number>()
  sub.on('message', (_topic, payload) => got.add(Number(payload.toString())))
  const pub = await connectClient(t, broker, 'tcp', { ...options, clientId: 'canary-pub' })
  const acked: number[] = []
  let running = true
  const loop = (async () => {
    for (let i = 0; running; i++) {
      await pub.publishAsync('canary/n', String(i), { qos: 1 })
      acked.push(i)
      await sleep(5)
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      await waitFor(() => acked.every((i) => got.has(i)), 'every canary message', 5000).catch(() => {})
      return { sent: acked.length, missing: acked.filter((i) => !got.has(i)) }
    }
  }
}
