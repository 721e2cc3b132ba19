// Payload encoding: JSON by default in both directions; bytes (or text) when asked for.
import type { IAuthPacket } from 'mqtt-packet'
import { RealtimeError } from './errors.js'

const decoder = new TextDecoder()

/**
 * Bytes are sent as they are; with `raw`, a string is sent as its text; anything else is
 * JSON-encoded. Strings are encoded to UTF-8 by MQTT.js.
 */
export function encodePayload (data: unknown, raw: boolean): string | Uint8Array {
  if (data instanceof Uint8Array) return data
  if (raw) {
    if (typeof data !== 'string') throw new RealtimeError('payload', 'raw publish needs a string or a Uint8Array')
    return data
  }
  const json = JSON.stringify(data)
  // JSON.stringify returns undefined for undefined, functions and symbols.
  if (typeof json !== 'string') throw new RealtimeError('payload', `cannot encode ${typeof data} as JSON`)
  return json
}

/** Parses a JSON payload; an empty payload (a cleared retained message) is null. */
export function decodeJson (topic: string, payload: Uint8Array): unknown {
  if (payload.length === 0) return null
  const text = decoder.decode(payload)
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new RealtimeError('payload', `message on "${topic}" is not JSON; subscribe with { raw: true } to receive its bytes`, { cause: err })
  }
}

/** Binary data in MQTT.js's packets (Authentication Data, Correlation Data). */
export type MqttBinary = NonNullable<NonNullable<IAuthPacket['properties']>['authenticationData']>

/** mqtt-packet writes a Uint8Array as binary data; MQTT.js's typings name only Node's Buffer. */
export function asMqttBinary (bytes: Uint8Array): MqttBinary {
  return bytes as MqttBinary
}
