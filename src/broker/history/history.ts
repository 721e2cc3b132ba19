// Stream history, assembled from the config: which topics keep it, the store (Redis when the
// broker has it, else memory), the recorder on the publish path and the reads that count
// themselves. Null when no topic keeps history: nothing is added to the publish path then.
import type { Registry } from 'prom-client'
import type { RedisClient } from '../storage/redis-clients.js'
import type { Logger } from '../observability/logger.js'
import { HistoryMetrics, type HistoryReadVia } from './history-metrics.js'
import { HistoryRecorder } from './history-recorder.js'
import { memoryHistoryStore, type HistoryStore, type ReadResult } from './history-store.js'
import { HistoryTopics, type HistoryTopicConfig } from './history-topics.js'
import { redisHistoryStore } from './redis-history-store.js'

export interface HistoryConfig {
  topics: HistoryTopicConfig[]
  idempotencyWindowSeconds: number
  maxReadLimit: number
}

export interface HistoryReadInput {
  topic: string
  limit: number
  since?: number
  epoch?: string
}

export class History {
  readonly recorder: HistoryRecorder

  constructor (readonly topics: HistoryTopics, private readonly store: HistoryStore, private readonly metrics: HistoryMetrics, readonly maxReadLimit: number, idempotencyWindowMs: number, logger: Logger) {
    this.recorder = new HistoryRecorder({ topics, store, idempotencyWindowMs, metrics, logger })
  }

  /** Whether topic name `topic` keeps history. */
  keeps (topic: string): boolean {
    return this.topics.of(topic) !== null
  }

  /** Reads the history of a history topic (the caller authorized it), counting the read and its recovery. */
  async read (input: HistoryReadInput, via: HistoryReadVia): Promise<ReadResult> {
    const config = this.topics.of(input.topic)
    if (config === null) throw new Error(`${input.topic} keeps no history`)
    const result = await this.store.read({ ...input, limit: Math.min(input.limit, this.maxReadLimit), now: Date.now() }, config)
    this.metrics.read(via)
    if (result.recovered !== undefined) this.metrics.recovery(result.recovered)
    return result
  }
}

export function createHistory (config: HistoryConfig, redis: RedisClient | null, registry: Registry, logger: Logger): History | null {
  const topics = new HistoryTopics(config.topics)
  if (!topics.enabled) return null
  const store = redis === null ? memoryHistoryStore() : redisHistoryStore(redis)
  const metrics = new HistoryMetrics(registry, store.lengths)
  return new History(topics, store, metrics, config.maxReadLimit, config.idempotencyWindowSeconds * 1000, logger)
}
