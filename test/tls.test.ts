// MQTTS and WSS with key and certificate files from the config.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect } from 'mqtt'
import t from 'tap'
import { closeClient, collect, startBroker, waitFor } from './helpers/broker.js'

t.test('MQTT over TLS and WebSocket over TLS carry messages both ways', async (t) => {
  const dir = t.testdir({})
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`], { stdio: 'ignore' })
  const tls = { key: `${dir}/key.pem`, cert: `${dir}/cert.pem` }
  const broker = await startBroker(t, { mqtts: { port: 0, tls }, http: { port: 0, tls } })
  t.ok(broker.addresses.mqtts, 'an MQTTS listener is up')
  const ca = readFileSync(tls.cert)

  const mqtts = connect(`mqtts://127.0.0.1:${broker.addresses.mqtts?.port}`, { ca, reconnectPeriod: 0 })
  const wss = connect(`wss://127.0.0.1:${broker.addresses.http.port}/mqtt`, { ca, reconnectPeriod: 0 })
  t.teardown(() => Promise.all([closeClient(mqtts), closeClient(wss)]))
  await Promise.all([new Promise((resolve) => mqtts.once('connect', resolve)), new Promise((resolve) => wss.once('connect', resolve))])
  await mqtts.subscribeAsync('secure/#', { qos: 1 })
  const got = collect(mqtts)
  await wss.publishAsync('secure/hello', 'over wss', { qos: 1 })
  await waitFor(() => got.length === 1, 'message over TLS')
  t.equal(got[0]?.payload, 'over wss')

  const health = await fetch(`https://127.0.0.1:${broker.addresses.http.port}/healthz`).catch((err: Error) => err)
  t.type(health, Error, 'the HTTP listener speaks only HTTPS (the test CA is not trusted by fetch)')
})
