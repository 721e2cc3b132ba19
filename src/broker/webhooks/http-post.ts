// One signed JSON POST with a timeout: webhook batches and authorization hook questions both go
// out through it. Node's fetch (undici) keeps connections alive between requests.
import { signatureHeader, signBody } from './signing.js'

export interface SignedPost {
  url: string
  body: string
  /** Signs the request (header broker-signature) when set. */
  secret: string | undefined
  timeoutMs: number
  headers?: Record<string, string>
}

/** Posts `body`; resolves with the response, rejects on a network error or the timeout. */
export async function postSigned (request: SignedPost): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...request.headers }
  if (request.secret !== undefined) headers[signatureHeader] = signBody(request.secret, Math.floor(Date.now() / 1000), request.body)
  return await fetch(request.url, { method: 'POST', headers, body: request.body, signal: AbortSignal.timeout(request.timeoutMs) })
}
