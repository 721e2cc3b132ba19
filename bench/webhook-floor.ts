// `node dist/bench/webhook-floor.js <idle|post|pipeline> <url> <rate> <batch>`: the webhook work
// without a broker, for bench/webhooks.ts's floor rows, run until SIGTERM. `post`: bodies of
// `batch` message events built once, each request signed and sent as the sender does (the
// HTTP client and the bytes alone); `pipeline`: every event built (the broker's event JSON)
// and queued in the memory outbox, sent by the endpoint sender: the webhooks of a node, minus
// the MQTT broker they listen to; `idle`: the pacing alone (a timer every 10 ms), subtracted.
import { Registry } from 'prom-client'
import { defaultOptions } from '../src/broker/config/defaults.js'
import { createLogger } from '../src/broker/observability/logger.js'
import { MessageEventJson, type EventBytes } from '../src/broker/webhooks/events.js'
import { postSigned } from '../src/broker/webhooks/http-post.js'
import { MemoryOutbox } from '../src/broker/webhooks/outbox.js'
import { batchBody, EndpointSender } from '../src/broker/webhooks/sender.js'
import { WebhookMetrics } from '../src/broker/webhooks/webhook-metrics.js'
import { sleep } from './process.js'

const [mode, url = '', rateText = '10000', batchText = String(defaultOptions.webhooks.batchSize)] = process.argv.slice(2)
const rate = Number(rateText)
const batchSize = Number(batchText)
const secret = 'bench-webhook-secret-0123456789abcdef'
const payload = Buffer.alloc(64, 'x')
const messages = new MessageEventJson(JSON.stringify('floor'))
const client = MessageEventJson.client('bench-pub', null)
const event = (n: number): string => messages.build(`bench/t${n % 10}`, 0, false, client, payload)
let stopped = false
process.once('SIGTERM', () => { stopped = true })

/** Calls `tick(due)` every 10 ms with how many events are due since the last call. */
async function paced (tick: (due: number) => void): Promise<void> {
  const started = performance.now()
  let done = 0
  while (!stopped) {
    const due = Math.floor((performance.now() - started) / 1000 * rate)
    tick(due - done)
    done = due
    await sleep(10)
  }
}

if (mode === 'idle') {
  await paced(() => {})
} else if (mode === 'post') {
  const body = batchBody([{ id: '1', events: Array.from({ length: batchSize }, (_, n) => event(n)).join(','), count: batchSize, enqueuedAt: 0 }])
  let owed = 0
  let inFlight = false
  const send = (): void => {
    if (inFlight || owed < batchSize) return
    owed -= batchSize
    inFlight = true
    postSigned({ url, body, secret, timeoutMs: 5000, headers: { 'broker-delivery': 'x', 'broker-attempt': '1' } }).finally(() => { inFlight = false; send() })
  }
  await paced((due) => { owed += due; send() })
} else {
  const outbox = new MemoryOutbox(1_000_000, 10, batchSize)
  const metrics = new WebhookMetrics(new Registry(), ['floor'], (name) => outbox.pending(name))
  const sender = new EndpointSender({ name: 'floor', url, secret }, outbox, { ...defaultOptions.webhooks, batchSize }, metrics, createLogger('warn', 'floor'))
  sender.start()
  let n = 0
  // as the broker queues them: plain-ASCII payloads copied as bytes
  await paced((due) => { for (let i = 0; i < due; i++) outbox.appendBytes('floor', messages.prepare(`bench/t${n++ % 10}`, 0, false, client, payload) as EventBytes) })
  await sender.close()
}
process.exit(0)
