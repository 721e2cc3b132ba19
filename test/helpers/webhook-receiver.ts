// A real HTTP receiver for webhook tests: records every request (headers, raw body), answers
// with the status the test sets, and can go down and come back on the same port.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { freePort, type Teardown } from './loopback.js'

export interface ReceivedRequest {
  headers: IncomingHttpHeaders
  body: string
  status: number
}

export interface ReceivedEvent {
  id: string
  type: string
  at: string
  node: string
  data: Record<string, unknown>
}

export interface WebhookReceiver {
  url: string
  requests: ReceivedRequest[]
  /** Events of the requests answered 2xx, in arrival order. */
  accepted: () => ReceivedEvent[]
  /** The status of the next answers (200 by default). */
  status: number
  /** Milliseconds each answer waits. */
  delayMs: number
  stop: () => Promise<void>
  start: () => Promise<void>
}

export async function startWebhookReceiver (t: Teardown, path = '/hooks'): Promise<WebhookReceiver> {
  const port = await freePort()
  let server: Server | null = null
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${port}${path}`,
    requests: [],
    accepted: () => receiver.requests.filter((r) => r.status < 300).flatMap((r) => (JSON.parse(r.body) as { events: ReceivedEvent[] }).events),
    status: 200,
    delayMs: 0,
    start: async () => {
      const listening = createServer((req, res) => {
        const chunks: Buffer[] = []
        req.on('data', (chunk: Buffer) => chunks.push(chunk))
        req.on('end', () => {
          const status = receiver.status
          const answer = (): void => {
            receiver.requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status })
            res.writeHead(status).end()
          }
          if (receiver.delayMs > 0) setTimeout(answer, receiver.delayMs)
          else answer()
        })
      })
      await new Promise<void>((resolve) => listening.listen(port, '127.0.0.1', resolve))
      server = listening
    },
    stop: async () => {
      const running = server
      server = null
      if (running === null) return
      running.closeAllConnections()
      await new Promise<void>((resolve) => running.close(() => resolve()))
    }
  }
  await receiver.start()
  t.teardown(() => receiver.stop())
  return receiver
}
