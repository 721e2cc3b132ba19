// The browser SDK and the demo pages in a real browser: Debian's Chromium, headless, driven
// by playwright-core, against real brokers on free ports. Code that runs inside the page is
// written as strings: it is plain browser JavaScript, not compiled with the tests.
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import t from 'tap'
import { signToken } from '../src/acl/jwt.js'
import type { BrokerHandle } from '../src/server.js'
import type { ConfigInput } from '../src/broker/config/config.js'
import { clientById } from '../src/broker/aedes-adapter.js'
import { acceptsMqtt5, brokerUrl, collect, connectClient, metricValue, startBroker, waitFor } from './helpers/broker.js'
import type { Teardown } from './helpers/loopback.js'
import { refuseMqtt5InPage } from './helpers/mqtt-peers.js'

const executablePath = '/usr/bin/chromium'
const launchArgs = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
const secret = 'browser-test-secret-0123456789abcdef'
/** JWT required, tokens from the development endpoint, every user a member as in config/default.yaml. */
const tokenBroker: ConfigInput = {
  auth: { anonymous: false, jwt: { secret } },
  http: { port: 0, devTokens: true },
  acl: { roles: { member: { pub: ['#'], sub: ['#', '$presence/#'] } }, defaultRoles: ['member'] }
}

/** The chat rooms keep history, as config/default.yaml's quick start has it. */
const chatHistory: ConfigInput = { history: { topics: [{ filter: 'chat/rooms/+/messages', size: 200, ttlSeconds: 86400 }], idempotencyWindowSeconds: 120, maxReadLimit: 10_000 } }

// Playwright gives the browser a fresh, empty profile of its own and removes it on close.
const browser = await chromium.launch({ executablePath, headless: true, args: launchArgs })
t.teardown(() => browser.close())

const base = (broker: BrokerHandle): string => `http://127.0.0.1:${broker.addresses.http.port}`

/** A page in a context of its own (its own storage), closed by the test's teardown; `prepare` runs before it loads. */
async function openPage (t: Teardown, url: string, prepare?: (page: Page) => Promise<unknown>): Promise<{ page: Page, context: BrowserContext }> {
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await context.newPage()
  page.setDefaultTimeout(10_000)
  await prepare?.(page)
  await page.goto(url)
  return { page, context }
}

const online = (page: Page): Promise<unknown> => page.waitForSelector('body[data-connection="online"]')

/**
 * Polls an expression in the page until it is true. (page.waitForFunction would evaluate it
 * with eval inside the page, which the pages' Content-Security-Policy rightly forbids.)
 */
