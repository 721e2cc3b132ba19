// The broker's own HTTP/1.1 client (webhook batches, authorization hook questions) against
// real servers on the loopback: node:http answering with a length, chunks or until close,
// raw sockets answering what node:http would not, and HTTPS with a test CA.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import t from 'tap'
import { HttpClient, httpTarget, type HttpTarget } from '../src/broker/webhooks/http-client.js'
import { postSigned } from '../src/broker/webhooks/http-post.js'
import { verifySignature } from '../src/broker/webhooks/signing.js'
import { freePort, type Teardown } from './helpers/loopback.js'

interface Seen { connections: number, bodies: string[] }

/** A node:http server answering with `answer`, counting connections and keeping request bodies. */
async function httpServer (t: Teardown, answer: (req: IncomingMessage, res: ServerResponse) => void, seen: Seen = { connections: 0, bodies: [] }): Promise<{ server: Server, seen: Seen, url: string }> {
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      seen.bodies.push(Buffer.concat(chunks).toString())
      answer(req, res)
    })
  })
  server.on('connection', () => { seen.connections++ })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { server, seen, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/in?x=1` }
}

/** A TCP server that reads a request's head and writes `answer` (raw bytes) for each, then runs `after`. */
async function rawServer (t: Teardown, answer: string, after: (socket: Socket) => void = () => {}): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createNetServer((socket) => {
    sockets.add(socket)
    let received = ''
    socket.on('data', (data) => {
      received += data.toString('latin1')
      // the client's requests carry content-length: a body follows the head; answered once it is in
      const head = received.indexOf('\r\n\r\n')
      const length = Number(/content-length: (\d+)/.exec(received)?.[1] ?? 0)
      if (head === -1 || received.length < head + 4 + length) return
      received = received.slice(head + 4 + length)
      socket.write(answer)
      after(socket)
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const socket of sockets) socket.destroy(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/raw`
}

const post = async (client: HttpClient, url: string, body = '{}', timeoutMs = 2000, maxAnswerBytes = 1024): ReturnType<HttpClient['request']> => {
  const target: HttpTarget = httpTarget(url)
  return await client.request(target, `${target.head}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`, [Buffer.from(body)], timeoutMs, maxAnswerBytes)
}

t.test('one keep-alive connection carries request after request; answers by length, chunks and 204', async (t) => {
  let n = 0
  const { seen, url } = await httpServer(t, (req, res) => {
    t.equal(req.url, '/in?x=1', 'path and query as given')
    n++
    if (n === 1) res.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":true}')
    else if (n === 2) { res.writeHead(200); res.write('chunk-1,'); setTimeout(() => res.end('chunk-2'), 20) }
    else res.writeHead(204).end()
  })
  const client = new HttpClient()
  t.teardown(() => client.close())
  t.same(await post(client, url, '{"a":1}'), { status: 200, body: '{"allow":true}', truncated: false }, 'a Content-Length answer')
  t.same(await post(client, url, '{"a":2}'), { status: 200, body: 'chunk-1,chunk-2', truncated: false }, 'a chunked answer, in two writes')
  t.same(await post(client, url, '{"a":3}'), { status: 204, body: '', truncated: false }, 'a 204')
  t.same(seen.bodies, ['{"a":1}', '{"a":2}', '{"a":3}'], 'every body arrived whole')
  t.equal(seen.connections, 1, 'all three on one connection')
})

t.test('an answer longer than maxAnswerBytes is cut and flagged; the connection stays usable', async (t) => {
  const { seen, url } = await httpServer(t, (_req, res) => res.writeHead(200).end('x'.repeat(10_000)))
  const client = new HttpClient()
  t.teardown(() => client.close())
  const answer = await post(client, url, '{}', 2000, 100)
  t.same([answer.status, answer.body.length, answer.truncated], [200, 100, true])
  t.equal((await post(client, url, '{}', 2000, 20_000)).body.length, 10_000, 'the next answer whole')
  t.equal(seen.connections, 1)
})

t.test('a connection the server closed while idle is replaced: the request is sent once more, on a new one', async (t) => {
  const { server, seen, url } = await httpServer(t, (_req, res) => res.writeHead(200).end('ok'))
  const client = new HttpClient()
  t.teardown(() => client.close())
  t.equal((await post(client, url, 'first')).status, 200)
  server.closeIdleConnections()
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal((await post(client, url, 'second')).status, 200, 'answered after the server closed the first connection')
  t.same(seen.bodies, ['first', 'second'], 'each body once')
  t.equal(seen.connections, 2, 'a second connection')

  // the race: the server drops a kept-alive connection as the request goes out on it
  let connections = 0
  const dropping = await rawServer(t, 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok', (socket) => {
    // the dropped request's answer was written to a destroyed socket: not counted
    if (socket.destroyed) return
    connections++
    socket.prependOnceListener('data', () => socket.destroy())
  })
  t.equal((await post(client, dropping, 'one')).body, 'ok')
  t.equal((await post(client, dropping, 'two')).body, 'ok', 'the request dropped on the reused connection is answered on a new one')
  t.equal(connections, 2, 'each connection answered once')
})

