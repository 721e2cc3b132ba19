// GET /metrics: this node's metrics in Prometheus text format.
import type { BrokerMetrics } from '../broker/observability/metrics.js'
import type { Routes } from './http-server.js'

export function addMetricsRoute (routes: Routes, metrics: BrokerMetrics): void {
  routes.set('GET /metrics', async (_req, res) => {
    const body = await metrics.registry.metrics()
    res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' })
    res.end(body)
  })
}
