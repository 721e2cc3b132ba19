// Per-endpoint webhook metrics, registered beside the broker's (observability/metrics.ts):
// the endpoint label is a configured name, so its cardinality is the config's.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { DeliveryObserver } from './sender.js'

export class WebhookMetrics implements DeliveryObserver {
  private readonly sentEvents: Counter
  private readonly failedRequests: Counter
  private readonly retries: Counter
  private readonly deadEvents: Counter
  private readonly droppedEvents: Counter
  private readonly latency: Histogram

  constructor (registry: Registry, endpoints: readonly string[], pending: (endpoint: string) => number) {
    const registers = [registry]
    const labelNames = ['endpoint']
    this.sentEvents = new Counter({ name: 'realtime_broker_webhook_events_sent_total', help: 'Webhook events acknowledged (2xx) by their endpoint', labelNames, registers })
    this.failedRequests = new Counter({ name: 'realtime_broker_webhook_requests_failed_total', help: 'Webhook requests that failed (non-2xx, timeout, network error)', labelNames, registers })
    this.retries = new Counter({ name: 'realtime_broker_webhook_retries_total', help: 'Webhook requests sent again after a failure', labelNames, registers })
    this.deadEvents = new Counter({ name: 'realtime_broker_webhook_events_dead_lettered_total', help: 'Webhook events moved to the dead letters after webhooks.deadLetterAfterMs undelivered', labelNames, registers })
    this.droppedEvents = new Counter({ name: 'realtime_broker_webhook_events_dropped_total', help: 'Webhook events not queued: the endpoint already had webhooks.maxPendingPerEndpoint waiting, or Redis refused them', labelNames, registers })
    this.latency = new Histogram({ name: 'realtime_broker_webhook_request_duration_seconds', help: 'Webhook requests acknowledged, from send to 2xx', labelNames, registers, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] })
    new Gauge({
      name: 'realtime_broker_webhook_events_pending',
      help: 'Webhook events waiting for their endpoint (cluster-wide with Redis, as last read)',
      labelNames,
      registers,
      collect () {
        for (const endpoint of endpoints) this.labels(endpoint).set(pending(endpoint))
      }
    })
    for (const endpoint of endpoints) {
      for (const counter of [this.sentEvents, this.failedRequests, this.retries, this.deadEvents, this.droppedEvents]) counter.labels(endpoint).inc(0)
    }
  }

  sent (endpoint: string, events: number, seconds: number): void {
    this.sentEvents.labels(endpoint).inc(events)
    this.latency.labels(endpoint).observe(seconds)
  }

  failed (endpoint: string): void { this.failedRequests.labels(endpoint).inc() }
  retried (endpoint: string): void { this.retries.labels(endpoint).inc() }
  deadLettered (endpoint: string, events: number): void { this.deadEvents.labels(endpoint).inc(events) }
  dropped (endpoint: string, events = 1): void { this.droppedEvents.labels(endpoint).inc(events) }
}
