// GET /api/v1/history?topic=<topic>&limit=<n>[&since=<offset>][&epoch=<epoch>]: a history topic's
// messages, authorized like a subscription to that topic. Without `since`, the newest `limit`;
// with it, those after it, oldest first, and whether the reader missed nothing (`recovered`:
// false means resync). Payloads as SSE carries them: text, or base64 said so (docs/history.md).
import type { Authenticator } from '../acl/authenticate.js'
import { compileGrants, type AclConfig } from '../acl/authorize.js'
import { isValidTopicName } from '../acl/topic-grammar.js'
import type { History } from '../broker/history/history.js'
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

/** Without `limit`, this many. */
export const defaultHistoryLimit = 100

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

/** A non-negative whole number from a query parameter, or undefined when absent; NaN when malformed. */
function wholeNumber (value: string | null): number | undefined {
  if (value === null) return undefined
  return /^\d{1,15}$/.test(value) ? Number(value) : Number.NaN
}

export function addHistoryRoute (routes: Routes, parts: HistoryRouteParts): void {
  const { history, audit, metrics } = parts
  routes.set('GET /api/v1/history', async (req, res, url) => {
    const auth = authenticateRequest(parts.authenticator, req, url, true)
    if (!auth.ok) return sendJson(res, 401, { error: auth.error })
    const { identity } = auth
    const topic = url.searchParams.get('topic')
    if (topic === null || topic === '' || !isValidTopicName(topic)) return sendJson(res, 400, { error: 'topic: expected a topic name (no wildcards)' })
    const limit = wholeNumber(url.searchParams.get('limit')) ?? defaultHistoryLimit
    if (Number.isNaN(limit) || limit < 1 || limit > history.maxReadLimit) return sendJson(res, 400, { error: `limit: expected a whole number from 1 to ${history.maxReadLimit} (history.maxReadLimit)` })
    const since = wholeNumber(url.searchParams.get('since'))
    if (Number.isNaN(since)) return sendJson(res, 400, { error: 'since: expected an offset (a whole number >= 0)' })
    const epoch = url.searchParams.get('epoch') ?? undefined
    const compiled = compileGrants(identity, `http:${identity.user ?? 'anonymous'}`, parts.acl)
    if (!compiled.ok) return sendJson(res, 403, { error: compiled.reason })
    // as a subscription to the topic would be, and each message as a forward would be
    if (!compiled.grants.canSubscribe(topic) || !compiled.grants.canRead(topic)) {
      audit.warn({ event: 'acl.denied', action: 'subscribe', via: 'history', user: identity.user, topic }, 'history read refused')
      metrics.aclDenied('subscribe')
      return sendJson(res, 403, { error: `reading ${topic} is not granted` })
    }
    if (!history.keeps(topic)) return sendJson(res, 404, { error: `${topic} keeps no history (history.topics)` })
    const result = await history.read({ topic, limit, ...(since === undefined ? {} : { since }), ...(epoch === undefined ? {} : { epoch }) }, 'http')
    sendJson(res, 200, historyJson(result))
  })
}