t.test('interim 100, an answer until close, HTTP/1.0, Connection: close', async (t) => {
  const client = new HttpClient()
  t.teardown(() => client.close())
  const interim = await rawServer(t, 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok')
  t.same(await post(client, interim), { status: 201, body: 'ok', truncated: false }, 'the interim answer skipped')
  const untilClose = await rawServer(t, 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it', (socket) => socket.end())
  t.same(await post(client, untilClose), { status: 200, body: 'all of it', truncated: false }, 'no length: the body ends with the connection')
  let closes = 0
  const closing = await rawServer(t, 'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n', (socket) => { closes++; socket.end() })
  t.equal((await post(client, closing)).status, 200)
  t.equal((await post(client, closing)).status, 200, 'a new connection for the next request, not the closed one')
  t.equal(closes, 2)
})

t.test('failures reject: refused, malformed, closed mid-answer, timeout (without holding other requests)', async (t) => {
  const client = new HttpClient()
  t.teardown(() => client.close())
  await t.rejects(post(client, `http://127.0.0.1:${await freePort()}/x`), /ECONNREFUSED/, 'a refused connection')
  await t.rejects(post(client, await rawServer(t, 'SMTP ready\r\n\r\n')), /malformed answer status line/, 'not HTTP')
  await t.rejects(post(client, await rawServer(t, 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort', (socket) => socket.end())), /closed before the answer was complete/, 'a body cut short')
  await t.rejects(post(client, await rawServer(t, 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n')), /malformed chunk size/, 'a bad chunk')
  const silent = await rawServer(t, '')
  const started = performance.now()
  const slow = post(client, silent, '{}', 300)
  const { url } = await httpServer(t, (_req, res) => res.writeHead(200).end('fast'))
  t.equal((await post(client, url)).body, 'fast', 'another request is answered while one waits')
  await t.rejects(slow, { name: 'TimeoutError' }, 'no answer: a TimeoutError')
  t.ok(performance.now() - started < 1500, 'after about the timeout')
})

t.test('HTTPS: certificates verified (a test CA trusted), one connection reused', async (t) => {
  const dir = t.testdir({})
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`], { stdio: 'ignore' })
  let connections = 0
  const server = createHttpsServer({ key: readFileSync(`${dir}/key.pem`), cert: readFileSync(`${dir}/cert.pem`) }, (req, res) => {
    req.resume()
    req.on('end', () => res.writeHead(200).end('secure'))
  })
  server.on('secureConnection', () => { connections++ })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = (server.address() as AddressInfo).port
  const trusting = new HttpClient({ ca: readFileSync(`${dir}/cert.pem`) })
  const untrusting = new HttpClient()
  t.teardown(() => { trusting.close(); untrusting.close() })
  for (const host of ['127.0.0.1', 'localhost']) t.equal((await post(trusting, `https://${host}:${port}/tls`)).body, 'secure', `by ${host}`)
  t.equal((await post(trusting, `https://127.0.0.1:${port}/tls`)).body, 'secure')
  t.equal(connections, 2, 'one connection per origin, reused')
  await t.rejects(post(untrusting, `https://127.0.0.1:${port}/tls`), /self-signed|certificate/, 'an untrusted certificate is refused')
})

t.test('postSigned: a body in parts, signed over the bytes as sent, with the given headers', async (t) => {
  const secret = 'a-signing-secret-of-some-length'
  let headers: IncomingMessage['headers'] = {}
  const { seen, url } = await httpServer(t, (req, res) => { headers = req.headers; res.writeHead(200).end() })
  const parts = [Buffer.from('{"events":['), Buffer.from('{"id":"é"}'), Buffer.from(','), Buffer.from('{"id":"2"}'), Buffer.from(']}')]
  const answer = await postSigned({ url, body: parts, secret, timeoutMs: 2000, headers: { 'broker-delivery': 'd-1', 'broker-attempt': '1' } })
  t.equal(answer.status, 200)
  t.equal(seen.bodies[0], '{"events":[{"id":"é"},{"id":"2"}]}', 'the parts in order')
  t.equal(headers['content-length'], String(Buffer.concat(parts).length), 'the length in bytes')
  t.same([headers['content-type'], headers['broker-delivery'], headers['broker-attempt'], headers.host], ['application/json', 'd-1', '1', new URL(url).host])
  t.ok(verifySignature(secret, String(headers['broker-signature']), seen.bodies[0] as string, Math.floor(Date.now() / 1000)), 'the signature verifies over the body received')
})

t.test('an answer before the whole body left ends that connection: the rest of the body is not sent after the request settles', async (t) => {
  const connections: Socket[] = []
  const server = createNetServer((socket) => {
    connections.push(socket)
    socket.once('data', () => {
      // answers on the head and reads no more: the body stays in the client's buffers
      socket.pause()
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const socket of connections) socket.destroy(); server.close() })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/early`
  const client = new HttpClient()
  t.teardown(() => client.close())
  // larger than loopback's socket buffers on both sides
  const body = 'x'.repeat(32 * 1024 * 1024)
  t.equal((await post(client, url, body, 5000)).status, 200, 'the early answer is the request\'s answer')
  t.equal((await post(client, url, '{}', 5000)).status, 200)
  t.equal(connections.length, 2, 'the second request on a new connection, the first one closed')
})
