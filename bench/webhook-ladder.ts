// The rungs of `node dist/bench/webhooks.js --ladder`: stand-ins for the webhooks' message
// path, each doing a little more of the product's work, so that every rung's broker, measured
// beside the broker without webhooks in the same windows, prices one step. Imported only by the
// bench's stripped copy of dist/ (webhooks.ts, ladderCheckout), which reads the rung from
// BENCH_WEBHOOK_RUNG, set per broker by the bench: the product's config never sees it.
import type { Client } from 'aedes'
import type { ClientPiece, EventBytes, MessageEventJson, PublishedMessage } from '../src/broker/webhooks/events.js'
import type { OutboxEntry, WebhookOutbox } from '../src/broker/webhooks/outbox.js'
import type { Webhooks } from '../src/broker/webhooks/webhooks.js'

export const ladderRungs = {
  plumbing: 'R1: the `published` hook calls done(null) only',
  match: 'R2: + the endpoint\'s topic match and the client piece, no event',
  make: 'R3: + the event made (prepare, writeTo into one reused buffer), no outbox',
  copy: 'R3\': R1 + a 333-byte Buffer.copy into a reused buffer',
  stream: 'R3\'\': R1 + a 333-byte Buffer.copy into a 512 KB ring, as much memory as the outbox\'s spare chunks',
  append: 'R4-: R3 + the memory outbox, no sender: the hook takes and acks all queued every 1,000 events',
  tick: 'R4~: R3 + the memory outbox, no sender: a 100 ms interval takes and acks all queued',
  loop: 'R4=: R3 + the memory outbox and the sender\'s loop, its deliver only acking (no request made)',
  queue: 'R4: + the memory outbox, a sender that acks (nothing signed or sent)',
  sign: 'R5: + each request signed (HMAC), not written to the socket'
} as const

export type LadderRung = keyof typeof ladderRungs

/** This broker's rung; undefined: the product as built (what the full broker runs). */
export const ladderRung = process.env.BENCH_WEBHOOK_RUNG as LadderRung | undefined

/** What the stand-ins read of Webhooks' own (TypeScript-private) fields. */
interface WebhooksInside {
  messageEndpoints: Array<{ name: string, wantsTopic: (topic: string) => boolean }>
  messageEvents: MessageEventJson
  outbox: WebhookOutbox
  senders: Array<{ closed: boolean, deliver: (batch: OutboxEntry[]) => Promise<void> }>
}

type Emit = (message: PublishedMessage, client: Client, clientPiece: (client: Client) => ClientPiece) => Promise<void> | null

// where R3 and R3' write: one buffer, written over by every message
const scratch = Buffer.allocUnsafeSlow(64 * 1024)
// where R3'' writes, each message after the last: the memory the outbox's chunks cycle through (8 spare of 64 KB)
const ring = Buffer.allocUnsafeSlow(512 * 1024)
let ringAt = 0
// an event's size for a 64-byte payload (the bench's), its bytes written once
const eventLike = Buffer.alloc(333, 'e')
// what R2 found, kept where the optimizer cannot prove it unused
export const seen: { piece: ClientPiece | null } = { piece: null }

/** The message path of `rung`, in place of webhooks.emitMessage (from R4 on, the product's own). */
export function ladderEmitter (webhooks: Webhooks, rung = ladderRung): Emit {
  const inside = webhooks as unknown as WebhooksInside
  switch (rung) {
    case 'plumbing':
      return () => null
    case 'copy':
      return () => {
        eventLike.copy(scratch, 0)
        return null
      }
    case 'stream':
      return () => {
        if (ringAt + eventLike.length > ring.length) ringAt = 0
        ringAt += eventLike.copy(ring, ringAt)
        return null
      }
    case 'match':
      return (message, client, clientPiece) => {
        for (const endpoint of inside.messageEndpoints) {
          if (endpoint.wantsTopic(message.topic)) seen.piece = clientPiece(client)
        }
        return null
      }
    case 'make':
      return (message, client, clientPiece) => {
        let event: EventBytes | string | null = null
        for (const endpoint of inside.messageEndpoints) {
          if (!endpoint.wantsTopic(message.topic) || event !== null) continue
          const { topic, qos, retain, payload } = message
          const piece = clientPiece(client)
          event = inside.messageEvents.prepare(topic, qos, retain, piece, payload) ?? inside.messageEvents.build(topic, qos, retain, piece, payload)
          if (typeof event === 'string') scratch.write(event, 0)
          else event.writeTo(scratch, 0)
        }
        return null
      }
    case 'append':
    case 'tick': {
      // the senders never start: their loop ends at its first check
      for (const sender of inside.senders) sender.closed = true
      const endpoint = (inside.messageEndpoints[0] as { name: string }).name
      const drain = (): void => { void inside.outbox.take(endpoint, Infinity).then(({ entries }) => inside.outbox.ack(endpoint, entries)) }
      if (rung === 'tick') {
        setInterval(drain, 100).unref()
        return (message, client, clientPiece) => webhooks.emitMessage(message, client, clientPiece)
      }
      let queued = 0
      return (message, client, clientPiece) => {
        webhooks.emitMessage(message, client, clientPiece)
        if (++queued % 1000 === 0) drain()
        return null
      }
    }
    case 'loop': {
      const endpoint = (inside.messageEndpoints[0] as { name: string }).name
      for (const sender of inside.senders) sender.deliver = async (batch) => { await inside.outbox.ack(endpoint, batch) }
      return (message, client, clientPiece) => webhooks.emitMessage(message, client, clientPiece)
    }
    default:
      return (message, client, clientPiece) => webhooks.emitMessage(message, client, clientPiece)
  }
}
