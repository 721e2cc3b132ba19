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

export function connectionRefused (returnCode: number): RealtimeError {
  const reason = connackReasons[returnCode] ?? `return code ${returnCode}`
  const error = new RealtimeError('connection-refused', `connection refused by the broker: ${reason}`)
  return Object.assign(error, { returnCode })
}

export function subscriptionRefused (filter: string): RealtimeError {
  return new RealtimeError('subscription-refused', `subscription to "${filter}" refused by the broker: not authorized for this topic filter, or over a limit`)
}
