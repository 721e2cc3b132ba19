// One signed JSON POST with a timeout: webhook batches and authorization hook questions both go
// out through it. node:http with keep-alive agents: connections are reused between requests,
// and a body goes out in one write (fetch streamed it, at several times the CPU per request).
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { signatureHeader, signBody } from './signing.js'

export interface SignedPost {
  url: string
  body: string | Buffer
  /** Signs the request (header broker-signature) when set. */
  secret: string | undefined
  timeoutMs: number
  headers?: Record<string, string>
  /** The most of the answer's body kept (the rest is read and dropped). */
  maxAnswerBytes?: number
}

export interface PostAnswer {
  status: number
  body: string
  /** Whether the body was longer than maxAnswerBytes (and cut). */
  truncated: boolean
}

/** The request took longer than its timeoutMs (name 'TimeoutError', as AbortSignal.timeout's). */
export class PostTimeout extends Error {
  override readonly name = 'TimeoutError'
}

const agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) }

/** Posts `body`; resolves with the answer, rejects on a network error or the timeout. */
export function postSigned (post: SignedPost): Promise<PostAnswer> {
  return new Promise((resolve, reject) => {
    const body = typeof post.body === 'string' ? Buffer.from(post.body) : post.body
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': body.length, ...post.headers }
    if (post.secret !== undefined) headers[signatureHeader] = signBody(post.secret, Math.floor(Date.now() / 1000), body)
    const secure = post.url.startsWith('https:')
    const req = (secure ? httpsRequest : httpRequest)(post.url, { method: 'POST', headers, agent: secure ? agents.https : agents.http })
    const timer = setTimeout(() => req.destroy(new PostTimeout(`no answer within ${post.timeoutMs} ms`)), post.timeoutMs)
    const fail = (err: Error): void => {
      clearTimeout(timer)
      reject(err)
    }
    req.once('error', fail)
    req.once('response', (res: IncomingMessage) => {
      const max = post.maxAnswerBytes ?? 0
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size <= max) chunks.push(chunk)
      })
      res.once('error', fail)
      res.once('end', () => {
        clearTimeout(timer)
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), truncated: size > max })
      })
    })
    req.end(body)
  })
}
