// Liveness and readiness for load balancers and orchestrators.
import { sendJson, type Routes } from './http-server.js'

export interface ReadinessProbe {
  /** Named checks; the node is ready when all pass. */
  checks: () => Record<string, boolean>
}

export function addHealthRoutes (routes: Routes, probe: ReadinessProbe): void {
  routes.set('GET /healthz', (_req, res) => sendJson(res, 200, { status: 'ok' }))
  routes.set('GET /readyz', (_req, res) => {
    const checks = probe.checks()
    const ready = Object.values(checks).every(Boolean)
    sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', checks })
  })
}
