// GET /api/v1/events?topic=<filter>&topic=<filter>: Server-Sent Events for clients that cannot
// open a WebSocket. Retained messages first, then live ones, each checked against the ACL;
// heartbeats keep proxies from closing an idle stream; a reader that falls behind is
// disconnected rather than buffered without bound. A message's MQTT 5 properties come with it;
// an expired one is not sent.
import type { ServerResponse } from 'node:http'
import type { Aedes, AedesPublishPacket } from 'aedes'
import type { Authenticator } from '../acl/authenticate.js'
import { compileGrants, type AclConfig } from '../acl/authorize.js'
import { isValidTopicFilter, levelSeparator, levelsMatch } from '../acl/topic-grammar.js'
import type { Logger } from '../broker/observability/logger.js'
import { expiryDeadline, remainingExpirySeconds, type MessageExpiryFields } from '../broker/protocol/message-properties.js'
import type { BrokerMetrics, SseRefusal } from '../broker/observability/metrics.js'
import type { History } from '../broker/history/history.js'
import { historyPacket, positionOf } from '../broker/history/history-recorder.js'
import { authenticateRequest } from './bearer.js'
import { parseCursor, resume, StreamPositions } from './sse-history.js'
import { sendJson, type Routes } from './http-server.js'

export interface SseOptions {
  heartbeatMs: number
  /** Bytes a reader may fall behind before it is disconnected. */
  maxBufferedBytes: number
  /** Streams open at once per user (anonymous: per remote address); more are answered 429. */
  maxStreamsPerUser: number
  /** Streams open at once on this node; more are answered 503. */
  maxStreams: number
}

export interface SseParts {
  aedes: Aedes
  /** Retained messages matching the filters (the persistence's own stream). */
  retained: (filters: string[]) => AsyncIterable<AedesPublishPacket>
  authenticator: Authenticator
  acl: AclConfig
  metrics: BrokerMetrics
  audit: Logger
  options: SseOptions
  /** When topics keep history: event ids are positions, and Last-Event-ID resumes (sse-history.ts). */
  history?: History
}

const maxFilters = 100
// Messages seen recently on this stream, so overlapping filters deliver a message once.
const dedupeWindow = 1000
// Live messages held while a resuming stream reads what it missed; past this it is ended (the reader reconnects).
const maxHeldWhileResuming = 10_000

type Deliver = (packet: AedesPublishPacket, done: () => void) => void

/**
 * `retain` says why the message is sent, as MQTT does: true only for a retained message sent
 * because the stream subscribed [MQTT-3.3.1-8], false for a live one, even if its publisher
 * set retain [MQTT-3.3.1-9].
 */
function eventData (packet: Pick<AedesPublishPacket, 'topic' | 'payload' | 'qos'>, retain: boolean, properties: EventProperties | undefined): string {
  return JSON.stringify({
    topic: packet.topic,
    ...payloadFields(packet.payload),
    qos: packet.qos,
    retain,
    properties
  })
}

/** A payload as JSON carries it: valid UTF-8 as text, anything else as base64. */
export function payloadFields (payload: Buffer | string): { payload: string, encoding: 'utf8' | 'base64' } {
  if (typeof payload === 'string') return { payload, encoding: 'utf8' }
  const text = payload.toString('utf8')
  const utf8 = Buffer.byteLength(text) === payload.length && !text.includes('\uFFFD')
  return utf8 ? { payload: text, encoding: 'utf8' } : { payload: payload.toString('base64'), encoding: 'base64' }
}

/** A message's MQTT 5 properties as an event shows them, under HTTP publish's names. */
export interface EventProperties {
  payloadFormatIndicator?: boolean
  messageExpiryInterval?: number
  contentType?: string
  responseTopic?: string
  /** base64 */
  correlationData?: string
  userProperties?: Record<string, string | string[]>
}

/**
 * The properties of a message for its event: undefined if it has none, null if it expired
 * [MQTT-3.3.2-5]; the expiry interval less the time the message waited [MQTT-3.3.2-6]. Topic
 * Alias and Subscription Identifier belong to an MQTT connection and subscription: not shown.
 */
