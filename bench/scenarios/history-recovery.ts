// History recovery: 10,000 messages stored on one history topic, then the time a reader that
// missed all of them takes to read them back over HTTP (GET /api/v1/history?since=0), as the
// SDK does after a reconnect. Only targets that keep history of bench/history/+ measure it.
import { generate } from 'mqtt-packet'
import { waitUntil } from '../load/wait.js'
import type { Scenario } from './types.js'

const messages = 10_000
const pageSize = 10_000
const topic = 'bench/history/0'

export function historyRecovery (id: string): Scenario {
  return {
    id,
    title: 'history recovery',
    metrics: () => [{ key: id, label: `recover ${messages.toLocaleString('en')} missed messages of a history topic over HTTP (ms)`, better: 'lower', digits: 0 }],
    timeoutMs: () => 60_000,
    run: async (context) => {
      const wsUrl = context.target.publish.wsUrl
      if (wsUrl === undefined) return { values: {}, notes: ['no HTTP side'] }
      const historyUrl = `${new URL(wsUrl).origin.replace(/^ws/, 'http')}/api/v1/history`
      const probe = await fetch(`${historyUrl}?topic=${encodeURIComponent(topic)}&limit=1`).then((res) => res.status, () => 0)
      if (probe !== 200) return { values: {}, notes: [`${context.targetName} keeps no history of ${topic}`] }

      context.status('storing')
      const publisher = await context.connect('publisher', 'tcp', `bench-${id}-pub`)
      let acked = 0
      publisher.onPuback = () => { acked++ }
      const payload = Buffer.alloc(context.settings.payloadBytes, 0x61)
      for (let i = 0; i < messages; i++) {
        publisher.send(generate({ cmd: 'publish', topic, payload, qos: 1, messageId: (i % 65_000) + 1, retain: false, dup: false }, { protocolVersion: context.protocolVersion }))
        // a window of 100 unacknowledged messages
        if (i - acked >= 100 && !await waitUntil(() => i - acked < 100, { timeoutMs: 10_000, signal: context.signal })) throw new Error('PUBACKs stopped')
      }
      if (!await waitUntil(() => acked >= messages, { timeoutMs: 30_000, signal: context.signal })) throw new Error(`only ${acked} PUBACKs`)

      context.status('recovering')
      const startedAt = performance.now()
      let since = 0
      let read = 0
      for (;;) {
        const page = await (await fetch(`${historyUrl}?topic=${encodeURIComponent(topic)}&limit=${pageSize}&since=${since}`)).json() as { offset: number, recovered: boolean, messages: Array<{ offset: number }> }
        if (!page.recovered) throw new Error('not recovered')
        read += page.messages.length
        since = page.messages.at(-1)?.offset ?? since
        if (page.messages.length === 0 || since >= page.offset) break
      }
      const elapsedMs = performance.now() - startedAt
      return { values: { [id]: elapsedMs }, notes: read === messages ? [] : [`read ${read} of ${messages}`] }
    }
  }
}
