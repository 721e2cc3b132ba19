// POST /api/v1/publish: publish from a backend that speaks HTTP, authorized by the same JWT
// and ACL as MQTT. Answers once the broker accepted the messages for delivery (for QoS 1/2:
// stored for every persistent subscriber). A batch is validated whole before any is sent.
// MQTT 5 message properties are accepted under MQTT.js's names and reach v5 subscribers on
// every node; only the publish topic is authorized, not the response topic.
import { isUtf8 } from 'node:buffer'
import type { Aedes, PublishPacket } from 'aedes'
import type { Authenticator } from '../acl/authenticate.js'
import { compileGrants, publishLimitViolation, type AclConfig } from '../acl/authorize.js'
import type { PublishRateLimiter } from '../acl/rate-limit.js'
import { isValidTopicName } from '../acl/topic-grammar.js'
import type { Limits } from '../broker/protocol/limits.js'
import { topicViolation } from '../broker/protocol/limits.js'
import type { MessageProperties, UserProperties } from '../broker/protocol/message-properties.js'
import type { RetainedCaps } from '../broker/storage/retained-quota.js'
import { idempotencyKeyProperty } from '../broker/history/history-recorder.js'
import type { Logger } from '../broker/observability/logger.js'
import type { BrokerMetrics, DropReason, QosLabel } from '../broker/observability/metrics.js'
import { authenticateRequest } from './bearer.js'
import { sendJson, type Routes } from './http-server.js'
import { BodyTooLarge, isJsonBody, nestsDeeperThan, readBody, refuseTooLarge } from './request-body.js'

export const maxBatch = 1000
// Arrays and objects nested in a body, its own levels included: deeper JSON is
// no message anyone means to send, and would overflow the stack of JSON.stringify.
export const maxJsonDepth = 64

export interface HttpPublishParts {
  aedes: Aedes
  authenticator: Authenticator
  acl: AclConfig
  limits: Limits
  /** The publish rate buckets per user that MQTT publishes take from too. */
  publishRates: PublishRateLimiter
  metrics: BrokerMetrics
  audit: Logger
  retainedCaps: RetainedCaps
}

interface MessageInput {
  topic?: unknown
  payload?: unknown
  payloadBase64?: unknown
  qos?: unknown
  retain?: unknown
  payloadFormatIndicator?: unknown
  messageExpiryInterval?: unknown
  contentType?: unknown
  responseTopic?: unknown
  correlationData?: unknown
  userProperties?: unknown
}

// an MQTT UTF-8 string or binary data has a two-byte length
const maxMqttStringBytes = 65_535
// a Four Byte Integer
const maxExpiryInterval = 2 ** 32 - 1

class BadMessage extends Error {
  constructor (readonly status: 400 | 403, message: string) {
    super(message)
  }
}

/** A message over a role limit (maxPayloadSize, maxQos): refused and counted as the MQTT path drops it. */
class OverLimit extends BadMessage {
  constructor (readonly dropReason: DropReason, message: string) {
    super(400, message)
  }
}

const maxIdempotencyKeyLength = 256

/** Names the message's idempotency key as a v5 publisher would, in its user properties. */
function withIdempotencyKey (packet: PublishPacket, key: string): void {
  packet.properties = { ...packet.properties, userProperties: { ...packet.properties?.userProperties, [idempotencyKeyProperty]: key } }
}

