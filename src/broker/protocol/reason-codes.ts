// MQTT 5 reason codes for the refusals of our policies (spec section 2.4). MQTT 3.1.1 has a
// CONNACK return code and otherwise only a closed connection; a v5 client is told why.
import type { AuthFailureKind } from '../../acl/identity.js'
import type { DropReason } from '../observability/metrics.js'

export const ReasonCode = {
  notAuthorized: 0x87,
  serverUnavailable: 0x88,
  serverShuttingDown: 0x8B,
  sessionTakenOver: 0x8E,
  packetTooLarge: 0x95,
  quotaExceeded: 0x97,
  administrativeAction: 0x98,
  qosNotSupported: 0x9B,
  connectionRateExceeded: 0x9F,
  maximumConnectTime: 0xA0
} as const

/** The code of a refused PUBLISH, in its PUBACK or PUBREC (the connection stays up). */
export function publishRefusalCode (cause: DropReason): number {
  switch (cause) {
    case 'rate_limit': return ReasonCode.quotaExceeded
    case 'size': return ReasonCode.packetTooLarge
    case 'qos_limit': return ReasonCode.qosNotSupported
    default: return ReasonCode.notAuthorized
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
