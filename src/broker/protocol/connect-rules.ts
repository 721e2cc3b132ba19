// MQTT 3.1.1 rules for a CONNECT that mqtt-packet has parsed, as a pure check: returns why
// the connection must be closed without a CONNACK, or null. The byte-level rules (flags,
// field presence, UTF-8, protocol level, client identifier) are PacketFrameGuard's; these
// need the parsed packet or the broker's limits. preConnect (hooks.ts) applies them.
import { topicNameViolation } from '../../acl/topic-grammar.js'

export interface ConnectFields {
  protocolVersion?: number
  keepalive?: number
  will?: { topic: string } | null
}

export interface ConnectLimits {
  /** The largest keep alive a client may ask for, seconds; 0 = any. */
  keepaliveLimitS: number
}

export function connectViolation (packet: ConnectFields, limits: ConnectLimits): string | null {
  // The Will Topic is a topic name: not empty [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2]; a
  // CONNECT that does not conform is closed without CONNACK [MQTT-3.1.4-1]
  if (packet.will != null) {
    const violation = topicNameViolation(packet.will.topic)
    if (violation !== null) return `Will Topic: ${violation}`
  }
  // MQTT 3.1.1 has no CONNACK code for a keep alive the server does not accept (Aedes would
  // send the reserved 0x06): close without CONNACK [MQTT-3.2.2-6]. An MQTT 5 client is told the
  // limit as the Server Keep Alive in its CONNACK instead (Aedes) [MQTT-3.2.2-21].
  const keepalive = packet.keepalive ?? 0
  if (packet.protocolVersion !== 5 && limits.keepaliveLimitS > 0 && (keepalive === 0 || keepalive > limits.keepaliveLimitS)) {
    return `keep alive ${keepalive} s is not within the limit of ${limits.keepaliveLimitS} s [MQTT-3.2.2-6]`
  }
  return null
}