/** Validates one message of the body; `index` names it in errors of a batch. */
function toPacket (input: MessageInput, where: string, limits: Limits): PublishPacket {
  if (typeof input !== 'object' || input === null) throw new BadMessage(400, `${where}: expected an object`)
  const { topic, payload, payloadBase64, qos = 0, retain = false } = input
  if (typeof topic !== 'string' || topic === '') throw new BadMessage(400, `${where}.topic: expected a non-empty string`)
  mqttString(topic, `${where}.topic`)
  if (!isValidTopicName(topic)) throw new BadMessage(400, `${where}.topic: a topic name has no wildcards (+, #) and no NUL`)
  const violation = topicViolation(topic, limits)
  if (violation !== null) throw new BadMessage(400, `${where}.topic: ${violation}`)
  if (topic.startsWith('$')) throw new BadMessage(403, `${where}.topic: topics starting with $ are reserved to the broker`)
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new BadMessage(400, `${where}.qos: expected 0, 1 or 2`)
  if (typeof retain !== 'boolean') throw new BadMessage(400, `${where}.retain: expected true or false`)
  if (payload !== undefined && payloadBase64 !== undefined) throw new BadMessage(400, `${where}: give payload (JSON) or payloadBase64 (bytes), not both`)
  let bytes: Buffer
  if (payloadBase64 !== undefined) {
    bytes = fromBase64(payloadBase64, `${where}.payloadBase64`)
  } else {
    bytes = payload === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(payload))
  }
  const properties = toProperties(input, where, bytes)
  const packet: PublishPacket = { cmd: 'publish', topic, payload: bytes, qos, retain, dup: false }
  if (properties === null) return packet
  const size = publishPacketSize(topic, qos, properties, bytes.length)
  if (size > limits.maxPacketSize) throw new BadMessage(400, `${where}: the message with its properties is a PUBLISH of ${size} bytes, over limits.maxPacketSize (${limits.maxPacketSize})`)
  packet.properties = properties
  return packet
}

/** The MQTT 5 properties of one message, each validated, under MQTT.js's names; null if none. */
function toProperties (input: MessageInput, where: string, payload: Buffer): MessageProperties | null {
  const { payloadFormatIndicator, messageExpiryInterval, contentType, responseTopic, correlationData, userProperties } = input
  if (payloadFormatIndicator === undefined && messageExpiryInterval === undefined && contentType === undefined &&
    responseTopic === undefined && correlationData === undefined && userProperties === undefined) return null
  const properties: MessageProperties = {}
  if (payloadFormatIndicator !== undefined) {
    if (typeof payloadFormatIndicator !== 'boolean') throw new BadMessage(400, `${where}.payloadFormatIndicator: expected true (the payload is UTF-8) or false`)
    // a receiver may check the payload against it (0x99 over MQTT)
    if (payloadFormatIndicator && !isUtf8(payload)) throw new BadMessage(400, `${where}.payloadFormatIndicator: true, but the payload is not valid UTF-8`)
    properties.payloadFormatIndicator = payloadFormatIndicator
  }
  if (messageExpiryInterval !== undefined) {
    if (!Number.isInteger(messageExpiryInterval) || (messageExpiryInterval as number) < 1 || (messageExpiryInterval as number) > maxExpiryInterval) {
      throw new BadMessage(400, `${where}.messageExpiryInterval: expected whole seconds from 1 to ${maxExpiryInterval}`)
    }
    properties.messageExpiryInterval = messageExpiryInterval as number
  }
  if (contentType !== undefined) properties.contentType = mqttString(contentType, `${where}.contentType`)
  if (responseTopic !== undefined) {
    const topic = mqttString(responseTopic, `${where}.responseTopic`)
    if (!isValidTopicName(topic)) throw new BadMessage(400, `${where}.responseTopic: expected a topic name: not empty, no wildcards (+, #) [MQTT-3.3.2-14]`)
    properties.responseTopic = topic
  }
  if (correlationData !== undefined) {
    const data = fromBase64(correlationData, `${where}.correlationData`)
    if (data.length > maxMqttStringBytes) throw new BadMessage(400, `${where}.correlationData: over ${maxMqttStringBytes} bytes`)
    properties.correlationData = data
  }
  if (userProperties !== undefined) properties.userProperties = toUserProperties(userProperties, `${where}.userProperties`)
  return properties
}

