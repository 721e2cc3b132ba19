// The webhooks of a node: which endpoint wants which event (filters compiled once), events
// built once and queued in the outbox for each, a sender per endpoint. Queuing is all an event
// costs the broker: a slow or failing endpoint never holds MQTT delivery, its backlog is
// bounded (webhooks.maxPendingPerEndpoint) and what is over it counted.
import type { RedisClient } from '../storage/redis-clients.js'
import type { RedisKeys } from '../storage/redis-keys.js'
import type { Registry } from 'prom-client'
import { levelSeparator, levelsMatch } from '../../acl/topic-grammar.js'
import { ConfigError, type BrokerConfig } from '../config/config.js'
import type { Logger } from '../observability/logger.js'
import { eventJson, MessageEventJson, type ClientPiece, type EventBytes, type PublishedMessage, type WebhookEventType } from './events.js'
import { MemoryOutbox, type DeadLetter, type WebhookOutbox } from './outbox.js'
import { RedisOutbox } from './redis-outbox.js'
import { EndpointSender } from './sender.js'
import { WebhookMetrics } from './webhook-metrics.js'

type WebhookConfig = BrokerConfig['webhooks']

interface Endpoint {
  name: string
  events: ReadonlySet<WebhookEventType>
  /** message.published: whether the endpoint's topic filters match a topic. */
  wantsTopic: (topic: string) => boolean
}

// topics whose match is remembered per endpoint: a chat's rooms are published to again and again
const maxRememberedTopics = 10_000

/**
 * Whether any of `filters` matches a topic (none: every topic not starting with $), each
 * topic's answer remembered (the last maxRememberedTopics topics) rather than split again.
 */
function topicMatcher (filters: readonly string[]): (topic: string) => boolean {
  const levels = (filters.length === 0 ? ['#'] : filters).map((filter) => filter.split(levelSeparator))
  const remembered = new Map<string, boolean>()
  return (topic) => {
    let matches = remembered.get(topic)
    if (matches === undefined) {
      matches = levels.some((filter) => levelsMatch(filter, topic))
      if (remembered.size >= maxRememberedTopics) remembered.clear()
      remembered.set(topic, matches)
    }
    return matches
  }
}

export class Webhooks {
  private readonly endpoints: Endpoint[]
  private readonly senders: EndpointSender[]
  private readonly metrics: WebhookMetrics
  private readonly wanted = new Set<WebhookEventType>()
  private readonly nodeJson: string
  /** The endpoints that want message.published. */
  private readonly messageEndpoints: Endpoint[]
  private readonly messageEvents: MessageEventJson

  constructor (config: WebhookConfig, private readonly outbox: WebhookOutbox, nodeId: string, registry: Registry, logger: Logger, env: Record<string, string | undefined>) {
    this.endpoints = config.endpoints.map((endpoint) => ({
      name: endpoint.name,
      events: new Set(endpoint.events),
      wantsTopic: topicMatcher(endpoint.topics)
    }))
    for (const endpoint of this.endpoints) for (const type of endpoint.events) this.wanted.add(type)
    this.nodeJson = JSON.stringify(nodeId)
    this.messageEndpoints = this.endpoints.filter((endpoint) => endpoint.events.has('message.published'))
    this.messageEvents = new MessageEventJson(this.nodeJson)
    this.metrics = new WebhookMetrics(registry, this.endpoints.map((e) => e.name), (name) => outbox.pending(name))
    this.senders = config.endpoints.map((endpoint) => {
      const secret = endpoint.secret ?? env[endpoint.secretEnv ?? '']
      if (secret === undefined || secret.length < 16) throw new ConfigError(`config: webhooks.endpoints ${endpoint.name}: expected the environment variable ${endpoint.secretEnv ?? ''} to hold a signing secret of at least 16 characters`)
      return new EndpointSender({ name: endpoint.name, url: endpoint.url, secret }, outbox, config, this.metrics, logger)
    })
  }

  /** Whether any endpoint wants `type`: the broker builds no event nobody wants. */
  wants (type: WebhookEventType): boolean {
    return this.wanted.has(type)
  }

