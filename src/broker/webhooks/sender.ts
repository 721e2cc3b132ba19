// Sends one endpoint's events: batches from the outbox, signed, one request in flight per
// endpoint (which keeps its events in order, per topic and overall), retried with capped,
// jittered backoff, dead-lettered once undelivered for deadLetterAfterMs.
import { randomUUID } from 'node:crypto'
import type { Logger } from '../observability/logger.js'
import { postSigned } from './http-post.js'
import { eventCount, type OutboxEntry, type WebhookOutbox } from './outbox.js'

export interface WebhookTarget {
  name: string
  url: string
  secret: string
}

export interface DeliveryOptions {
  batchSize: number
  batchMaxBytes: number
  batchDelayMs: number
  timeoutMs: number
  retryInitialMs: number
  retryMaxMs: number
  deadLetterAfterMs: number
}

/** What a sender reports, for the per-endpoint metrics. */
export interface DeliveryObserver {
  sent: (endpoint: string, events: number, seconds: number) => void
  failed: (endpoint: string) => void
  retried: (endpoint: string) => void
  deadLettered: (endpoint: string, events: number) => void
}

/**
 * The wait before retry number `attempt` (0 = the first): doubling from `initialMs`, capped
 * at `maxMs`, its upper half random ("equal jitter"), so endpoints recovering together are not
 * hit by every node at once.
 */
export function backoffDelay (attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30))
  return ceiling / 2 + random() * ceiling / 2
}

const bodyOpen = Buffer.from('{"events":[')
const bodyClose = Buffer.from(']}')
const bodyComma = Buffer.from(',')

/** The request body in parts, written and signed as they are: the entries' JSON, not parsed again nor copied into one buffer. */
export function batchBody (entries: readonly OutboxEntry[]): Buffer[] {
  const parts: Buffer[] = [bodyOpen]
  for (const entry of entries) {
    if (parts.length > 1) parts.push(bodyComma)
    parts.push(typeof entry.events === 'string' ? Buffer.from(entry.events) : entry.events)
  }
  parts.push(bodyClose)
  return parts
}

// how often a node that does not hold an endpoint's lease looks again
const leaseCheckMs = 1000
// the longest an idle sender sleeps between looks at the outbox (appends wake it on this node)
const idleMs = 1000

export class EndpointSender {
  private closed = false
  private running: Promise<void> | null = null
  private readonly wakeOnClose = new Set<() => void>()

  constructor (
    private readonly target: WebhookTarget,
    private readonly outbox: WebhookOutbox,
    private readonly options: DeliveryOptions,
    private readonly observer: DeliveryObserver,
    private readonly logger: Logger
  ) {}

  start (): void {
    this.running ??= this.loop()
  }

  async close (): Promise<void> {
    this.closed = true
    for (const wake of this.wakeOnClose) wake()
    await this.running
  }

  private async loop (): Promise<void> {
    const { name } = this.target
    while (!this.closed) {
      try {
        if (!await this.outbox.acquire(name)) {
          await this.pause(leaseCheckMs)
          continue
        }
        const { entries: batch, full } = await this.outbox.take(name, this.options.batchSize, this.options.batchMaxBytes)
        const oldest = batch[0]
        if (oldest === undefined) {
          await this.outbox.appended(name, idleMs)
          continue
        }
        // a batch not yet full waits for more, up to batchDelayMs after its first event
        const wait = oldest.enqueuedAt + this.options.batchDelayMs - Date.now()
        if (!full && wait > 0) {
          await this.pause(wait)
          continue
        }
        await this.deliver(batch)
      } catch (err) {
        // the outbox is away (Redis down): its commands failed, the entries stay in it
        this.logger.warn({ event: 'webhook.outbox-failed', endpoint: name, reason: (err as Error).message }, 'webhook outbox unavailable, retrying')
        await this.pause(this.options.retryInitialMs)
      }
    }
  }

  /** Sends `batch` until it is acknowledged, dead-lettered, or another node took the endpoint over. */
  private async deliver (batch: OutboxEntry[]): Promise<void> {
    const { name, url, secret } = this.target
    const body = batchBody(batch)
    const events = eventCount(batch)
    const oldest = batch[0] as OutboxEntry
    for (let attempt = 0; !this.closed; attempt++) {
      const started = performance.now()
      let failure: string | null
      try {
        const { status } = await postSigned({ url, body, secret, timeoutMs: this.options.timeoutMs, headers: { 'broker-delivery': randomUUID(), 'broker-attempt': String(attempt + 1) } })
        failure = status >= 200 && status < 300 ? null : `HTTP ${status}`
      } catch (err) {
        failure = (err as Error).name === 'TimeoutError' ? 'timeout' : (err as Error).message
      }
      if (failure === null) {
        await this.outbox.ack(name, batch)
        this.observer.sent(name, events, (performance.now() - started) / 1000)
        return
      }
      this.observer.failed(name)
      if (Date.now() - oldest.enqueuedAt >= this.options.deadLetterAfterMs) {
        this.logger.warn({ event: 'webhook.dead-lettered', endpoint: name, events, reason: failure }, 'webhook events undelivered for too long: dead-lettered')
        await this.outbox.deadLetter(name, batch, failure)
        this.observer.deadLettered(name, events)
        return
      }
      if (attempt === 0) this.logger.warn({ event: 'webhook.failed', endpoint: name, reason: failure }, 'webhook request failed, retrying with backoff')
      await this.pause(Math.min(backoffDelay(attempt, this.options.retryInitialMs, this.options.retryMaxMs), Math.max(0, oldest.enqueuedAt + this.options.deadLetterAfterMs - Date.now())))
      // another node took the endpoint over (this one was partitioned): it sends these entries
      if (this.closed || !await this.outbox.acquire(name)) return
      this.observer.retried(name)
    }
  }

  /** Sleeps `ms`, or less if the sender closes. */
  private async pause (ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer)
        this.wakeOnClose.delete(wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      this.wakeOnClose.add(wake)
    })
  }
}