/** `{ "key": "value", "repeated": ["v1", "v2"] }`: as MQTT.js takes them, pairs in this order. */
function toUserProperties (value: unknown, field: string): UserProperties {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadMessage(400, `${field}: expected an object of strings or arrays of strings`)
  const userProperties: UserProperties = {}
  for (const [key, values] of Object.entries(value)) {
    mqttString(key, `${field} key ${JSON.stringify(key)}`)
    const where = `${field}[${JSON.stringify(key)}]`
    let checked: string | string[]
    if (Array.isArray(values)) {
      if (values.length === 0) throw new BadMessage(400, `${where}: expected a string or a non-empty array of strings`)
      checked = values.map((item, i) => mqttString(item, `${where}[${i}]`))
    } else {
      checked = mqttString(values, where)
    }
    // an own property whatever the key: `__proto__` would otherwise set the prototype
    Object.defineProperty(userProperties, key, { value: checked, enumerable: true, writable: true, configurable: true })
  }
  return userProperties
}

/** `value` if it is a string MQTT can carry: UTF-8 [MQTT-1.5.4-1], no U+0000 [MQTT-1.5.4-2], at most 65,535 bytes. */
function mqttString (value: unknown, field: string): string {
  if (typeof value !== 'string') throw new BadMessage(400, `${field}: expected a string`)
  // A lone surrogate has no UTF-8 form: MQTT would refuse these bytes
  if (/\p{Surrogate}/u.test(value)) throw new BadMessage(400, `${field}: not valid UTF-8 (a lone surrogate) [MQTT-1.5.4-1]`)
  if (value.includes('\u0000')) throw new BadMessage(400, `${field}: U+0000 is not allowed [MQTT-1.5.4-2]`)
  if (Buffer.byteLength(value) > maxMqttStringBytes) throw new BadMessage(400, `${field}: over ${maxMqttStringBytes} bytes of UTF-8`)
  return value
}

function fromBase64 (value: unknown, field: string): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new BadMessage(400, `${field}: expected base64`)
  return Buffer.from(value, 'base64')
}

/** The bytes of the MQTT 5 PUBLISH that carries the message: what limits.maxPacketSize bounds. */
function publishPacketSize (topic: string, qos: number, properties: MessageProperties, payloadBytes: number): number {
  // each property: a one-byte identifier, then its value
  let propertyBytes = 0
  if (properties.payloadFormatIndicator !== undefined) propertyBytes += 1 + 1
  if (properties.messageExpiryInterval !== undefined) propertyBytes += 1 + 4
  if (properties.contentType !== undefined) propertyBytes += 1 + 2 + Buffer.byteLength(properties.contentType)
  if (properties.responseTopic !== undefined) propertyBytes += 1 + 2 + Buffer.byteLength(properties.responseTopic)
  if (properties.correlationData !== undefined) propertyBytes += 1 + 2 + properties.correlationData.length
  for (const [key, values] of Object.entries(properties.userProperties ?? {})) {
    for (const value of Array.isArray(values) ? values : [values]) propertyBytes += 1 + 2 + Buffer.byteLength(key) + 2 + Buffer.byteLength(value)
  }
  const remaining = 2 + Buffer.byteLength(topic) + (qos > 0 ? 2 : 0) + variableByteIntegerSize(propertyBytes) + propertyBytes + payloadBytes
  return 1 + variableByteIntegerSize(remaining) + remaining
}

function variableByteIntegerSize (value: number): number {
  return value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4
}

