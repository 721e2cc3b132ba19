// Webhook request signatures, as Stripe signs: HMAC-SHA256 over `<unix seconds>.<body>` in a
// header `t=<unix seconds>,v1=<hex>`. The receiver recomputes it and refuses stale timestamps,
// so a captured request cannot be replayed later (docs/webhooks.md has the recipe).
import { createHmac, timingSafeEqual } from 'node:crypto'

export const signatureHeader = 'broker-signature'

/** The signature header's value for `body` (text, its UTF-8 bytes, or those in parts) sent at `timestampS`. */
export function signBody (secret: string, timestampS: number, body: string | Buffer | readonly Buffer[]): string {
  // the bytes as sent, after the timestamp: no copy of the body joined to it
  const hmac = createHmac('sha256', secret).update(`${timestampS}.`)
  if (typeof body === 'string' || Buffer.isBuffer(body)) hmac.update(body)
  else for (const part of body) hmac.update(part)
  return `t=${timestampS},v1=${hmac.digest('hex')}`
}

/**
 * Whether `header` signs `body` with `secret`, within `toleranceS` of `nowS`: what a receiver
 * checks (the broker's own tests verify with it too).
 */
export function verifySignature (secret: string, header: string, body: string, nowS: number, toleranceS = 300): boolean {
  const fields = new Map(header.split(',').map((part) => {
    const at = part.indexOf('=')
    return [part.slice(0, at).trim(), part.slice(at + 1).trim()] as const
  }))
  const timestamp = Number(fields.get('t'))
  const given = fields.get('v1')
  if (!Number.isInteger(timestamp) || given === undefined || Math.abs(nowS - timestamp) > toleranceS) return false
  const expected = signBody(secret, timestamp, body).slice(`t=${timestamp},v1=`.length)
  return given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected))
}
