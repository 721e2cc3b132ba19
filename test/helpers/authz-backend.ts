// A real HTTP authorization backend for hook tests: answers each question with what the test's
// `decide` returns, after `delayMs` if the test sets one; records every question.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Teardown } from './loopback.js'

export interface Question {
  action: 'connect' | 'subscribe' | 'publish'
  user: string | null
  clientId: string
  topic?: string
  roles: string[]
  signature: string
  body: string
}

export interface AuthzBackend {
  url: string
  questions: Question[]
  decide: (question: Question) => Record<string, unknown>
  /** Milliseconds before answering a question (by default none). */
  delayMs: (question: Question) => number
}

export async function startAuthzBackend (t: Teardown): Promise<AuthzBackend> {
  const backend: AuthzBackend = { url: '', questions: [], decide: () => ({ allow: true }), delayMs: () => 0 }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      const question = { ...JSON.parse(body) as Omit<Question, 'signature' | 'body'>, signature: String(req.headers['broker-signature']), body }
      backend.questions.push(question)
      const answer = (): void => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(backend.decide(question))) }
      const delay = backend.delayMs(question)
      if (delay > 0) setTimeout(answer, delay)
      else answer()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  backend.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/authz`
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return backend
}
