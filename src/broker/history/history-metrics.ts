// The history's metrics: messages stored, repeats skipped, stores that failed, reads and
// recoveries by outcome, and the length of the streams. Labels are bounded: never a topic.
import { Counter, Gauge, type Registry } from 'prom-client'

export type HistoryReadVia = 'http' | 'sse' | 'mqtt'

export class HistoryMetrics {
  // counted on the publish path as a number, read at a scrape (as the messages_in counters are)
  private appendedCount = 0
  private readonly duplicates: Counter
  private readonly appendFailures: Counter
  private readonly reads: Counter
  private readonly recoveries: Counter

  constructor (registry: Registry, lengths: () => Promise<number[]>) {
    const registers = [registry]
    const appendedCount = (): number => this.appendedCount
    new Counter({
      name: 'realtime_broker_history_appended_total',
      help: 'Messages stored in a topic history by this node',
      registers,
      collect () {
        this.reset()
        this.inc(appendedCount())
      }
    })
    this.duplicates = new Counter({ name: 'realtime_broker_history_duplicates_total', help: 'Publishes on a history topic acknowledged but not delivered: their idempotency key was seen within the window', registers })
    this.appendFailures = new Counter({ name: 'realtime_broker_history_append_failures_total', help: 'Messages of a history topic delivered without being stored (the store failed)', registers })
    this.reads = new Counter({ name: 'realtime_broker_history_reads_total', help: 'History reads served by this node, by way', labelNames: ['via'], registers })
    this.recoveries = new Counter({ name: 'realtime_broker_history_recoveries_total', help: 'Reads from a position, by outcome: ok, or not_recovered (the reader must resync)', labelNames: ['result'], registers })
    for (const result of ['ok', 'not_recovered']) this.recoveries.labels(result).inc(0)
    // one sample serves the three gauges of a scrape
    let sampled: { at: number, lengths: Promise<number[]> } | null = null
    const sample = async (): Promise<number[]> => {
      if (sampled === null || Date.now() - sampled.at > 1000) sampled = { at: Date.now(), lengths: lengths().catch(() => []) }
      return await sampled.lengths
    }
    new Gauge({
      name: 'realtime_broker_history_streams',
      help: 'Topic histories held (Redis: sampled, up to 1,000)',
      registers,
      async collect () { this.set((await sample()).length) }
    })
    new Gauge({
      name: 'realtime_broker_history_stream_length_max',
      help: 'Messages held by the longest topic history (bounded by its size)',
      registers,
      async collect () { this.set(Math.max(0, ...(await sample()))) }
    })
    new Gauge({
      name: 'realtime_broker_history_messages',
      help: 'Messages held by every topic history together',
      registers,
      async collect () { this.set((await sample()).reduce((sum, length) => sum + length, 0)) }
    })
  }

  appended (): void { this.appendedCount++ }
  duplicate (): void { this.duplicates.inc() }
  appendFailed (): void { this.appendFailures.inc() }
  read (via: HistoryReadVia): void { this.reads.labels(via).inc() }
  recovery (recovered: boolean): void { this.recoveries.labels(recovered ? 'ok' : 'not_recovered').inc() }
}
