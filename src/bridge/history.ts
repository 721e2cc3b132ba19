// GET /api/v1/history?topic=<topic>&limit=<n>[&since=<offset>][&epoch=<epoch>]: a history topic's
// messages, authorized like a subscription to that topic (the checks are the MQTT 5 request's,
// history-requests.ts). Without `since`, the newest `limit`;
// with it, those after it, oldest first, and whether the reader missed nothing (`recovered`:
// false means resync). Payloads as SSE carries them: text, or base64 said so (docs/history.md).
import type { Authenticator } from '../acl/authenticate.js'
import { compileGrants, type AclConfig } from '../acl/authorize.js'
import type { History } from '../broker/history/history.js'
import { answerHistoryRequest } from '../broker/history/history-requests.js'
import type { HistoryMessage, ReadResult } from '../broker/history/history-store.js'
import { storedExpiry } from '../broker/history/history-recorder.js'
import type { Logger } from '../broker/observability/logger.js'
import type { BrokerMetrics } from '../broker/observability/metrics.js'
import { authenticateRequest } from './bearer.js'
import { sendJson, type Routes } from './http-server.js'
import { eventProperties, payloadFields } from './sse.js'

export interface HistoryRouteParts {
  history: History
  authenticator: Authenticator
  acl: AclConfig
  audit: Logger
  metrics: BrokerMetrics
}

/** One message as JSON shows it (HTTP, and the SDK reads the same shape). */
export function historyMessageJson (message: HistoryMessage): Record<string, unknown> | null {
  // a message whose Message Expiry Interval passed is not shown [MQTT-3.3.2-5]
  const properties = eventProperties({ properties: message.properties, ...storedExpiry(message) })
  if (properties === null) return null
  return { offset: message.offset, topic: message.topic, ...payloadFields(message.payload), qos: message.qos, time: message.time, ...(properties === undefined ? {} : { properties }) }
}

export function historyJson (result: ReadResult): Record<string, unknown> {
  const messages = result.messages.map(historyMessageJson).filter((message) => message !== null)
  return { epoch: result.epoch, offset: result.offset, ...(result.recovered === undefined ? {} : { recovered: result.recovered }), messages }
}

/** A whole number from a query parameter; absent: undefined; anything else is left for the checks to refuse. */
function queryNumber (value: string | null): number | string | undefined {
  if (value === null) return undefined
  return /^\d{1,15}$/.test(value) ? Number(value) : value
}

export function addHistoryRoute (routes: Routes, parts: HistoryRouteParts): void {
  const { history, audit, metrics } = parts
  routes.set('GET /api/v1/history', async (req, res, url) => {
    const auth = authenticateRequest(parts.authenticator, req, url, true)
    if (!auth.ok) return sendJson(res, 401, { error: auth.error })
    const { identity } = auth
    const compiled = compileGrants(identity, `http:${identity.user ?? 'anonymous'}`, parts.acl)
    if (!compiled.ok) return sendJson(res, 403, { error: compiled.reason })
    const topic = url.searchParams.get('topic') ?? ''
    const answer = await answerHistoryRequest(history, compiled.grants, topic, {
      limit: queryNumber(url.searchParams.get('limit')),
      since: queryNumber(url.searchParams.get('since')),
      epoch: url.searchParams.get('epoch') ?? undefined
    })
    if (answer.status === 403) {
      audit.warn({ event: 'acl.denied', action: 'subscribe', via: 'history', user: identity.user, topic }, 'history read refused')
      metrics.aclDenied('subscribe')
    }
    if (answer.status !== 200) return sendJson(res, answer.status, { error: answer.error })
    sendJson(res, 200, historyJson(answer.result))
  })
}
