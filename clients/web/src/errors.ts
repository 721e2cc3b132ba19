// Errors the SDK rejects promises with or emits as 'error' events. Each has a stable `code`
// so apps can branch on it without matching message text.

export type RealtimeErrorCode =
  | 'connection-refused'
  | 'subscription-refused'
  | 'publish-failed'
  | 'queue-full'
  | 'not-connected'
  | 'closed'
  | 'token'
  | 'payload'
  | 'history'

export class RealtimeError extends Error {
  constructor (readonly code: RealtimeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'RealtimeError'
  }
}

/** CONNACK return codes of MQTT 3.1.1 and what they mean to an app. */
const connackReasons: Record<number, string> = {
  1: 'the broker does not accept MQTT 3.1.1',
  2: 'the client id was rejected',
  3: 'the broker is unavailable',
  4: 'the token was refused (malformed, expired, or signed with another key)',
  5: 'not authorized'
}

/** MQTT 5 reason codes a broker may refuse or end something with (MQTT 5.0 section 2.4), for an app. */
const reasonCodeNames: Record<number, string> = {
  0x00: 'normal disconnection',
  0x80: 'unspecified error',
  0x81: 'malformed packet',
  0x82: 'protocol error',
  0x83: 'implementation specific error',
  0x84: 'the broker does not accept MQTT 5',
  0x85: 'the client id was rejected',
  0x86: 'the token was refused (malformed, expired, or signed with another key)',
  0x87: 'not authorized',
  0x88: 'the broker is unavailable',
  0x89: 'the broker is busy',
  0x8a: 'banned',
  0x8b: 'the broker is shutting down',
  0x8c: 'bad authentication method',
  0x8d: 'keep alive timeout',
  0x8e: 'session taken over by another connection with the same client id',
  0x8f: 'topic filter invalid',
  0x91: 'packet identifier in use',
  0x90: 'topic name invalid',
  0x93: 'receive maximum exceeded',
  0x94: 'topic alias invalid',
  0x95: 'packet too large',
  0x96: 'message rate too high',
  0x97: 'quota exceeded',
  0x98: 'administrative action',
  0x99: 'payload format invalid',
  0x9a: 'retain not supported',
  0x9b: 'QoS not supported',
  0x9c: 'use another server',
  0x9d: 'server moved',
  0x9e: 'shared subscriptions not supported',
  0x9f: 'connection rate exceeded',
  0xa0: 'maximum connect time',
  0xa1: 'subscription identifiers not supported',
  0xa2: 'wildcard subscriptions not supported'
}

/** What an MQTT 5 reason code means, with the code itself, e.g. "not authorized (0x87)". */
export function describeReasonCode (reasonCode: number): string {
  const hex = `0x${reasonCode.toString(16).padStart(2, '0')}`
  const name = reasonCodeNames[reasonCode]
  return name === undefined ? `reason code ${hex}` : `${name} (${hex})`
}

/**
 * A refused CONNECT: `returnCode` is the CONNACK's code, a 3.1.1 return code or an MQTT 5
 * reason code. 0x01 in answer to an MQTT 5 CONNECT is a 3.1.1 broker refusing the version.
 */
/** A connection refused in a CONNACK, with its code. */
export type ConnectionRefusal = RealtimeError & { returnCode: number }

export function connectionRefused (returnCode: number, protocolVersion: 4 | 5 = 4): ConnectionRefusal {
  const reason = protocolVersion === 5 && returnCode === 0x01
    ? reasonCodeNames[0x84] as string
    : returnCode >= 0x80 ? describeReasonCode(returnCode) : connackReasons[returnCode] ?? `return code ${returnCode}`
  const error = new RealtimeError('connection-refused', `connection refused by the broker: ${reason}`)
  return Object.assign(error, { returnCode })
}

/** An MQTT 5 broker refused a publish in its PUBACK or PUBREC; the connection stays up. */
export function publishRefused (topic: string, reasonCode: number): RealtimeError {
  const error = new RealtimeError('publish-failed', `publish to "${topic}" refused by the broker: ${describeReasonCode(reasonCode)}`)
  return Object.assign(error, { reasonCode })
}

/** A SUBACK refused `filter` with `reasonCode`: 0x80 says no more (3.1.1), an MQTT 5 code says why. */
export function subscriptionRefused (filter: string, reasonCode: number): RealtimeError {
  const reason = reasonCode === 0x80 ? 'not authorized for this topic filter, or over a limit' : describeReasonCode(reasonCode)
  const error = new RealtimeError('subscription-refused', `subscription to "${filter}" refused by the broker: ${reason}`)
  return Object.assign(error, { reasonCode })
}
