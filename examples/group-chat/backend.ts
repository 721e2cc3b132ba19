// An app backend for the broker's authorization hook and webhooks (docs/auth.md, worked
// example): group chat where membership lives in the app's database (here, a Map). The broker
// asks it who may read and write `groups/<id>/messages`; it hears every message through a
// webhook; removing a member revokes their cached grants on every broker node and unsubscribes
// them. Node's standard library only. Run: node --import tsx examples/group-chat/backend.ts
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface GroupChatOptions {
  /** The broker's authorizationHook.secret and the webhook endpoint's secret. */
  hookSecret: string
  webhookSecret: string
  /** group id -> members: the app's database. */
  members: Map<string, Set<string>>
  /** The broker's HTTP address and an admin token, for revocations. */
  broker: { url: string, adminToken: string }
}

export interface GroupChatBackend {
  url: string
  /** Messages the webhook delivered, each once (by event id). */
  messages: Array<{ group: string, user: string | null, text: string }>
  close: () => Promise<void>
}

/** The documented recipe (docs/webhooks.md): HMAC-SHA256 over `t.body`, timestamp at most 5 minutes off. */
export function verified (secret: string, header: string | undefined, body: string): boolean {
  const fields = Object.fromEntries((header ?? '').split(',').map((part) => part.split('=', 2)))
  const timestamp = Number(fields.t)
  if (!Number.isInteger(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > 300 || typeof fields.v1 !== 'string') return false
  const expected = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')
  return fields.v1.length === expected.length && timingSafeEqual(Buffer.from(fields.v1), Buffer.from(expected))
}

const groupTopic = /^groups\/([^/]+)\/messages$/

export async function startGroupChatBackend (options: GroupChatOptions, port = 0): Promise<GroupChatBackend> {
  const seen = new Set<string>()
  const messages: GroupChatBackend['messages'] = []

  // the authorization hook: connect is anyone's (the JWT said who they are); a group's topic
  // only its members', cached by the broker for a minute (a removal revokes it at once)
  const authorize = (question: { action: string, user: string | null, topic?: string }): object => {
    if (question.action === 'connect') return { allow: true, ttl: 300 }
    const group = groupTopic.exec(question.topic ?? '')?.[1]
    const member = group !== undefined && question.user !== null && options.members.get(group)?.has(question.user) === true
    return { allow: member, ttl: 60 }
  }

  // the webhook: each event once, whatever the retries
  const receive = (events: Array<{ id: string, type: string, data: { topic?: string, user?: string | null, payload?: string } }>): void => {
    for (const event of events) {
      if (seen.has(event.id)) continue
      seen.add(event.id)
      const group = groupTopic.exec(event.data.topic ?? '')?.[1]
      if (event.type === 'message.published' && group !== undefined) messages.push({ group, user: event.data.user ?? null, text: event.data.payload ?? '' })
    }
  }

  // a membership change makes the broker forget the user's cached answers (a refusal is
  // cached too); a removal also drops their subscription to the group
  const revoke = async (user: string, unsubscribe: string[]): Promise<void> => {
    const response = await fetch(`${options.broker.url}/api/v1/admin/authz/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${options.broker.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user, unsubscribe })
    })
    if (response.status !== 202) throw new Error(`revocation refused: HTTP ${response.status}`)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse, body: string): Promise<void> => {
    const membership = /^\/groups\/([^/]+)\/members\/([^/]+)$/.exec(req.url ?? '')
    if (req.method === 'POST' && req.url === '/broker/authz') {
      if (!verified(options.hookSecret, req.headers['broker-signature'] as string | undefined, body)) return void res.writeHead(401).end()
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(authorize(JSON.parse(body))))
    } else if (req.method === 'POST' && req.url === '/broker/events') {
      if (!verified(options.webhookSecret, req.headers['broker-signature'] as string | undefined, body)) return void res.writeHead(401).end()
      receive((JSON.parse(body) as { events: Parameters<typeof receive>[0] }).events)
      res.writeHead(204).end()
    } else if (membership !== null && (req.method === 'PUT' || req.method === 'DELETE')) {
      const [, group = '', user = ''] = membership
      if (req.method === 'PUT') {
        options.members.set(group, (options.members.get(group) ?? new Set()).add(user))
        await revoke(user, [])
      } else {
        options.members.get(group)?.delete(user)
        await revoke(user, [`groups/${group}/messages`])
      }
      res.writeHead(204).end()
    } else {
      res.writeHead(404).end()
    }
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((err: Error) => {
        res.writeHead(500).end(err.message)
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    messages,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
}

// run directly: secrets and the broker from the environment, group 42 with alice and bob
if (import.meta.url === `file://${process.argv[1]}`) {
  const env = (name: string): string => {
    const value = process.env[name]
    if (value === undefined || value === '') throw new Error(`set ${name}`)
    return value
  }
  const backend = await startGroupChatBackend({
    hookSecret: env('AUTHZ_HOOK_SECRET'),
    webhookSecret: env('WEBHOOK_SECRET'),
    members: new Map([['42', new Set(['alice', 'bob'])]]),
    broker: { url: process.env.BROKER_HTTP ?? 'http://127.0.0.1:8080', adminToken: env('BROKER_ADMIN_TOKEN') }
  }, Number(process.env.PORT ?? 3000))
  console.log(`group chat backend on ${backend.url}`)
}
