// One signed JSON POST with a timeout: webhook batches and authorization hook questions both go
// out through it, on the broker's keep-alive HTTP/1.1 client (http-client.ts): a request is its
// header block, built from a per-URL prefix, and the body's buffers, signed as they are.
import { HttpClient, httpTarget, type HttpAnswer, type HttpTarget } from './http-client.js'
import { signatureHeader, signBody } from './signing.js'

export interface SignedPost {
  url: string
  /** The body: text, bytes, or bytes in parts (sent and signed as they are, not joined). */
  body: string | Buffer | readonly Buffer[]
  /** Signs the request (header broker-signature) when set. */
  secret: string | undefined
  timeoutMs: number
  /** More headers: names and values of the broker's own (no CR or LF). */
  headers?: Record<string, string>
  /** The most of the answer's body kept (the rest is read and dropped). */
  maxAnswerBytes?: number
}

export type PostAnswer = HttpAnswer

const client = new HttpClient()
// each URL parsed once: endpoints and the hook are few
const targets = new Map<string, HttpTarget & { jsonHead: string }>()

function targetOf (url: string): HttpTarget & { jsonHead: string } {
  let target = targets.get(url)
  if (target === undefined) {
    const parsed = httpTarget(url)
    targets.set(url, target = { ...parsed, jsonHead: `${parsed.head}content-type: application/json\r\n` })
  }
  return target
}

/** Posts `body`; resolves with the answer, rejects on a network error or the timeout. */
export async function postSigned (post: SignedPost): Promise<PostAnswer> {
  const target = targetOf(post.url)
  const body = typeof post.body === 'string' ? [Buffer.from(post.body)] : Buffer.isBuffer(post.body) ? [post.body] : post.body
  let length = 0
  for (const part of body) length += part.length
  let head = `${target.jsonHead}content-length: ${length}\r\n`
  if (post.secret !== undefined) head += `${signatureHeader}: ${signBody(post.secret, Math.floor(Date.now() / 1000), body)}\r\n`
  for (const name in post.headers) head += `${name}: ${post.headers[name] as string}\r\n`
  return await client.request(target, `${head}\r\n`, body, post.timeoutMs, post.maxAnswerBytes ?? 0)
}
