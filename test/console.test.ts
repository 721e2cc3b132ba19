// The operators' console (/console) in a real browser (Debian's Chromium, headless, driven by
// playwright-core) against a cluster of two brokers on one real Redis: the page is served by
// one node and acts on clients of the other.
import { chromium, type Page } from 'playwright-core'
import jwt from 'jsonwebtoken'
import t from 'tap'
import type { BrokerHandle } from '../src/server.js'
import { brokerUrl, connectClient, connectRefused, startBroker, waitFor } from './helpers/broker.js'
import { startRedis } from './helpers/redis.js'
import type { Teardown } from './helpers/loopback.js'

const executablePath = '/usr/bin/chromium'
const launchArgs = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
const secret = 'console-test-secret-0123456789abcdef'
const token = (sub: string): string => jwt.sign({ sub }, secret, { expiresIn: 600 })
const config = {
  auth: { anonymous: false, jwt: { secret } },
  http: { port: 0, devTokens: true },
  acl: { roles: { member: { pub: ['#'], sub: ['#'] } }, users: { root: { roles: ['admin'] } }, defaultRoles: ['member'] }
}

const browser = await chromium.launch({ executablePath, headless: true, args: launchArgs })
t.teardown(() => browser.close())

async function twoNodes (t: Teardown): Promise<[BrokerHandle, BrokerHandle]> {
  const redis = await startRedis(t)
  const a = await startBroker(t, { ...config, nodeId: 'node-a', redis: { url: redis.url } })
  const b = await startBroker(t, { ...config, nodeId: 'node-b', redis: { url: redis.url } })
  return [a, b]
}

async function openConsole (t: Teardown, broker: BrokerHandle, viewport = { width: 1280, height: 800 }): Promise<Page> {
  const context = await browser.newContext({ viewport })
  t.teardown(() => context.close())
  const page = await context.newPage()
  page.setDefaultTimeout(10_000)
  // destructive actions ask first; the operator says yes
  page.on('dialog', (dialog) => { void dialog.accept(dialog.type() === 'prompt' ? 'abuse' : undefined) })
  await page.goto(`http://127.0.0.1:${broker.addresses.http.port}/console`)
  return page
}

async function signIn (page: Page, admin = 'root'): Promise<void> {
  await page.fill('#token', token(admin))
  await page.click('#sign-in-form button[type="submit"]')
  await page.waitForSelector('body[data-signed-in="true"]')
}

t.test('the console, served by one node, finds a client of the other node and disconnects it', async (t) => {
  const [a, b] = await twoNodes(t)
  const phone = await connectClient(t, b, 'tcp', { clientId: 'phone-42', username: '', password: token('bob'), protocolVersion: 5 })
  const page = await openConsole(t, a)
  await signIn(page)
  await page.waitForSelector('#nodes tr[data-node="node-b"]')
  t.pass('the overview lists both nodes')
  t.equal(await page.locator('#nodes tr').count(), 2)

  await page.click('#tab-clients')
  await page.fill('#client-search input[name="prefix"]', 'phone')
  await page.click('#client-search button[type="submit"]')
  const row = page.locator('#client-rows tr[data-client="phone-42"]')
  await row.waitFor()
  t.equal(await row.locator('td').nth(2).textContent(), 'node-b', 'found on the other node')
  await row.getByRole('button', { name: 'Inspect' }).click()
  await page.waitForSelector('#client-detail:has-text("Client phone-42")')

  const reason = new Promise<number | undefined>((resolve) => phone.once('disconnect', (packet) => resolve(packet.reasonCode)))
  await row.getByRole('button', { name: 'Disconnect' }).click()
  t.equal(await reason, 0x98, 'DISCONNECT 0x98 on the other node')
  await page.waitForSelector('#client-rows tr[data-client="phone-42"]', { state: 'detached' })
  t.pass('gone from the list')
})

