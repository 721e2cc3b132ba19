// Publishes as fast as the broker takes messages, in pre-encoded batches, with two limits:
// each wire's backpressure, and an end-to-end window (messages sent but not yet received by
// the subscribers). The window keeps the broker's queues bounded, so the rate measured is the
// rate it sustains, not how fast its buffers fill. QoS 1 adds a per-publisher PUBACK window.
import type { BenchClient } from '../load/bench-client.js'
import type { PublishTemplate } from '../load/publish-template.js'

export interface FloodOptions {
  publishers: Array<{ client: BenchClient, template: PublishTemplate }>
  /** Receiving clients: each received chunk may open the window, so they wake the pump. */
  receivers: BenchClient[]
  /** Messages fully received so far (fan-out: deliveries divided by subscribers). */
  received: () => number
  batchMessages: number
  windowMessages: number
  /** QoS 1: the most messages a publisher may have sent without their PUBACK. */
  inflightPerPublisher?: number
}

interface Lane {
  client: BenchClient
  template: PublishTemplate
  /** QoS 0: one pre-built batch, written again and again. */
  fixedBatch: Buffer | null
  sent: number
  acked: number
  nextMessageId: number
  waitingForDrain: boolean
}

// A full window with no message received for this long counts as loss (QoS 0 may drop).
const stallMs = 500

export class Flood {
  sent = 0
  /** Messages written off as lost after a stall. */
  writtenOff = 0
  stalls = 0
  private running = false
  private scheduled = false
  private readonly lanes: Lane[]
  private stallTimer: NodeJS.Timeout | null = null

  constructor (private readonly options: FloodOptions) {
    this.lanes = options.publishers.map(({ client, template }) => {
      const lane: Lane = {
        client,
        template,
        fixedBatch: template.qos === 0 ? template.repeated(options.batchMessages) : null,
        sent: 0,
        acked: 0,
        nextMessageId: 1,
        waitingForDrain: false
      }
      client.onDrain = () => {
        lane.waitingForDrain = false
        this.kick()
      }
      client.onPuback = () => { lane.acked++ }
      client.afterData = () => this.kick()
      return lane
    })
    for (const receiver of options.receivers) receiver.afterData = () => this.kick()
  }

  start (): void {
    this.running = true
    let lastReceived = -1
    this.stallTimer = setInterval(() => {
      const received = this.options.received()
      const outstanding = this.sent - received - this.writtenOff
      if (received === lastReceived && outstanding > 0) {
        this.writtenOff += outstanding
        this.stalls++
        this.kick()
      }
      lastReceived = received
    }, stallMs)
    this.kick()
  }

  stop (): void {
    this.running = false
    if (this.stallTimer !== null) clearInterval(this.stallTimer)
    this.stallTimer = null
  }

  private kick (): void {
    if (this.scheduled || !this.running) return
    this.scheduled = true
    // One pass per event-loop turn, so that received data is read between passes.
    setImmediate(() => this.pump())
  }

  private pump (): void {
    this.scheduled = false
    if (!this.running) return
    const { batchMessages, windowMessages, inflightPerPublisher } = this.options
    let wrote = false
    for (const lane of this.lanes) {
      if (lane.waitingForDrain || lane.client.closed) continue
      let credit = windowMessages - (this.sent - this.options.received() - this.writtenOff)
      if (inflightPerPublisher !== undefined) credit = Math.min(credit, inflightPerPublisher - (lane.sent - lane.acked))
      // QoS 0 writes only whole pre-built batches. QoS 1 sends whatever its credit allows at
      // once, as a real client would: holding back for bigger batches stalls brokers that
      // leave Nagle's algorithm on (small PUBACKs then wait for the client's delayed ACKs).
      const count = Math.min(batchMessages, credit)
      if (count <= 0 || (lane.fixedBatch !== null && count < batchMessages)) continue
      const bytes = lane.fixedBatch ?? this.buildBatch(lane, count)
      lane.sent += count
      this.sent += count
      wrote = true
      if (!lane.client.send(bytes)) lane.waitingForDrain = true
    }
    if (wrote) this.kick()
  }

  private buildBatch (lane: Lane, count: number): Buffer {
    const size = lane.template.length
    const batch = Buffer.allocUnsafe(size * count)
    for (let i = 0; i < count; i++) {
      lane.template.writeInto(batch, i * size, lane.nextMessageId)
      lane.nextMessageId = lane.nextMessageId === 0xffff ? 1 : lane.nextMessageId + 1
    }
    return batch
  }
}
