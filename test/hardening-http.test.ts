// Hardening of the HTTP side: requests that used to throw synchronously inside the server
// (and so killed the node) are answered 400, and a canary client pair on the same broker
// loses nothing meanwhile.
import { execFileSync } from 'node:child_process'
import jwt from 'jsonwebtoken'
import t from 'tap'
import { startBroker } from './helpers/broker.js'
import { startCanary } from './helpers/canary.js'
import { rawRequest, statusOf } from './helpers/raw-clients.js'

const secret = 'hardening-http-secret-0123456789abcdef'
const tokenOf = (sub: string): string => jwt.sign({ sub }, secret, { expiresIn: 600 })
const config = {
  auth: { anonymous: false, jwt: { secret } },
  acl: { roles: { member: { pub: ['canary/#'], sub: ['canary/#'] } }, users: { ops: { roles: ['admin'] } }, defaultRoles: ['member'] }
}

const upgrade = (target: string): string =>
  `GET ${target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`
const plain = (target: string): string => `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`
const notPaths = ['//x:99999/', '//x:99999/mqtt', '//x/healthz', 'http://x:99999/']

t.test('requests whose target is no path are answered 400, and the node lives on', async (t) => {
  const broker = await startBroker(t, config)
  const port = broker.addresses.http.port
  const canary = await startCanary(t, broker, { username: '', password: tokenOf('canary') })
  for (const target of notPaths) {
    t.equal(statusOf(await rawRequest(port, plain(target))), 400, `GET ${target}`)
    t.equal(statusOf(await rawRequest(port, upgrade(target))), 400, `WebSocket upgrade on ${target}`)
  }
  // a malformed percent-encoding of an admin client id (decodeURIComponent throws URIError)
  const admin = `Authorization: Bearer ${tokenOf('ops')}\r\n`
  for (const method of ['GET', 'DELETE']) {
    for (const path of ['/api/v1/admin/clients/%E0%A4%A', '/api/v1/admin/clients/%E0%A4%A/subscriptions', '/api/v1/admin/clients/%ff']) {
      const answer = await rawRequest(port, `${method} ${path} HTTP/1.1\r\nHost: x\r\n${admin}Connection: close\r\n\r\n`)
      t.equal(statusOf(answer), 400, `${method} ${path}`)
      t.match(answer, /not valid percent-encoded UTF-8/)
    }
  }
  const health = await fetch(`http://127.0.0.1:${port}/healthz`)
  t.equal(health.status, 200, 'the node still answers')
  const { sent, missing } = await canary.stop()
  t.ok(sent > 0, `the canary sent ${sent} messages meanwhile`)
  t.same(missing, [], 'the canary lost nothing')
})

t.test('the same over HTTPS and WSS', async (t) => {
  const dir = t.testdir({})
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`], { stdio: 'ignore' })
  const broker = await startBroker(t, { ...config, http: { port: 0, tls: { key: `${dir}/key.pem`, cert: `${dir}/cert.pem` } } })
  const port = broker.addresses.http.port
  const canary = await startCanary(t, broker, { username: '', password: tokenOf('canary') })
  for (const target of notPaths) {
    t.equal(statusOf(await rawRequest(port, plain(target), true)), 400, `HTTPS GET ${target}`)
    t.equal(statusOf(await rawRequest(port, upgrade(target), true)), 400, `WSS upgrade on ${target}`)
  }
  const { missing } = await canary.stop()
  t.same(missing, [], 'the canary lost nothing')
})

t.test('a chunked body over the limit, without Content-Length, is answered 413 before the connection closes', async (t) => {
  const broker = await startBroker(t, { ...config, http: { port: 0, devTokens: true }, limits: { maxPacketSize: 1024 } })
  const port = broker.addresses.http.port
  const chunk = 'x'.repeat(4096)
  // 20 KiB: over both the publish limit (maxPacketSize) and the dev token one (16 KiB)
  const body = `${chunk.length.toString(16)}\r\n${chunk}\r\n`.repeat(5) + '0\r\n\r\n'
  const chunked = (path: string): string => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokenOf('canary')}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${body}`
  for (const path of ['/api/v1/publish', '/api/v1/dev/token']) {
    const answer = await rawRequest(port, chunked(path))
    t.equal(statusOf(answer), 413, `POST ${path}`)
    t.match(answer, /body over \d+ bytes/)
  }
})
