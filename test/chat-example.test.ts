// The worked example of docs/auth.md, run for real: config/examples/chat.yaml.
import jwt from 'jsonwebtoken'
import t from 'tap'
import { loadConfig } from '../src/broker/config/config.js'
import { collect, connectClient, startBroker, subscribeGranted, waitFor } from './helpers/broker.js'

const secret = 'chat-example-secret-0123456789abcdef'

t.test('chat: members use their rooms, read only their own inbox', async (t) => {
  const config = loadConfig({ file: new URL('../config/examples/chat.yaml', import.meta.url).pathname, env: { JWT_SECRET: secret } })
  const broker = await startBroker(t, { ...config, host: '127.0.0.1', mqtt: { port: 0 }, http: { ...config.http, port: 0 }, auth: config.auth })
  // what the app backend mints: alice belongs to rooms r1 and r2, bob to r1
  const token = (user: string, rooms: string[]): string => jwt.sign({
    acl: {
      pub: [...rooms.flatMap((r) => [`chat/rooms/${r}/messages`, `chat/rooms/${r}/typing`]), 'chat/inbox/+'],
      sub: [...rooms.flatMap((r) => [`chat/rooms/${r}/messages`, `chat/rooms/${r}/typing`]), `chat/inbox/${user}`, '$presence/+']
    }
  }, secret, { subject: user, issuer: 'https://app.example.com', audience: 'realtime-broker', expiresIn: 600 })

  const alice = await connectClient(t, broker, 'tcp', { username: 'alice', password: token('alice', ['r1', 'r2']) })
  const bob = await connectClient(t, broker, 'ws', { username: 'bob', password: token('bob', ['r1']) })
  t.same(await subscribeGranted(bob, { 'chat/rooms/r1/messages': { qos: 1 }, 'chat/rooms/r2/messages': { qos: 1 }, 'chat/rooms/+/messages': { qos: 1 }, 'chat/inbox/bob': { qos: 1 }, 'chat/inbox/alice': { qos: 1 } }),
    [1, 128, 128, 1, 128], 'bob: his room and his inbox only')
  const got = collect(bob)
  await alice.publishAsync('chat/rooms/r1/messages', JSON.stringify({ text: 'hello r1' }), { qos: 1 })
  await alice.publishAsync('chat/inbox/bob', JSON.stringify({ text: 'psst' }), { qos: 1 })
  await waitFor(() => got.length === 2, 'room message and private message')
  t.same(got.map((m) => m.topic).sort(), ['chat/inbox/bob', 'chat/rooms/r1/messages'])

  const closed = new Promise<void>((resolve) => bob.once('close', () => resolve()))
  bob.publish('chat/rooms/r2/messages', 'not a member')
  await closed
  t.pass('writing to a room you are not in closes the connection')
})