export function eventProperties (packet: MessageExpiryFields): EventProperties | undefined | null {
  const { properties } = packet
  if (properties === undefined) return undefined
  const now = Date.now()
  const deadline = expiryDeadline(packet, now)
  if (deadline !== undefined && deadline <= now) return null
  const shown: EventProperties = {}
  if (properties.payloadFormatIndicator !== undefined) shown.payloadFormatIndicator = properties.payloadFormatIndicator
  if (deadline !== undefined) shown.messageExpiryInterval = remainingExpirySeconds(deadline, now)
  if (properties.contentType !== undefined) shown.contentType = properties.contentType
  if (properties.responseTopic !== undefined) shown.responseTopic = properties.responseTopic
  if (properties.correlationData !== undefined) shown.correlationData = properties.correlationData.toString('base64')
  if (properties.userProperties !== undefined) shown.userProperties = properties.userProperties
  return Object.keys(shown).length === 0 ? undefined : shown
}

export function addSseRoute (routes: Routes, parts: SseParts): void {
  const { aedes, metrics, audit, options } = parts
  // open streams per user key; the node's total is the sum
  const openByUser = new Map<string, number>()
  let openStreams = 0
  routes.set('GET /api/v1/events', async (req, res, url) => {
    const auth = authenticateRequest(parts.authenticator, req, url, true)
    if (!auth.ok) return sendJson(res, 401, { error: auth.error })
    const { identity } = auth
    const filters = [...new Set(url.searchParams.getAll('topic'))]
    if (filters.length === 0 || filters.length > maxFilters) return sendJson(res, 400, { error: `topic: expected 1 to ${maxFilters} topic filters` })
    const invalid = filters.find((f) => !isValidTopicFilter(f))
    if (invalid !== undefined) return sendJson(res, 400, { error: `topic: ${JSON.stringify(invalid)} is not a valid topic filter` })
    const compiled = compileGrants(identity, `sse:${identity.user ?? 'anonymous'}`, parts.acl)
    if (!compiled.ok) return sendJson(res, 403, { error: compiled.reason })
    const { grants } = compiled
    const granted = filters.filter((f) => grants.canSubscribe(f))
    const denied = filters.filter((f) => !grants.canSubscribe(f))
    if (denied.length > 0) {
      audit.warn({ event: 'acl.denied', action: 'subscribe', via: 'sse', user: identity.user, topics: denied }, 'SSE filters refused')
      for (const _ of denied) metrics.aclDenied('subscribe')
    }
    if (granted.length === 0) return sendJson(res, 403, { error: 'none of the topic filters is granted', denied })
    // Anonymous readers share no user: each address is one.
    const userKey = identity.user ?? `anonymous@${req.socket.remoteAddress ?? ''}`
    const userOpen = openByUser.get(userKey) ?? 0
    const refuse = (reason: SseRefusal, status: 429 | 503, error: string): void => {
      metrics.sseStreamRefused(reason)
      audit.warn({ event: 'limit.exceeded', action: 'subscribe', via: 'sse', user: identity.user, reason: error }, 'SSE stream refused')
      sendJson(res, status, { error })
    }
    if (userOpen >= options.maxStreamsPerUser) return refuse('user_limit', 429, `at most ${options.maxStreamsPerUser} event streams per user at once (http.sse.maxStreamsPerUser)`)
    if (openStreams >= options.maxStreams) return refuse('node_limit', 503, `at most ${options.maxStreams} event streams on this node at once (http.sse.maxStreams)`)
    openByUser.set(userKey, userOpen + 1)
    openStreams++
    metrics.sseStreamOpened()
    res.on('close', () => {
      const left = (openByUser.get(userKey) ?? 1) - 1
      if (left === 0) openByUser.delete(userKey)
      else openByUser.set(userKey, left)
      openStreams--
      metrics.sseStreamClosed()
    })

    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    const positions = new StreamPositions()
    const stream = new EventStream(res, options.maxBufferedBytes, () => metrics.messageDropped('slow_consumer'), () => positions.cursor())
    stream.send('subscribed', JSON.stringify({ granted, denied }))

    const seen = new Set<string>()
    const patterns = granted.map((f) => f.split(levelSeparator))
    const deliver: Deliver = (packet, done) => {
      done()
      // The emitter's matching lets `#` reach $ topics; MQTT's does not [MQTT-4.7.2-1]
      if (!patterns.some((p) => levelsMatch(p, packet.topic))) return
      if (!grants.canRead(packet.topic)) return
      const properties = eventProperties(packet)
      if (properties === null) return
      const key = `${packet.brokerId}:${packet.brokerCounter}`
      if (seen.has(key)) return
      seen.add(key)
      if (seen.size > dedupeWindow) seen.delete(seen.values().next().value as string)
      if (resuming !== null) {
        // sent once the missed messages are, if still new then
        if (resuming.push({ packet, properties }) > maxHeldWhileResuming) stream.end()
        return
      }
      send(packet, properties)
    }
    // a message of a history topic at or below the position already sent on its topic is not sent again
    const send = (packet: Pick<AedesPublishPacket, 'topic' | 'payload' | 'qos' | 'properties'>, properties: EventProperties | undefined): void => {
      const at = parts.history === undefined ? undefined : positionOf(packet.properties)
      if (at !== undefined && !positions.admit(packet.topic, at)) return
      stream.send('message', eventData(packet, false, properties))
    }
    // Last-Event-ID (or lastEventId where a reader cannot set headers): live messages wait while the missed ones are read
    const lastEventId = req.headers['last-event-id'] ?? url.searchParams.get('lastEventId') ?? undefined
    const resumeFrom = parts.history === undefined || typeof lastEventId !== 'string' ? new Map() : parseCursor(lastEventId)
    let resuming: Array<{ packet: AedesPublishPacket, properties: EventProperties | undefined }> | null = resumeFrom.size > 0 ? [] : null
    const subscribed = granted.map((filter) => new Promise<void>((resolve) => aedes.subscribe(filter, deliver, resolve)))
    const heartbeat = setInterval(() => stream.comment('ping'), options.heartbeatMs)
    const expiry = identity.expiresAt === null ? null : setTimeout(() => stream.end(), Math.min(Math.max(0, identity.expiresAt - Date.now()), 2 ** 31 - 1))
    res.on('close', () => {
      clearInterval(heartbeat)
      if (expiry !== null) clearTimeout(expiry)
      for (const filter of granted) aedes.unsubscribe(filter, deliver, () => {})
    })

    await Promise.all(subscribed)
    if (parts.history !== undefined && resuming !== null) {
      const readable = (topic: string): boolean => patterns.some((p) => levelsMatch(p, topic)) && grants.canRead(topic)
      const outcomes = await resume(parts.history, resumeFrom, readable).catch((err: Error) => {
        parts.audit.warn({ event: 'history.resume-failed', via: 'sse', user: identity.user, reason: err.message }, 'SSE stream could not resume from Last-Event-ID')
        return [...resumeFrom].map(([topic, { epoch, offset }]) => ({ topic, recovered: false as const, epoch, offset }))
      })
      for (const outcome of outcomes) {
        if (!outcome.recovered) {
          stream.send('recovery', JSON.stringify(outcome))
          continue
        }
        for (const message of outcome.messages) {
          const packet = historyPacket(message, outcome.epoch)
          const properties = eventProperties(packet)
          if (properties !== null) send(packet, properties)
        }
        stream.send('recovery', JSON.stringify({ topic: outcome.topic, recovered: true, epoch: outcome.epoch, messages: outcome.messages.length }))
      }
      const held = resuming
      resuming = null
      for (const { packet, properties } of held) send(packet, properties)
    }
    for await (const packet of parts.retained(granted)) {
      if (res.destroyed) break
      if (!grants.canRead(packet.topic)) continue
      const properties = eventProperties(packet)
      if (properties !== null) stream.send('message', eventData(packet, true, properties))
    }
  })
}

/** Writes events to one response, ending it when the reader falls too far behind. */
class EventStream {
  private nextId = 1

  /** `cursor`: the id of every event once the stream sent a message of a history topic. */
  constructor (private readonly res: ServerResponse, private readonly maxBuffered: number, private readonly onOverflow: () => void, private readonly cursor: () => string | null) {}

  send (event: string, data: string): void {
    this.write(`id: ${this.cursor() ?? this.nextId++}\nevent: ${event}\ndata: ${data}\n\n`)
  }

  comment (text: string): void {
    this.write(`: ${text}\n\n`)
  }

  end (): void {
    this.res.end()
  }

  private write (chunk: string): void {
    if (this.res.destroyed || this.res.writableEnded) return
    if (this.res.writableLength > this.maxBuffered) {
      this.onOverflow()
      this.res.destroy()
      return
    }
    this.res.write(chunk)
  }
}