async function waitInPage (page: Page, expression: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (await page.evaluate(expression) !== true) {
    if (Date.now() > deadline) throw new Error(`timed out waiting in the page for: ${expression}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Loads the SDK the broker serves into a page as `window.rt`, logging states, messages and errors. */
function installClient (options: string): string {
  return `(async () => {
    const { connect } = await import('/sdk/realtime.js')
    window.log = { states: [], messages: [], errors: [] }
    const client = connect(${options})
    client.on('state', (change) => log.states.push(change))
    client.on('error', (error) => log.errors.push(error.message))
    window.rt = client
    await client.whenOnline()
  })()`
}

t.test('two chat pages see each other\'s messages, presence and typing; history reaches a late joiner', async (t) => {
  const broker = await startBroker(t, chatHistory)
  const alice = (await openPage(t, `${base(broker)}/chat.html?user=alice`)).page
  const bob = (await openPage(t, `${base(broker)}/chat.html?user=bob`)).page
  await Promise.all([online(alice), online(bob)])

  await bob.waitForSelector('#people li.online[data-user="alice"]')
  await alice.waitForSelector('#people li.online[data-user="bob"]')
  t.pass('each sees the other online')

  await alice.fill('#text', 'hello b')
  await bob.waitForSelector('#typing:has-text("alice is typing")')
  t.pass('bob sees alice typing')
  await alice.fill('#text', 'hello bob')
  await alice.press('#text', 'Enter')
  await bob.waitForSelector('.message:has-text("hello bob")')
  await bob.waitForSelector('#typing:text-is("")')
  t.pass('bob got the message, and alice stopped typing')
  await bob.fill('#text', 'hi alice')
  await bob.press('#text', 'Enter')
  await alice.waitForSelector('.message.mine:has-text("hello bob") ~ .message:has-text("hi alice")')
  t.pass('alice got the reply, after her own message')

  // both at once: with a retained snapshot per sender, one would overwrite the other's history
  const burst = async (page: Page, who: string): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      await page.fill('#text', `${who} ${i}`)
      await page.press('#text', 'Enter')
    }
  }
  await Promise.all([burst(alice, 'alice'), burst(bob, 'bob')])
  await Promise.all([alice.waitForSelector('.message:not(.pending):has-text("bob 2")'), bob.waitForSelector('.message:not(.pending):has-text("alice 2")')])
  const carol = (await openPage(t, `${base(broker)}/chat.html?user=carol`)).page
  await carol.waitForSelector('.message:has-text("alice 2")')
  await carol.waitForSelector('.message:has-text("bob 2")')
  const texts = await carol.locator('.message p').allTextContents()
  t.same(texts.slice(0, 2), ['hello bob', 'hi alice'], 'the history kept by the broker reaches a late joiner')
  t.same(texts.slice(2).sort(), ['alice 0', 'alice 1', 'alice 2', 'bob 0', 'bob 1', 'bob 2'], 'both senders\' messages, each once')
  t.same(texts.filter((text) => text.startsWith('alice')), ['alice 0', 'alice 1', 'alice 2'], 'each sender\'s in order')

  await alice.context().close()
  await bob.waitForSelector('#people li[data-user="alice"]:not(.online)')
  t.pass('alice is offline once her page is gone (her last will)')
})

t.test('pages speak MQTT 5 where the broker does, and fall back to 3.1.1 behind a broker that refuses it', async (t) => {
  const broker = await startBroker(t)
  const expected = await acceptsMqtt5(t, brokerUrl(broker, 'ws')) ? '5' : '3.1.1'
  const direct = (await openPage(t, `${base(broker)}/chat.html?user=amy`)).page
  await online(direct)
  t.equal(await direct.getAttribute('body', 'data-mqtt'), expected, `the demo settles on the broker's version: MQTT ${expected}`)

  // An older broker's stand-in: the page's WebSocket to the broker refuses level 5 with CONNACK 0x01.
  let levels: number[] = []
  const behind = (await openPage(t, `${base(broker)}/chat.html?user=ben`, async (page) => { levels = await refuseMqtt5InPage(page, broker.config.http.websocketPath) })).page
  await online(behind)
  t.same(levels, [5, 4], 'MQTT 5 first, then 3.1.1')
  t.equal(await behind.getAttribute('body', 'data-mqtt'), '3.1.1')
  await behind.fill('#text', 'said over 3.1.1')
  await behind.press('#text', 'Enter')
  await direct.waitForSelector('.message:has-text("said over 3.1.1")')
  t.pass('the two versions talk to each other')
  t.equal(await behind.textContent('#error'), '', 'the fallback is no error')
})

t.test('a page receives what a native TCP client publishes, and the other way round', async (t) => {
  const broker = await startBroker(t)
  const { page } = await openPage(t, `${base(broker)}/`)
  await page.evaluate(installClient('{}'))
  await page.evaluate(`(async () => {
    await rt.subscribe('sensors/+/temperature', (data, message) => log.messages.push({ topic: message.topic, data, retained: message.retained }))
    await rt.subscribe('firmware/blob', (bytes) => log.messages.push({ topic: 'firmware/blob', bytes: Array.from(bytes) }), { raw: true })
  })()`)
  const tcp = await connectClient(t, broker, 'tcp')
  await tcp.publishAsync('sensors/k1/temperature', JSON.stringify({ celsius: 21.5 }), { qos: 1 })
  await tcp.publishAsync('firmware/blob', Buffer.from([0, 255, 7]), { qos: 0 })
  await waitInPage(page, 'log.messages.length === 2')
  t.same(await page.evaluate('log.messages'), [
    { topic: 'sensors/k1/temperature', data: { celsius: 21.5 }, retained: false },
    { topic: 'firmware/blob', bytes: [0, 255, 7] }
  ], 'JSON parsed by default, bytes on request')

  const got = collect(tcp)
  await tcp.subscribeAsync('from-browser/#', { qos: 1 })
  await page.evaluate(`(async () => {
    await rt.publish('from-browser/json', { hello: 'tcp' })
    await rt.publish('from-browser/bytes', new Uint8Array([1, 2, 3]), { qos: 0 })
  })()`)
  await waitFor(() => got.length === 2, 'both messages over TCP')
  t.same(got.map((m) => [m.topic, m.packet.payload.toString('hex')]), [['from-browser/json', Buffer.from('{"hello":"tcp"}').toString('hex')], ['from-browser/bytes', '010203']])
  t.same(await page.evaluate('log.errors'), [])
})

t.test('ACL refusals reach the page as clear errors', async (t) => {
  const broker = await startBroker(t, tokenBroker)
  const { page } = await openPage(t, `${base(broker)}/chat.html?user=erin&rooms=general`)
  await online(page)
  t.match(await page.textContent('#identity'), /erin · token for #general/)
  await page.click('[data-room="staff"]')
  const refusal = await page.waitForSelector('#room-error:visible')
  t.match(await refusal.textContent(), /You cannot read #staff: subscription to "chat\/rooms\/staff\/messages" refused by the broker/)
  t.ok(await page.isDisabled('#text'), 'no writing where one cannot read')
  await page.click('[data-room="general"]')
  await page.fill('#text', 'allowed here')
  await page.press('#text', 'Enter')
  await page.waitForSelector('.message:not(.pending):has-text("allowed here")')
  t.pass('the granted room still works')

  const sdkPage = (await openPage(t, `${base(broker)}/`)).page
  const token = signToken({ secret, keys: [], algorithms: ['HS256'], requireExp: true, clockToleranceS: 30 }, {}, { user: 'frank', ttlS: 60, pub: ['a/#'], sub: ['a/#'] })
  await sdkPage.evaluate(installClient(JSON.stringify({ token })))
  const error = await sdkPage.evaluate(`rt.subscribe('b/#', () => {}).then(() => 'granted', (err) => err.code + ': ' + err.message)`)
  // 3.1.1: "not authorized for this topic filter, or over a limit"; MQTT 5: "not authorized (0x87)"
  t.match(error, /^subscription-refused: subscription to "b\/#" refused by the broker: not authorized/)
  t.equal(await sdkPage.evaluate('rt.state'), 'online', 'a refused subscription leaves the connection up')

  // No token endpoint, no anonymous access: the page says why it is not connected.
  const closed = await startBroker(t, { auth: { anonymous: false, jwt: { secret } } })
  const refused = (await openPage(t, `${base(closed)}/chat.html?user=gina`)).page
  await refused.waitForSelector('body[data-connection="closed"]')
  t.match(await refused.textContent('#error'), /connection refused by the broker: not authorized/)
})

t.test('presence comes from the broker\'s $presence records once the broker publishes them', async (t) => {
  const broker = await startBroker(t, tokenBroker)
  const devToken = (user: string): string => `async () => {
    const response = await fetch('/api/v1/dev/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: '${user}' }) })
    return (await response.json()).token
  }`
  const watcher = (await openPage(t, `${base(broker)}/`)).page
  await watcher.evaluate(installClient(`{ token: ${devToken('lee')} }`))
  await watcher.evaluate(`(async () => {
    const { watchPresence } = await import('/sdk/realtime.js')
    window.people = []
    await watchPresence(rt, (people) => { window.people = people })
  })()`)
  const kim = (await openPage(t, `${base(broker)}/`)).page
  await kim.evaluate(installClient(`{ token: ${devToken('kim')}, announcePresence: true }`))
  await waitInPage(watcher, `people.some((p) => p.user === 'kim' && p.online)`)
  t.match(await watcher.evaluate(`people.find((p) => p.user === 'kim')`), { user: 'kim', online: true, connections: 1, source: 'broker' })
  await kim.evaluate('rt.close()')
  await waitInPage(watcher, `people.some((p) => p.user === 'kim' && !p.online)`)
  const gone = await watcher.evaluate(`people.find((p) => p.user === 'kim')`) as { lastSeen: number }
  t.ok(Math.abs(gone.lastSeen - Date.now()) < 10_000, 'lastSeen is parsed from the broker\'s ISO time')
})

t.test('pages reconnect after a broker restart and resume: subscriptions renewed, offline publishes sent', async (t) => {
  const first = await startBroker(t)
  const port = first.addresses.http.port
  const chat = (await openPage(t, `${base(first)}/chat.html?user=henry`)).page
  const { page } = await openPage(t, `${base(first)}/`)
  await page.evaluate(installClient(JSON.stringify({ backoff: { initialDelayMs: 100, maxDelayMs: 1000 } })))
  await page.evaluate(`rt.subscribe('resume/#', (data, message) => log.messages.push(message.topic))`)
  await online(chat)

  await first.close()
  await waitInPage(page, `rt.state === 'reconnecting'`)
  await chat.waitForSelector('body[data-connection="reconnecting"]')
  t.pass('both pages noticed')
  // Not awaited here: it settles once a broker acknowledges it.
  await page.evaluate(`window.queued = rt.publish('resume/queued', { while: 'offline' }, { retain: true }); undefined`)

  const second = await startBroker(t, { http: { port } })
  await page.evaluate('window.queued')
  t.pass('the publish made while offline was acknowledged by the new broker')
  const tcp = await connectClient(t, second, 'tcp')
  const got = collect(tcp)
  await tcp.subscribeAsync('resume/queued', { qos: 1 })
  await waitFor(() => got.length === 1, 'the queued message')
  t.same(JSON.parse(got[0]?.payload ?? ''), { while: 'offline' })

  await tcp.publishAsync('resume/live', 'true', { qos: 1 })
  await waitInPage(page, `log.messages.includes('resume/live')`)
  t.pass('the subscription was renewed on the new broker')
  await online(chat)
  await chat.fill('#text', 'back again')
  await chat.press('#text', 'Enter')
  await chat.waitForSelector('.message:not(.pending):has-text("back again")')
  t.pass('the chat page works again')
  t.match(await page.evaluate(`log.states.map((s) => s.state).join(' ')`), /^online reconnecting( reconnecting)* online$/)
})

t.test('token refresh keeps a page connected past its first token\'s expiry', async (t) => {
  const broker = await startBroker(t, tokenBroker)
  const { page } = await openPage(t, `${base(broker)}/`)
  await page.evaluate(installClient(`{
    token: async () => {
      window.tokens = (window.tokens ?? 0) + 1
      const response = await fetch('/api/v1/dev/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'ivy', ttl: 3 }) })
      return (await response.json()).token
    }
  }`))
  await page.evaluate(`rt.subscribe('refresh/#', (data) => log.messages.push(data))`)
  await new Promise((resolve) => setTimeout(resolve, 4500))

  const publisherToken = signToken({ secret, keys: [], algorithms: ['HS256'], requireExp: true, clockToleranceS: 30 }, {}, { user: 'tcp', ttlS: 60 })
  const tcp = await connectClient(t, broker, 'tcp', { username: '', password: publisherToken })
  await tcp.publishAsync('refresh/after-expiry', JSON.stringify('still here'), { qos: 1 })
  await waitInPage(page, `log.messages.includes('still here')`)
  t.equal(await page.evaluate('rt.state'), 'online')
  t.ok(await page.evaluate('window.tokens') as number >= 2, 'a new token was fetched before the first expired')
  const reasons = await page.evaluate(`log.states.filter((s) => s.state !== 'online').map((s) => s.reason)`) as string[]
  t.ok(reasons.every((reason) => reason === 'token refresh'), `only planned reconnects: ${reasons.join(', ')}`)
  // MQTT 5 re-authenticates the live connection where the broker takes the token as Authentication Data
  if (await page.evaluate('rt.protocolVersion') === 4) t.ok(reasons.length > 0, 'MQTT 3.1.1 reconnects with the new token')
  t.same(await page.evaluate('log.errors'), [])
})

t.test('the demo pages and the SDK are served with the right headers, and only they are', async (t) => {
  const broker = await startBroker(t)
  const url = base(broker)
  for (const path of ['/', '/chat.html', '/chat', '/location.html', '/telemetry.html']) {
    const response = await fetch(`${url}${path}`)
    t.equal(response.status, 200, path)
    t.match(response.headers.get('content-type'), /^text\/html; charset=utf-8/)
    t.match(response.headers.get('content-security-policy'), /default-src 'self'/)
  }
  const sdk = await fetch(`${url}/sdk/realtime.js`, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(sdk.headers.get('content-type'), 'text/javascript; charset=utf-8')
  t.equal(sdk.headers.get('content-encoding'), 'gzip')
  t.equal(sdk.headers.get('cache-control'), 'no-cache')
  const etag = sdk.headers.get('etag') ?? ''
  t.match(await sdk.text(), /export\s*\{/, 'an ES module')
  t.equal((await fetch(`${url}/sdk/realtime.js`, { headers: { 'if-none-match': etag } })).status, 304)
  t.equal((await fetch(`${url}/style.css`, { method: 'HEAD' })).status, 200)
  for (const path of ['/../package.json', '/%2e%2e/package.json', '/sdk/../../../package.json', '/types/index.d.ts', '/demos/']) {
    t.equal((await fetch(`${url}${path}`)).status, 404, path)
  }
  t.equal((await fetch(`${url}/api/v1/dev/token`, { method: 'POST', body: '{}' })).status, 404, 'no token endpoint by default')

  // the console (on by default) runs on the SDK: off too, nothing is served
  const quiet = await startBroker(t, { http: { port: 0, demos: false, console: false } })
  t.equal((await fetch(`${base(quiet)}/`)).status, 404, 'http.demos and http.console false serve no pages')
  t.equal((await fetch(`${base(quiet)}/sdk/realtime.js`)).status, 404)
})

t.test('the development token endpoint validates its input and mints working tokens', async (t) => {
  const broker = await startBroker(t, tokenBroker)
  const endpoint = `${base(broker)}/api/v1/dev/token`
  const post = (body: string, type = 'application/json'): Promise<Response> => fetch(endpoint, { method: 'POST', headers: { 'content-type': type }, body })
  t.equal((await post('{"user":"x"}', 'text/plain')).status, 415)
  t.equal((await post('{not json')).status, 400)
  const invalid = await post(JSON.stringify({ user: 'a/b', ttl: 0, extra: true }))
  t.equal(invalid.status, 400)
  t.same(((await invalid.json()) as { issues: Array<{ path: string }> }).issues.map((i) => i.path).sort(), ['', 'ttl', 'user'])
  t.equal((await post(JSON.stringify({ user: 'x', pub: ['a'.repeat(20_000)] }))).status, 413)

  const minted = await post(JSON.stringify({ user: 'jack', pub: ['jack/#'], sub: ['jack/#'], ttl: 60 }))
  t.equal(minted.status, 200)
  t.equal(minted.headers.get('cache-control'), 'no-store')
  const { token, user, expiresAt } = (await minted.json()) as { token: string, user: string, expiresAt: string }
  t.equal(user, 'jack')
  t.ok(Math.abs(Date.parse(expiresAt) - Date.now() - 60_000) < 5000)
  const client = await connectClient(t, broker, 'tcp', { username: 'jack', password: token })
  await client.publishAsync('jack/ok', 'yes', { qos: 1 })
  t.pass('the token connects and its grants apply')
})

t.test('the SDK recovers what a page missed while reconnecting, each message once and in order, or says it cannot', async (t) => {
  const broker = await startBroker(t, { history: { topics: [{ filter: 'feed/+', size: 1000, ttlSeconds: 600 }, { filter: 'small/+', size: 5, ttlSeconds: 600 }], idempotencyWindowSeconds: 120, maxReadLimit: 10_000 } })
  const { page } = await openPage(t, `${base(broker)}/`)
  await page.evaluate(installClient(JSON.stringify({ backoff: { initialDelayMs: 800, maxDelayMs: 800, jitter: 0 } })))
  await page.evaluate(`(async () => {
    log.recoveries = []
    rt.on('recovery', (event) => log.recoveries.push(event))
    await rt.subscribe('feed/+', (data) => log.messages.push(data))
    await rt.subscribe('small/+', (data) => log.messages.push(data))
  })()`)
  if (await page.evaluate('rt.protocolVersion') !== 5) {
    t.pass('positions travel as MQTT 5 user properties: this broker refused MQTT 5, nothing to recover')
    return
  }
  const tcp = await connectClient(t, broker, 'tcp')
  for (let i = 0; i < 5; i++) await tcp.publishAsync('feed/a', JSON.stringify(i), { qos: 1 })
  await tcp.publishAsync('small/a', JSON.stringify('s0'), { qos: 1 })
  await waitInPage(page, 'log.messages.length === 6')

  // the page's connection drops (it is back 800 ms later); 19 messages on a topic that keeps 5,
  // then 200 that keep flowing while it reconnects and recovers
  clientById(broker.aedes, await page.evaluate('rt.clientId') as string)?.conn.destroy()
  for (let i = 1; i < 20; i++) await tcp.publishAsync('small/a', JSON.stringify(`s${i}`), { qos: 0 })
  for (let i = 5; i < 205; i++) await tcp.publishAsync('feed/a', JSON.stringify(i), { qos: 1 })
  await waitInPage(page, `log.recoveries.length === 2`)
  await tcp.publishAsync('feed/a', JSON.stringify(205), { qos: 1 })
  await waitInPage(page, 'log.messages.includes(205)')
  const feed = await page.evaluate('log.messages.filter((m) => typeof m === "number")') as number[]
  t.same(feed, Array.from({ length: 206 }, (_, i) => i), 'every message of the feed once, in order, across the reconnect')
  const recoveries = await page.evaluate('log.recoveries') as Array<{ topic: string, recovered: boolean }>
  t.match(recoveries.find((r) => r.topic === 'feed/a'), { recovered: true })
  t.match(recoveries.find((r) => r.topic === 'small/a'), { recovered: false, offset: 20 }, 'more missed than the history holds: recovered false, to resync')
  t.same(await page.evaluate(`rt.history('small/a', { limit: 3 }).then((h) => h.messages.map((m) => [m.offset, new TextDecoder().decode(m.payload)]))`), [[18, '"s17"'], [19, '"s18"'], [20, '"s19"']], 'history() for a resync')
  t.same(await page.evaluate('log.errors'), [])
})

t.test('the SDK fills a gap while connected: QoS 0 messages shed by the broker come from history', async (t) => {
  // a small output cap: a burst of large QoS 0 messages to the page is partly shed [limits.maxClientOutputBytes]
  const broker = await startBroker(t, { limits: { maxClientOutputBytes: 65_536 }, history: { topics: [{ filter: 'burst/+', size: 1000, ttlSeconds: 600 }], idempotencyWindowSeconds: 120, maxReadLimit: 10_000 } })
  const { page } = await openPage(t, `${base(broker)}/`)
  await page.evaluate(installClient('{}'))
  await page.evaluate(`(async () => {
    log.recoveries = []
    rt.on('recovery', (event) => log.recoveries.push(event))
    await rt.subscribe('burst/+', (data) => log.messages.push(data.i), { qos: 0 })
  })()`)
  if (await page.evaluate('rt.protocolVersion') !== 5) {
    t.pass('positions travel as MQTT 5 user properties: this broker refused MQTT 5, nothing to recover')
    return
  }
  const tcp = await connectClient(t, broker, 'tcp')
  const filler = 'x'.repeat(65_536)
  // the page's script busy meanwhile: its socket fills, then the broker's buffer for it
  const busy = page.evaluate('(() => { const end = Date.now() + 1500; while (Date.now() < end); })()')
  await Promise.all(Array.from({ length: 100 }, (_, i) => tcp.publishAsync('burst/a', JSON.stringify({ i, filler }), { qos: 0 })))
  await busy
  await tcp.publishAsync('burst/a', JSON.stringify({ i: 100, filler: '' }), { qos: 1 })
  await waitInPage(page, 'log.messages.includes(100)', 20_000)
  await waitInPage(page, 'log.messages.length === 101', 20_000)
  t.same(await page.evaluate('log.messages'), Array.from({ length: 101 }, (_, i) => i), 'every message once, in order')
  const metrics = await (await fetch(`${base(broker)}/metrics`)).text()
  const shed = metricValue(metrics, 'realtime_broker_dropped_messages_total', { reason: 'slow_consumer' })
  t.ok(shed > 0, `the broker shed ${shed} messages to the page: the gap was real`)
  t.ok((await page.evaluate('log.recoveries') as Array<{ recovered: boolean }>).every((r) => r.recovered), 'each gap recovered')
})
