// Which MQTT version a connection speaks, and how it presents the token. MQTT 5 first, with
// the token as Authentication Data so that it can be refreshed on the live connection; a
// broker that refuses either says so in its CONNACK, and the client steps back for the rest of
// its life, so that an older broker costs one refused attempt, not one per reconnect.

/** 4: MQTT 3.1.1; 5: MQTT 5.0. */
export type ProtocolVersion = 4 | 5

/** The Authentication Method under which the broker takes a JWT as Authentication Data. */
export const jwtAuthenticationMethod = 'JWT'

// The CONNACK codes of a broker that does not speak the level asked for: 0x01 from a 3.1.1
// broker, in its own packet layout, 0x84 from an MQTT 5 one [MQTT-3.1.2-2].
const unsupportedProtocolVersion = new Set([0x01, 0x84])
// An MQTT 5 broker that does not know the Authentication Method [MQTT-4.12.0-1].
const badAuthenticationMethod = 0x8c

export function refusesProtocolVersion (returnCode: number): boolean {
  return unsupportedProtocolVersion.has(returnCode)
}

export class ProtocolChoice {
  private current: ProtocolVersion
  private jwtAuthentication = true

  /** `forced`: the app's choice, never changed; else MQTT 5 first. */
  constructor (private readonly forced: ProtocolVersion | undefined) {
    this.current = forced ?? 5
  }

  get version (): ProtocolVersion {
    return this.current
  }

  /** Whether an MQTT 5 CONNECT carries the token as Authentication Data (method JWT) rather than as the password. */
  get tokenAsAuthenticationData (): boolean {
    return this.current === 5 && this.jwtAuthentication
  }

  /**
   * A CONNACK refused the connection with `returnCode`. True when that refusal was about the
   * version or the authentication method and the next attempt uses another, at once; false when
   * nothing is left to change (the refusal stands).
   */
  stepBack (returnCode: number, sentAuthenticationData: boolean): boolean {
    if (this.current !== 5) return false
    if (refusesProtocolVersion(returnCode)) {
      if (this.forced === 5) return false
      this.current = 4
      return true
    }
    if (returnCode === badAuthenticationMethod && sentAuthenticationData) {
      this.jwtAuthentication = false
      return true
    }
    return false
  }
}
