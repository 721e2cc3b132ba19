// MQTT 5 reason codes for the refusals of our policies (spec section 2.4). MQTT 3.1.1 has a
// CONNACK return code and otherwise only a closed connection; a v5 client is told why.
import type { AuthFailureKind } from '../../acl/identity.js'
import type { DisconnectReason, DropReason } from '../observability/metrics.js'

export const ReasonCode = {
  malformedPacket: 0x81,
  protocolError: 0x82,
  notAuthorized: 0x87,
  serverUnavailable: 0x88,
  banned: 0x8A,
  serverBusy: 0x89,
  serverShuttingDown: 0x8B,
  badAuthenticationMethod: 0x8C,
  sessionTakenOver: 0x8E,
  packetTooLarge: 0x95,
  quotaExceeded: 0x97,
  administrativeAction: 0x98,
  qosNotSupported: 0x9B,
  connectionRateExceeded: 0x9F,
  payloadFormatInvalid: 0x99,
  maximumConnectTime: 0xA0
} as const

/**
 * How a refused PUBLISH is answered: with a code in its PUBACK or PUBREC (the connection stays
 * up), or, for a packet over the client's limits, a DISCONNECT with the code (a PUBACK cannot
 * carry 0x95 or 0x9B; [MQTT-3.2.2-11] for the QoS).
 */
export function publishRefusal (cause: DropReason): { ack: number } | { disconnect: number } {
  switch (cause) {
    case 'rate_limit': return { ack: ReasonCode.quotaExceeded }
    case 'payload_format': return { ack: ReasonCode.payloadFormatInvalid }
    case 'size': return { disconnect: ReasonCode.packetTooLarge }
    case 'qos_limit': return { disconnect: ReasonCode.qosNotSupported }
    default: return { ack: ReasonCode.notAuthorized }
  }
}

/**
 * The CONNACK code of a refused CONNECT where MQTT 5 says more than the 3.1.1 return code
 * (which Aedes maps: 2 -> 0x85, 3 -> 0x88, 4 -> 0x86, 5 -> 0x87).
 */
export function connectRefusalCode (kind: AuthFailureKind): number | undefined {
  switch (kind) {
    case 'connection_limit': return ReasonCode.quotaExceeded
    case 'connect_rate_limit': return ReasonCode.connectionRateExceeded
    default: return undefined
  }
}

/** The code of the DISCONNECT the broker sends a v5 client when it ends the connection for `reason`. */
export function disconnectCode (reason: DisconnectReason, code?: number): number {
  if (code !== undefined) return code
  switch (reason) {
    // the credentials the connection was admitted with are no longer valid
    case 'token_expired': return ReasonCode.badAuthenticationMethod
    case 'admin': return ReasonCode.administrativeAction
    case 'shutdown': return ReasonCode.serverShuttingDown
    case 'takeover': return ReasonCode.sessionTakenOver
    default: return 0x80 // unspecified error
  }
}