export function addHttpPublishRoute (routes: Routes, parts: HttpPublishParts): void {
  const { aedes, limits, publishRates, metrics, audit } = parts
  routes.set('POST /api/v1/publish', async (req, res, url) => {
    const auth = authenticateRequest(parts.authenticator, req, url)
    if (!auth.ok) return sendJson(res, 401, { error: auth.error })
    const { identity } = auth
    if (!isJsonBody(req)) return sendJson(res, 415, { error: 'expected content-type: application/json (charset utf-8, if given)' })
    let body: unknown
    try {
      body = JSON.parse((await readBody(req, limits.maxPacketSize)).toString('utf8'))
    } catch (err) {
      if (err instanceof BodyTooLarge) return refuseTooLarge(res, err)
      return sendJson(res, 400, { error: 'the body is not valid JSON' })
    }
    if (nestsDeeperThan(body, maxJsonDepth)) return sendJson(res, 400, { error: `the body nests arrays and objects more than ${maxJsonDepth} deep` })
    const batch = typeof body === 'object' && body !== null && 'messages' in body
    const inputs = batch ? (body as { messages: unknown }).messages : [body]
    if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > maxBatch) {
      return sendJson(res, 400, { error: `messages: expected an array of 1 to ${maxBatch} messages` })
    }
    const grants = compileGrants(identity, `http:${identity.user ?? 'anonymous'}`, parts.acl)
    if (!grants.ok) return sendJson(res, 403, { error: grants.reason })
    let packets: PublishPacket[]
    try {
      packets = inputs.map((input: MessageInput, i) => {
        const where = batch ? `messages[${i}]` : 'body'
        const packet = toPacket(input, where, limits)
        if (!grants.grants.canPublish(packet.topic)) throw new BadMessage(403, `${where}.topic: publishing to ${packet.topic} is not granted`)
        const overLimit = publishLimitViolation(grants.grants.limits, packet.qos, packet.payload.length)
        if (overLimit !== null) throw new OverLimit(overLimit.cause, `${where}: ${overLimit.reason}`)
        return packet
      })
    } catch (err) {
      if (!(err instanceof BadMessage)) throw err
      if (err.status === 403) {
        audit.warn({ event: 'acl.denied', action: 'publish', via: 'http', user: identity.user, reason: err.message }, 'HTTP publish refused')
        metrics.aclDenied('publish')
      }
      if (err instanceof OverLimit) {
        audit.warn({ event: 'limit.exceeded', action: 'publish', via: 'http', user: identity.user, reason: err.message }, 'HTTP publish refused')
        metrics.messageDropped(err.dropReason, inputs.length)
      }
      return sendJson(res, err.status, { error: err.message })
    }
    // Idempotency-Key: a retry of this request on a history topic is not stored or delivered twice (docs/history.md)
    const idempotency = req.headers['idempotency-key']
    if (idempotency !== undefined) {
      if (typeof idempotency !== 'string' || idempotency === '' || idempotency.length > maxIdempotencyKeyLength) return sendJson(res, 400, { error: `Idempotency-Key: expected one value of 1 to ${maxIdempotencyKeyLength} characters` })
      packets.forEach((packet, i) => withIdempotencyKey(packet, batch ? `${idempotency}#${i}` : idempotency))
    }
    // The user's buckets, shared with their MQTT connections; anonymous publishers by address.
    const rateKeys = publishRates.keys(identity.user, `http:${req.socket.remoteAddress ?? ''}`, grants.grants.limits)
    const overRate = publishRates.take(rateKeys, packets.length, packets.reduce((sum, packet) => sum + packet.payload.length, 0))
    if (overRate !== null) {
      audit.warn({ event: 'limit.exceeded', action: 'publish', via: 'http', user: identity.user, reason: overRate }, 'HTTP publish refused')
      metrics.messageDropped('rate_limit', packets.length)
      return sendJson(res, 429, { error: overRate })
    }
    // retained messages over a cap are published live, not stored, as over MQTT
    const publisher = { user: identity.user, clientId: null, via: 'http' as const }
    for (const packet of packets) if (packet.retain) await parts.retainedCaps.apply(packet, publisher, grants.grants.limits)
    await Promise.all(packets.map((packet) => new Promise<void>((resolve, reject) => {
      aedes.publish(packet, (err) => { if (err === undefined || err === null) resolve(); else reject(err) })
    })))
    for (const packet of packets) metrics.messageIn(packet.qos as QosLabel, packet.payload.length)
    sendJson(res, 200, { accepted: packets.length })
  })
}
