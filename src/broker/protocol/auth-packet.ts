// MQTT 5 AUTH packets (section 3.15) for re-authentication: the guard withholds a client's AUTH
// from Aedes (guarded-connection.ts, authPacketEvent) and the policies answer it (hooks.ts).
// The only method is JWT, completed in one step: a client re-authenticates with AUTH 0x19 and a
// fresh token as Authentication Data; the broker answers AUTH 0x00 or ends the connection.
import mqttPacket from 'mqtt-packet'

/** The Authentication Method whose Authentication Data is a JWT (CONNECT and AUTH). */
export const jwtAuthenticationMethod = 'JWT'

export const AuthReason = { success: 0x00, continueAuthentication: 0x18, reauthenticate: 0x19 } as const

export interface AuthPacket {
  reasonCode: number
  method: string | undefined
  data: Buffer | undefined
}

/** Reads a whole AUTH packet (the guard checked its framing and properties). */
export function parseAuthPacket (bytes: Buffer): AuthPacket {
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  let parsed: mqttPacket.IAuthPacket | null = null
  parser.on('packet', (packet: mqttPacket.Packet) => { if (packet.cmd === 'auth') parsed = packet })
  parser.parse(bytes)
  const packet = parsed as mqttPacket.IAuthPacket | null
  if (packet === null) throw new Error('not an AUTH packet')
  return { reasonCode: packet.reasonCode ?? AuthReason.success, method: packet.properties?.authenticationMethod, data: packet.properties?.authenticationData }
}

/** AUTH 0x00 naming `method` [MQTT-4.12.0-5]: the re-authentication succeeded. */
export function authSuccessBytes (method: string): Buffer {
  return mqttPacket.generate({ cmd: 'auth', reasonCode: AuthReason.success, properties: { authenticationMethod: method } }, { protocolVersion: 5 })
}
