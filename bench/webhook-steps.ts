// `node dist/bench/webhook-steps.js`: the ladder's rungs (bench/webhook-ladder.ts) in a tight
// loop, one process, no broker: what each step costs a message with everything hot in the
// caches, to set beside what it costs inside the broker (bench/webhooks.ts --ladder). The
// memory outbox's batches are taken and acknowledged every 1,000 events, as its sender does;
// the client piece is one constant (the broker's is a WeakMap lookup).
import { Registry } from 'prom-client'
import type { Client } from 'aedes'
import { resolveConfig } from '../src/broker/config/config.js'
import { createLogger } from '../src/broker/observability/logger.js'
import { MessageEventJson } from '../src/broker/webhooks/events.js'
import { MemoryOutbox } from '../src/broker/webhooks/outbox.js'
import { signBody } from '../src/broker/webhooks/signing.js'
import { batchBody } from '../src/broker/webhooks/sender.js'
import { Webhooks } from '../src/broker/webhooks/webhooks.js'
import { ladderEmitter, type LadderRung } from './webhook-ladder.js'

const messages = 1_000_000
const repeats = 5
const secret = 'bench-webhook-secret-0123456789abcdef'
const config = resolveConfig({ webhooks: { endpoints: [{ name: 'bench', url: 'http://127.0.0.1:9/events', secret, events: ['message.published'], topics: ['bench/#'] }] } }).webhooks
const piece = MessageEventJson.client('bench-pub', null)
const client = {} as Client
const topics = Array.from({ length: 10 }, (_, n) => `bench/t${n}`)
const payload = Buffer.alloc(64, 'x')

/** CPU ns per message of `rung` (`sign`: R4 and each batch signed), the least of `repeats` runs. */
async function nsPerMessage (rung: LadderRung | 'none'): Promise<number> {
  const outbox = new MemoryOutbox(config.maxPendingPerEndpoint, config.maxDeadLetters, config.batchSize)
  const webhooks = new Webhooks(config, outbox, 'steps', new Registry(), createLogger('warn', 'steps'), {})
  const emit = ladderEmitter(webhooks, rung === 'sign' ? 'queue' : rung === 'none' ? 'plumbing' : rung)
  const packet = { topic: '', qos: 0, retain: false, payload }
  let best = Infinity
  for (let repeat = 0; repeat < repeats; repeat++) {
    const started = process.cpuUsage()
    for (let n = 0; n < messages; n++) {
      if (rung !== 'none') {
        packet.topic = topics[n % 10] as string
        emit(packet, client, () => piece)
      }
      if (n % 1000 === 999 && (rung === 'queue' || rung === 'sign')) {
        const { entries } = await outbox.take('bench', config.batchSize, config.batchMaxBytes)
        if (rung === 'sign') signBody(secret, 0, batchBody(entries))
        await outbox.ack('bench', entries)
      }
    }
    const used = process.cpuUsage(started)
    best = Math.min(best, (used.user + used.system) * 1000 / messages)
  }
  return best
}

const rows: string[] = []
let below = 0
let plumbing = 0
for (const rung of ['none', 'plumbing', 'copy', 'stream', 'match', 'make', 'queue', 'sign'] as const) {
  const ns = await nsPerMessage(rung)
  // R3' and R3'' stand beside R1, not on it
  const aside = rung === 'copy' || rung === 'stream'
  rows.push(`| ${rung} | ${ns.toFixed(0)} | ${(ns - (aside ? plumbing : below)).toFixed(0)} |`)
  if (rung === 'plumbing') plumbing = ns
  if (!aside) below = ns
}
process.stdout.write(['CPU ns per message, tight loop, the least of 5 runs of 1,000,000', '', '| rung | ns | step from the rung below |', '|---|--:|--:|', ...rows, ''].join('\n'))
