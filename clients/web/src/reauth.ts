// Re-authentication on a live MQTT 5 connection (MQTT 5.0 section 4.12.1): the client sends
// AUTH with reason code 0x19 (Re-authenticate), the Authentication Method of its CONNECT and
// the new token as Authentication Data [MQTT-4.12.1-1]; the broker answers AUTH 0x00 (Success),
// or a DISCONNECT when it refuses the token [MQTT-4.12.1-2].
import type { MqttClient, Packet } from 'mqtt'
import type { IAuthPacket } from 'mqtt-packet'
import { asMqttBinary } from './codec.js'
import { jwtAuthenticationMethod } from './protocol.js'

const reauthenticate = 0x19
const success = 0x00

type SendPacket = (packet: IAuthPacket) => void

/**
 * MQTT.js (5.16) has no public API to send an AUTH packet on a live connection
 * (mqttjs/MQTT.js#1795; the `reauthenticate()` of mqttjs/MQTT.js#2057 is not released). This
 * takes the client's own packet path, `_sendPacket`, which MQTT.js itself uses to answer an
 * AUTH 0x18: the packet is serialized by mqtt-packet and written in order with the client's
 * other packets. Null when that path is missing (another MQTT.js): the caller then refreshes
 * the token by reconnecting, as on MQTT 3.1.1.
 */
function packetPath (client: MqttClient): SendPacket | null {
  const send = (client as unknown as { _sendPacket?: unknown })._sendPacket
  return typeof send === 'function' ? (packet) => { send.call(client, packet) } : null
}

/**
 * accepted: the broker answered AUTH Success; unsupported: this MQTT.js cannot send AUTH;
 * unanswered: no answer within `timeoutMs`; closed: the connection ended first (a refused
 * token ends it with a DISCONNECT).
 */
export type ReauthOutcome = 'accepted' | 'unsupported' | 'unanswered' | 'closed'

/** Sends `token` in an AUTH 0x19 on `client`'s connection and waits for the broker's answer. */
export function reauthenticateWith (client: MqttClient, token: string, timeoutMs: number): Promise<ReauthOutcome> {
  const send = packetPath(client)
  if (send === null) return Promise.resolve('unsupported')
  return new Promise((resolve) => {
    const finish = (outcome: ReauthOutcome): void => {
      clearTimeout(timer)
      client.removeListener('packetreceive', onPacket)
      client.removeListener('close', onClose)
      resolve(outcome)
    }
    // MQTT.js closes the connection on an AUTH of another method (handlers/auth): onClosed's business.
    const onPacket = (packet: Packet): void => { if (packet.cmd === 'auth' && packet.reasonCode === success) finish('accepted') }
    const onClose = (): void => finish('closed')
    const timer = setTimeout(() => finish('unanswered'), timeoutMs)
    client.on('packetreceive', onPacket)
    client.on('close', onClose)
    send({
      cmd: 'auth',
      reasonCode: reauthenticate,
      properties: { authenticationMethod: jwtAuthenticationMethod, authenticationData: asMqttBinary(tokenBytes(token)) }
    })
  })
}

/** A token as Authentication Data: its UTF-8 bytes. */
export function tokenBytes (token: string): Uint8Array {
  return new TextEncoder().encode(token)
}
