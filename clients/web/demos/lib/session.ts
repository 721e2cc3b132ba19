// How a demo page connects: with a token from the broker's development endpoint when it is
// on (http.devTokens), else anonymously (the default config).
import { connect, type RealtimeClient } from '/sdk/realtime.js'

export interface Grants {
  pub: string[]
  sub: string[]
}

export interface DemoSession {
  client: RealtimeClient
  mode: 'token' | 'anonymous'
}

/** A token from POST /api/v1/dev/token; null when the broker does not offer that endpoint. */
async function fetchDevToken (user: string, grants: Grants, ttlS: number): Promise<string | null> {
  const response = await fetch('/api/v1/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, pub: grants.pub, sub: grants.sub, ttl: ttlS })
  })
  if (response.status === 404) return null
  if (!response.ok) throw new Error(`the token endpoint answered ${response.status}`)
  return ((await response.json()) as { token: string }).token
}

export async function startSession (options: { user: string, grants: Grants, ttlS?: number, announcePresence?: boolean }): Promise<DemoSession> {
  const { user, grants, announcePresence = false } = options
  const ttlS = options.ttlS ?? 3600
  let first = await fetchDevToken(user, grants, ttlS)
  if (first === null) return { client: connect({ user, announcePresence }), mode: 'anonymous' }
  // The SDK calls this before each token expires; the first call uses the token fetched above.
  const tokenProvider = async (): Promise<string> => {
    const token = first ?? await fetchDevToken(user, grants, ttlS)
    first = null
    if (token === null) throw new Error('the token endpoint is gone')
    return token
  }
  return { client: connect({ token: tokenProvider, announcePresence }), mode: 'token' }
}

/** A short random id; crypto.randomUUID needs a secure context, which plain http on a LAN is not. */
export function randomId (): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('')
}
