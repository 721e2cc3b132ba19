// Reads a JWT's timing and subject, without verifying it (the broker verifies), to know when
// to fetch the next one and which user this client is.
import { RealtimeError } from './errors.js'

export type TokenProvider = () => string | Promise<string>

export interface TokenInfo {
  sub: string | null
  /** Seconds since the epoch, or null for a token that does not expire. */
  exp: number | null
  iat: number | null
}

export function readToken (token: string): TokenInfo {
  const part = token.split('.')[1]
  if (part === undefined) throw new RealtimeError('token', 'the token is not a JWT (header.payload.signature)')
  let claims: Record<string, unknown>
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/')
    claims = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, '='))) as Record<string, unknown>
  } catch (err) {
    throw new RealtimeError('token', 'the token payload is not base64url JSON', { cause: err })
  }
  return {
    sub: typeof claims.sub === 'string' ? claims.sub : null,
    exp: typeof claims.exp === 'number' ? claims.exp : null,
    iat: typeof claims.iat === 'number' ? claims.iat : null
  }
}

/**
 * How long after receiving a token to fetch the next one: a fifth of its lifetime before it
 * expires (1 s to 60 s ahead), never sooner than half its lifetime nor than 1 s. The lifetime
 * comes from exp - iat when the token has iat, so a browser clock that is off does not
 * matter; less 1 s, since iat is rounded down to the second and the token may be older.
 */
export function refreshDelayMs (info: TokenInfo, nowMs: number): number | null {
  if (info.exp === null) return null
  const lifetimeS = info.iat !== null ? info.exp - info.iat - 1 : info.exp - nowMs / 1000
  const marginS = Math.min(60, Math.max(1, lifetimeS * 0.2))
  return Math.round(Math.max(1, lifetimeS - marginS, lifetimeS / 2) * 1000)
}

/** The client's current token: fetched from the provider when due, read for its subject and expiry. */
export class TokenKeeper {
  private token: string | undefined
  private info: TokenInfo | null = null
  private receivedAt = 0

  constructor (private readonly source: string | TokenProvider | undefined) {
    if (typeof source === 'string') this.accept(source)
  }

  /** Whether a new token can be had (a provider, not a fixed token). */
  get renewable (): boolean {
    return typeof this.source === 'function'
  }

  get subject (): string | null {
    return this.info?.sub ?? null
  }

  /** The token to connect with: the current one, or the provider's next when it is due. */
  async current (): Promise<string | undefined> {
    if (typeof this.source !== 'function') return this.token
    if (this.token === undefined || this.dueInMs(Date.now()) === 0) await this.renew()
    return this.token
  }

  /** Asks the provider for a new token now, and returns it (undefined without a provider). */
  async renew (): Promise<string | undefined> {
    if (typeof this.source !== 'function') return undefined
    let token: unknown
    try {
      token = await this.source()
    } catch (err) {
      throw new RealtimeError('token', `the token provider failed: ${(err as Error).message}`, { cause: err })
    }
    if (typeof token !== 'string' || token === '') throw new RealtimeError('token', 'the token provider returned no token')
    this.accept(token)
    return token
  }

  /** The broker refused the token: the next connection needs a new one. */
  discard (): void {
    this.token = undefined
    this.info = null
  }

  /** ms until a new token should be fetched (0: now); null when never. */
  dueInMs (now: number): number | null {
    if (!this.renewable || this.info === null) return null
    const delay = refreshDelayMs(this.info, this.receivedAt)
    return delay === null ? null : Math.max(0, this.receivedAt + delay - now)
  }

  private accept (token: string): void {
    this.info = readToken(token)
    this.token = token
    this.receivedAt = Date.now()
  }
}
