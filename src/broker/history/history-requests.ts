// History for native MQTT 5 clients, by request and response (docs/history.md): a PUBLISH to
// `$history/<topic>` with a Response Topic (and usually Correlation Data) and a JSON payload
// `{ "limit": n, "since": offset, "epoch": "..." }` (all optional) is answered on the Response
// Topic with the Correlation Data and the JSON the HTTP endpoint returns, or `{ "error": ... }`.
// Authorized like a subscription to <topic>; the response topic must be one the client may
// publish to (the broker publishes there for it).
import type { Aedes, Client, PublishPacket } from 'aedes'
import type { ClientGrants } from '../../acl/authorize.js'
import { isValidTopicName } from '../../acl/topic-grammar.js'
import type { Logger } from '../observability/logger.js'
import type { History } from './history.js'
import type { ReadResult } from './history-store.js'

export const historyRequestPrefix = '$history/'
/** Without `limit`, this many. */
export const defaultHistoryLimit = 100

export type HistoryAnswer = { status: 200, result: ReadResult } | { status: 400 | 403 | 404 | 503, error: string }

/** What a read asks for, unchecked (a query string's numbers already parsed). */
export interface HistoryRequestFields { limit?: unknown, since?: unknown, epoch?: unknown }

/** Reads what a request asks for, as a client with `grants` may (like a subscription to `topic`); an answer either way. */
export async function answerHistoryRequest (history: History, grants: ClientGrants, topic: string, fields: HistoryRequestFields): Promise<HistoryAnswer> {
  if (!isValidTopicName(topic) || topic.startsWith('$')) return { status: 400, error: `topic: "${topic}" is not a topic name (no wildcards, not a $ topic)` }
  if (!grants.canSubscribe(topic) || !grants.canRead(topic)) return { status: 403, error: `reading ${topic} is not granted` }
  if (!history.keeps(topic)) return { status: 404, error: `${topic} keeps no history (history.topics)` }
  const { limit = defaultHistoryLimit, since, epoch } = fields
  if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > history.maxReadLimit) return { status: 400, error: `limit: expected a whole number from 1 to ${history.maxReadLimit} (history.maxReadLimit)` }
  if (since !== undefined && (!Number.isInteger(since) || (since as number) < 0)) return { status: 400, error: 'since: expected an offset (a whole number >= 0)' }
  if (epoch !== undefined && typeof epoch !== 'string') return { status: 400, error: 'epoch: expected a string' }
  try {
    const result = await history.read({ topic, limit: limit as number, ...(since === undefined ? {} : { since: since as number }), ...(epoch === undefined ? {} : { epoch }) }, 'mqtt')
    return { status: 200, result }
  } catch (err) {
    return { status: 503, error: `history unavailable: ${(err as Error).message}` }
  }
}

/**
 * Answers the request `packet` of `client` (whose grants are `grants`), publishing the answer
 * built by `toJson` to its Response Topic. A request without one (MQTT 3.1.1 has none) is
 * dropped with a log line.
 */
export function handleHistoryRequest (aedes: Aedes, history: History, logger: Logger, toJson: (result: ReadResult) => Record<string, unknown>, client: Client, grants: ClientGrants, packet: PublishPacket): void {
  const responseTopic = packet.properties?.responseTopic
  if (responseTopic === undefined || responseTopic.startsWith('$') || !grants.canPublish(responseTopic)) {
    logger.info({ event: 'history.request-dropped', clientId: client.id, reason: responseTopic === undefined ? 'no response topic' : 'response topic not granted' }, 'history request not answered')
    return
  }
  const topic = packet.topic.slice(historyRequestPrefix.length)
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  let fields: unknown = {}
  try {
    if (payload.length > 0) fields = JSON.parse(payload.toString('utf8'))
  } catch {
    fields = null
  }
  const answering: Promise<HistoryAnswer> = typeof fields === 'object' && fields !== null && !Array.isArray(fields)
    ? answerHistoryRequest(history, grants, topic, fields)
    : Promise.resolve({ status: 400, error: 'expected a JSON object: { "limit": n, "since": offset, "epoch": "..." }, or nothing' })
  void answering.then((answer) => {
    const body = answer.status === 200 ? toJson(answer.result) : { error: answer.error }
    const correlationData = packet.properties?.correlationData
    aedes.publish({
      cmd: 'publish',
      topic: responseTopic,
      payload: Buffer.from(JSON.stringify({ status: answer.status, ...body })),
      qos: packet.qos === 0 ? 0 : 1,
      retain: false,
      dup: false,
      properties: { contentType: 'application/json', payloadFormatIndicator: true, ...(correlationData === undefined ? {} : { correlationData }) }
    }, (err) => {
      if (err !== undefined && err !== null) logger.warn({ event: 'history.response-failed', clientId: client.id, reason: err.message }, 'history response not published')
    })
  })
}
