// The broker runs with its open-files soft limit at the hard limit and logs both figures:
// every connection is an open file.
import { execFileSync, spawn } from 'node:child_process'
import t from 'tap'
import { openFilesLimit, raiseOpenFilesLimit, reportOpenFilesLimit } from '../src/broker/process/open-files.js'
import { capturingLogger } from './helpers/broker.js'
import { diesWithTest } from './helpers/children.js'
import { cliPath } from './helpers/process.js'
import { startRedis } from './helpers/redis.js'

const own = openFilesLimit()
// these machines: Linux, hard limit 20,000
if (own === null || own.hard === Infinity || own.hard < 2048) throw new Error(`needs Linux /proc and a finite hard open-files limit of at least 2048, got ${JSON.stringify(own)}`)
const hard = own.hard

t.test('the broker raises a low soft limit of its process to the hard one, and logs both', async (t) => {
  // lowered on this very process, as a runtime that left it low would
  execFileSync('prlimit', ['--pid', String(process.pid), '--nofile=1024:'])
  t.same(openFilesLimit(), { soft: 1024, hard }, 'lowered for the test')
  const { logger, lines } = capturingLogger()
  t.same(reportOpenFilesLimit(logger), { soft: hard, hard })
  t.same(openFilesLimit(), { soft: hard, hard }, 'raised to the hard limit')
  const line = lines.find((l) => l.event === 'process.open-files')
  t.match(line, { soft: hard, hard, raisedFrom: 1024 }, 'logged with both figures and what it was')
})

t.test('another process\'s soft limit is raised through prlimit(1)', async (t) => {
  const child = diesWithTest(spawn('prlimit', ['--nofile=512:', 'sleep', '30'], { stdio: 'ignore' }))
  t.teardown(() => { child.kill('SIGKILL') })
  const pid = child.pid ?? 0
  // prlimit execs the command: same pid, once its limit is set
  const deadline = Date.now() + 5000
  while (openFilesLimit(pid)?.soft !== 512 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(openFilesLimit(pid), { soft: 512, hard })
  raiseOpenFilesLimit(pid, hard)
  t.same(openFilesLimit(pid), { soft: hard, hard })
})

t.test('`realtime-broker start --workers 2` started with a soft limit of 1024: every worker logs the hard limit as its own', async (t) => {
  const redis = await startRedis(t)
  const child = diesWithTest(spawn('prlimit', ['--nofile=1024:', process.execPath, cliPath, 'start', '--workers', '2', '--redis', redis.url], {
    env: { ...process.env, MQTT_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'info', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe']
  }))
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  })
  let stdout = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.resume()
  const reports = (): Array<Record<string, unknown>> => stdout.split('\n').filter((l) => l.includes('"process.open-files"')).map((l) => JSON.parse(l) as Record<string, unknown>)
  const deadline = Date.now() + 60_000
  while (reports().length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  const lines = reports()
  t.equal(lines.length, 2, 'one report per worker')
  for (const line of lines) t.match(line, { soft: hard, hard }, 'at the hard limit')
  t.same(openFilesLimit(child.pid ?? 0), { soft: hard, hard }, 'the primary too')
})