t.test('a ban from the console refuses the user\'s reconnects on both nodes; a retained message is deleted', async (t) => {
  const [a, b] = await twoNodes(t)
  const spammer = await connectClient(t, b, 'tcp', { clientId: 'spam-1', username: '', password: token('mallory') })
  const closed = new Promise<void>((resolve) => spammer.once('close', () => resolve()))
  const page = await openConsole(t, a, { width: 390, height: 844 }) // a phone
  await signIn(page)

  await page.click('#tab-bans')
  await page.selectOption('#ban-form select[name="kind"]', 'user')
  await page.fill('#ban-form input[name="value"]', 'mallory')
  await page.fill('#ban-form input[name="reason"]', 'spam')
  await page.click('#ban-form button[type="submit"]')
  await page.waitForSelector('#ban-rows tr[data-ban="user:mallory"]')
  await closed
  t.pass('banned on a phone-sized page: the live client is disconnected')
  for (const node of [a, b]) t.equal(await connectRefused(t, brokerUrl(node, 'tcp'), { clientId: 'spam-2', username: '', password: token('mallory') }), 5, `reconnect refused by ${node.nodeId}`)

  const pub = await connectClient(t, b, 'tcp', { clientId: 'pub', username: '', password: token('carol') })
  await pub.publishAsync('cfg/stray', 'oops', { qos: 1, retain: true })
  await pub.publishAsync('cfg/keep', 'keep', { qos: 1, retain: true })
  await page.click('#tab-retained')
  await page.fill('#retained-filter input[name="filter"]', 'cfg/#')
  await page.click('#retained-filter button[type="submit"]')
  const stray = page.locator('#retained-rows tr[data-topic="cfg/stray"]')
  await stray.getByRole('button', { name: 'Delete' }).click()
  await stray.waitFor({ state: 'detached' })
  await page.waitForSelector('#retained-rows tr[data-topic="cfg/keep"]')
  const late = await connectClient(t, a, 'tcp', { clientId: 'late', username: '', password: token('dave') })
  const got: string[] = []
  late.on('message', (topic) => got.push(topic))
  await late.subscribeAsync('cfg/#', { qos: 1 })
  await waitFor(() => got.length >= 1, 'the retained message left')
  t.same(got, ['cfg/keep'], 'the deleted retained message is gone for new subscribers')

  await page.click('#tab-audit')
  await page.waitForSelector('#audit-rows tr:has-text("retained-delete")')
  await page.waitForSelector('#audit-rows tr:has-text("ban")')
  t.pass('both actions in the audit trail')
})

t.test('the console signs in with a development token, is keyboard usable, and explores topics live', async (t) => {
  const [a] = await twoNodes(t)
  const page = await openConsole(t, a)
  await page.waitForSelector('#dev-sign-in:not([hidden])')
  // a development token carries only the roles the ACL gives its user
  await page.fill('#dev-user', 'mallory')
  await page.click('#dev-token')
  await page.waitForSelector('#error:has-text("no admin role")')
  await page.fill('#dev-user', 'root')
  await page.click('#dev-token')
  await page.waitForSelector('body[data-signed-in="true"]')
  t.equal(await page.textContent('#who'), 'root')

  await page.focus('#tab-overview')
  await page.keyboard.press('ArrowRight')
  t.equal(await page.getAttribute('#tab-clients', 'aria-selected'), 'true', 'arrow keys move between tabs')
  t.equal(await page.evaluate('document.activeElement.id'), 'tab-clients')
  for (let i = 0; i < 4; i++) await page.keyboard.press('ArrowRight')
  t.equal(await page.getAttribute('#tab-topics', 'aria-selected'), 'true')

  await page.fill('#explore-form input[name="filter"]', 'console/#')
  await page.press('#explore-form input[name="filter"]', 'Enter')
  await page.waitForSelector('#explore-state:has-text("subscribed to console/#")')
  const device = await connectClient(t, a, 'tcp', { clientId: 'dev-1', username: '', password: token('erin') })
  await device.publishAsync('console/hello', 'from a device', { qos: 1 })
  await page.waitForSelector('#explore-messages li:has-text("from a device")')
  await page.fill('#publish-form input[name="payload"]', 'from the console')
  await page.click('#publish-form button[type="submit"]')
  await page.waitForSelector('#explore-messages li:has-text("from the console")')
  t.pass('a subscription shows messages live, and a test message is published')
})
