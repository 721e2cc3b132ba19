// Limits that protect the process, as pure checks: each returns why input breaks a limit,
// or null. The hooks turn a reason into the protocol's answer (close, 0x80, CONNACK code).
import type { BrokerConfig } from '../config/config-schema.js'

export type Limits = BrokerConfig['limits']

export function clientIdViolation (clientId: string, limits: Limits): string | null {
  // MQTT 3.1.1 lets a server accept ids longer than 23 bytes [MQTT-3.1.3-5]; we bound them.
  return Buffer.byteLength(clientId) > limits.maxClientIdLength
    ? `client id longer than ${limits.maxClientIdLength} bytes`
    : null
}

export function topicViolation (topic: string, limits: Limits): string | null {
  if (Buffer.byteLength(topic) > limits.maxTopicLength) return `topic longer than ${limits.maxTopicLength} bytes`
  return null
}
