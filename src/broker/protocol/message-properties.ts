// The MQTT 5 properties that belong to an application message and go with it to every
// subscriber, on every node, unaltered [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16]
// [MQTT-3.3.2-17] [MQTT-3.3.2-20], the Message Expiry Interval less the time the message
// waited [MQTT-3.3.2-6]. Topic Alias and Subscription Identifier belong to one connection and
// one subscription: they are not among them [MQTT-3.3.2-7] [MQTT-3.3.4-3].
import type { IPublishPacket } from 'mqtt-packet'

type PublishProperties = NonNullable<IPublishPacket['properties']>

/** As mqtt-packet has them: a key given several times holds its values in an array, in order. */
export type UserProperties = Record<string, string | string[]>

export type MessageProperties = Pick<PublishProperties, 'payloadFormatIndicator' | 'messageExpiryInterval' | 'contentType' | 'responseTopic' | 'correlationData'> & {
  userProperties?: UserProperties
}

/**
 * A message as the emitter carries it: its properties, and (as Aedes 2 sets it at publish, and
 * the inbox codec on another node) the absolute deadline of its Message Expiry Interval.
 */
export interface MessageExpiryFields {
  properties?: MessageProperties
  /** ms since the epoch after which the message is not delivered */
  messageExpiry?: number
}

/**
 * The deadline of a message that expires (ms since the epoch), or undefined. An interval without
 * a deadline was set on a message published just now. An interval of 0 sets none: the message
 * does not expire, as Mosquitto reads it.
 */
export function expiryDeadline (message: MessageExpiryFields, now: number): number | undefined {
  if (typeof message.messageExpiry === 'number') return message.messageExpiry
  const interval = message.properties?.messageExpiryInterval
  return typeof interval === 'number' && interval > 0 ? now + interval * 1000 : undefined
}

/** Whether the message's Message Expiry Interval has passed [MQTT-3.3.2-5]. */
export function hasExpired (message: MessageExpiryFields, now = Date.now()): boolean {
  if (message.properties === undefined && message.messageExpiry === undefined) return false
  const deadline = expiryDeadline(message, now)
  return deadline !== undefined && deadline <= now
}

/** The Message Expiry Interval to send: what is left of it, in whole seconds, rounded up [MQTT-3.3.2-6]. */
export function remainingExpirySeconds (deadline: number, now: number): number {
  return Math.ceil((deadline - now) / 1000)
}