  /** Queues an event for every endpoint that wants it. */
  emit (type: WebhookEventType, data: Record<string, unknown>): void {
    if (!this.wanted.has(type)) return
    let json: string | null = null
    for (const endpoint of this.endpoints) {
      if (!endpoint.events.has(type)) continue
      json ??= eventJson(type, this.nodeJson, JSON.stringify(data))
      if (!this.outbox.append(endpoint.name, json)) this.metrics.dropped(endpoint.name)
    }
  }

  /**
   * Queues a message.published event for the endpoints whose filters match its topic, built
   * only if one does, once for all of them (`clientPiece(client)`: from MessageEventJson.client).
   * For a QoS 1/2 message, resolves once the event is stored (null: it already is, none was
   * queued, or QoS 0: no PUBACK waits for it, and asking would cut the outbox's append delay short).
   */
  emitMessage<Client> (message: PublishedMessage, client: Client, clientPiece: (client: Client) => ClientPiece): Promise<void> | null {
    let event: EventBytes | string | null = null
    for (const endpoint of this.messageEndpoints) {
      if (!endpoint.wantsTopic(message.topic)) continue
      if (event === null) {
        const { topic, qos, retain, payload } = message
        const piece = clientPiece(client)
        event = this.messageEvents.prepare(topic, qos, retain, piece, payload) ?? this.messageEvents.build(topic, qos, retain, piece, payload)
      }
      const queued = typeof event === 'string' ? this.outbox.append(endpoint.name, event) : this.outbox.appendBytes(endpoint.name, event)
      if (!queued) this.metrics.dropped(endpoint.name)
    }
    return event === null || message.qos === 0 ? null : this.outbox.written()
  }

  /** Events the outbox could not keep, counted as dropped. */
  lost (endpoint: string, events: number): void {
    this.metrics.dropped(endpoint, events)
  }

  /** Whether an endpoint of that name is configured. */
  has (endpoint: string): boolean {
    return this.endpoints.some((e) => e.name === endpoint)
  }

  async deadLetters (endpoint: string, max: number): Promise<DeadLetter[]> {
    return await this.outbox.deadLetters(endpoint, max)
  }

  async replay (endpoint: string, ids: readonly string[] | null): Promise<number> {
    return await this.outbox.replay(endpoint, ids)
  }

  start (): void {
    for (const sender of this.senders) sender.start()
  }

  /** Stops sending; what was not acknowledged stays in the outbox (Redis) for the next sender. */
  async close (): Promise<void> {
    const stopping = this.senders.map((sender) => sender.close())
    // wakes the senders waiting for appends
    await this.outbox.close()
    await Promise.all(stopping)
  }
}

/** The webhooks of a config, with the outbox its storage allows; null when no endpoint is configured (nothing is built). */
export function createWebhooks (config: BrokerConfig, redis: { client: RedisClient, keys: RedisKeys } | null, nodeId: string, registry: Registry, logger: Logger, env: Record<string, string | undefined>): Webhooks | null {
  const { webhooks } = config
  if (webhooks.endpoints.length === 0) return null
  const outbox = redis === null
    ? new MemoryOutbox(webhooks.maxPendingPerEndpoint, webhooks.maxDeadLetters, webhooks.batchSize)
    // the lease outlives a request's timeout: a sender waiting for an answer keeps its endpoint;
    // entries of a quarter batch at most pack a request to three quarters of batchSize at least;
    // an append waits a fifth of batchDelayMs for more events (the sender waits for a batch anyway)
    : new RedisOutbox(redis.client, { nodeId, keys: redis.keys, maxPerEntry: Math.ceil(webhooks.batchSize / 4), maxPending: webhooks.maxPendingPerEndpoint, maxDeadLetters: webhooks.maxDeadLetters, appendDelayMs: webhooks.batchDelayMs / 5, leaseMs: Math.max(3 * config.cluster.heartbeatIntervalMs, webhooks.timeoutMs + 1000), onLost: (endpoint, events) => { webhooksOfConfig.lost(endpoint, events) } })
  // called back only once events are appended, after construction
  const webhooksOfConfig: Webhooks = new Webhooks(webhooks, outbox, nodeId, registry, logger.child({ component: 'webhooks' }), env)
  return webhooksOfConfig
}
