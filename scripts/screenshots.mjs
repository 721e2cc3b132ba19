#!/usr/bin/env node
// Takes the README's screenshots of the demo pages and the console (docs/screenshots/*.png), live: a broker
// with JWT and development tokens on free ports, the two simulators, and Debian's Chromium.
// Run `npm run build` first. Takes about 80 s (the telemetry charts fill a minute).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { signToken } from '../dist/src/acl/jwt.js'
import { createBroker } from '../dist/src/index.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = (name) => `${root}docs/screenshots/${name}.png`
const secret = 'screenshots-only-secret-0123456789abcdef'
const jwt = { secret, keys: [], algorithms: ['HS256'], requireExp: true, clockToleranceS: 30 }

const broker = await createBroker({
  host: '127.0.0.1',
  nodeId: 'node-1',
  mqtt: { port: 0 },
  http: { port: 0, devTokens: true },
  auth: { anonymous: false, jwt: { secret } },
  acl: { roles: { member: { pub: ['#'], sub: ['#', '$presence/#'] } }, users: { operator: { roles: ['admin'] } }, defaultRoles: ['member'] },
  log: { level: 'warn' }
})
const base = `http://127.0.0.1:${broker.addresses.http.port}`
const simulatorToken = signToken(jwt, {}, { user: 'simulator', ttlS: 600 })
const simulators = []
const simulate = (...args) => simulators.push(spawn(process.execPath, [`${root}dist/src/cli.js`, 'simulate', ...args, '--url', `mqtt://127.0.0.1:${broker.addresses.mqtt.port}`, '--token', simulatorToken], { stdio: 'ignore' }))

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
})
const open = async (path, viewport = { width: 1280, height: 800 }, ready = 'body[data-connection="online"]') => {
  const context = await browser.newContext({ viewport })
  const page = await context.newPage()
  await page.goto(`${base}${path}`)
  await page.waitForSelector(ready)
  return page
}
/** The console, signed in with a development token as the admin `operator`. */
const openConsole = async (viewport) => {
  const page = await open('/console', viewport, '#dev-sign-in:not([hidden])')
  await page.fill('#dev-user', 'operator')
  await page.click('#dev-token')
  await page.waitForSelector('body[data-signed-in="true"]')
  return page
}
try {
  const alice = await open('/chat.html?user=alice&rooms=general,random')
  const bob = await open('/chat.html?user=bob&rooms=general,random')
  await open('/chat.html?user=carol&rooms=general')
  const say = async (page, text) => {
    await page.fill('#text', text)
    await page.press('#text', 'Enter')
    await page.waitForSelector(`.message:not(.pending):has-text(${JSON.stringify(text)})`)
  }
  await say(alice, 'Morning! Is the deploy still on for 10:00?')
  await say(bob, 'Yes, the broker cluster is green. Rolling one node at a time.')
  await say(alice, 'Great. I will keep this tab open and watch the dashboards.')
  await say(bob, 'Clients reconnect by themselves, so nobody should notice.')
  await bob.fill('#text', 'One more th')
  await alice.waitForSelector('#typing:has-text("bob is typing")')
  await alice.screenshot({ path: out('chat') })

  // After the chat: the simulators' connections would be people online there.
  simulate('location', '--vehicles', '50')
  simulate('telemetry', '--devices', '200', '--rate', '2')

  const location = await open('/location.html')
  await location.waitForTimeout(5000)
  await location.screenshot({ path: out('location') })

  const telemetry = await open('/telemetry.html')
  // the console's charts fill during the telemetry page's minute
  const consolePage = await openConsole()
  await telemetry.waitForTimeout(62_000)
  await telemetry.screenshot({ path: out('telemetry'), fullPage: true })
  await consolePage.screenshot({ path: out('console') })
  const phone = await openConsole({ width: 390, height: 844 })
  await phone.click('#tab-clients')
  await phone.fill('#client-search input[name="prefix"]', 'sim-v')
  await phone.click('#client-search button[type="submit"]')
  await phone.waitForSelector('#client-rows tr[data-client]')
  await phone.screenshot({ path: out('console-phone') })
  console.log('wrote docs/screenshots/chat.png, location.png, telemetry.png, console.png, console-phone.png')
} finally {
  await browser.close()
  for (const simulator of simulators) simulator.kill('SIGINT')
  await Promise.all(simulators.map((simulator) => new Promise((resolve) => simulator.once('exit', resolve))))
  await broker.close()
}
