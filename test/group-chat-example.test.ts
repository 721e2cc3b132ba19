// The worked example of docs/auth.md, run for real: examples/group-chat/backend.ts decides who
// may use a group from its own data, hears the messages through a webhook, and a member it
// removes loses the group at once (revocation), without a new token.
import jwt from 'jsonwebtoken'
import t from 'tap'
import { startGroupChatBackend } from '../examples/group-chat/backend.js'
import { collect, connectClient, sleep, startBroker, subscribeGranted, waitFor } from './helpers/broker.js'

const jwtSecret = 'group-chat-example-secret-0123456789'
const hookSecret = 'group-chat-hook-secret-0123456789'
const webhookSecret = 'group-chat-webhook-secret-0123456789'
const as = (user: string): { username: string, password: string, protocolVersion: 5 } => ({ username: '', password: jwt.sign({ sub: user }, jwtSecret, { expiresIn: 600 }), protocolVersion: 5 })

t.test('group chat: membership from the app\'s database, messages to its webhook, removal revoked at once', async (t) => {
  const broker = { url: '', adminToken: jwt.sign({ sub: 'ops' }, jwtSecret, { expiresIn: 600 }) }
  const backend = await startGroupChatBackend({ hookSecret, webhookSecret, members: new Map([['42', new Set(['alice', 'bob'])]]), broker })
  t.teardown(() => backend.close())
  const node = await startBroker(t, {
    auth: { anonymous: false, jwt: { secret: jwtSecret } },
    // the ceiling every user has; the backend decides within it
    acl: { roles: { 'chat-user': { pub: ['groups/+/messages'], sub: ['groups/+/messages'] } }, users: { ops: { roles: ['admin'] } }, defaultRoles: ['chat-user'] },
    authorizationHook: { url: `${backend.url}/broker/authz`, subscribe: true, publish: true, secret: hookSecret },
    webhooks: { endpoints: [{ name: 'app', url: `${backend.url}/broker/events`, secret: webhookSecret, events: ['message.published'], topics: ['groups/+/messages'] }], batchDelayMs: 20 }
  })
  broker.url = `http://127.0.0.1:${node.addresses.http.port}`

  const alice = await connectClient(t, node, 'tcp', as('alice'))
  const bob = await connectClient(t, node, 'tcp', as('bob'))
  const carol = await connectClient(t, node, 'tcp', as('carol'))
  t.same(await subscribeGranted(bob, { 'groups/42/messages': { qos: 1 } }), [1], 'bob, a member, subscribes')
  t.same(await subscribeGranted(carol, { 'groups/42/messages': { qos: 1 } }), [0x87], 'carol, not a member, is refused')
  const bobGot = collect(bob)
  await alice.publishAsync('groups/42/messages', 'hi group', { qos: 1 })
  await waitFor(() => bobGot.length === 1, 'bob gets alice\'s message')
  await waitFor(() => backend.messages.length === 1, 'the backend hears it through its webhook')
  t.same(backend.messages, [{ group: '42', user: 'alice', text: 'hi group' }])

  // bob leaves group 42 in the app: no new token, the broker forgets him at once
  const removed = await fetch(`${backend.url}/groups/42/members/bob`, { method: 'DELETE' })
  t.equal(removed.status, 204)
  await sleep(100)
  await alice.publishAsync('groups/42/messages', 'bob is gone', { qos: 1 })
  await sleep(200)
  t.equal(bobGot.length, 1, 'bob no longer receives the group')
  t.same(await subscribeGranted(bob, { 'groups/42/messages': { qos: 1 } }), [0x87], 'nor may he subscribe again')

  // carol joins: allowed at once, though her refusal was cached for 60 s (the backend revokes it)
  t.equal((await fetch(`${backend.url}/groups/42/members/carol`, { method: 'PUT' })).status, 204)
  await sleep(100)
  t.same(await subscribeGranted(carol, { 'groups/42/messages': { qos: 1 } }), [1], 'carol, now a member, subscribes')
})
