// The package as a user gets it: `npm pack`, then `npm install <tgz>` in a fresh project, with
// and without install scripts, then the README's "Embed it" snippet and a patched behaviour
// (SUBACK grants 1 under a role's maxQos 1 for a QoS 2 subscribe, patches/aedes+<version>.patch).
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import type { Teardown } from './helpers/loopback.js'
import { codeBlocks } from './helpers/markdown.js'

const run = promisify(execFile)
// npm pack (with its build) and two installs: about 75 s alone, more beside other test files
t.setTimeout(300_000)
const repo = fileURLToPath(new URL('..', import.meta.url))
// the Aedes the repository pins, whose patch the unpatched install must name
const aedesVersion = (JSON.parse(readFileSync(join(repo, 'node_modules', 'aedes', 'package.json'), 'utf8')) as { version: string }).version
const escaped = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const npmFlags = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel', 'error']

const embedSnippet = codeBlocks(join(repo, 'README.md')).find((block) => block.heading === 'Embed it')?.code ?? ''

// a QoS 2 subscribe under maxQos 1: stock Aedes answers 2 in the SUBACK, patched Aedes 1
const grantedQosScript = `
import { createBroker } from 'realtime-broker'
import mqtt from 'mqtt'
const broker = await createBroker({ mqtt: { port: 0 }, http: { port: 0 }, log: { level: 'silent' }, auth: { anonymous: true },
  acl: { roles: { anonymous: { pub: ['#'], sub: ['#'], limits: { maxQos: 1 } } } } })
const client = await mqtt.connectAsync('mqtt://127.0.0.1:' + broker.addresses.mqtt.port, { reconnectPeriod: 0 })
const granted = await client.subscribeAsync('a/b', { qos: 2 })
console.log(JSON.stringify(granted.map((g) => g.qos)))
await client.endAsync()
await broker.close()
`

async function installedProject (t: Teardown, tarball: string, extraFlags: string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'rb-consumer-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  await run('npm', ['install', tarball, ...npmFlags, ...extraFlags], { cwd: dir, timeout: 120_000 })
  writeFileSync(join(dir, 'embed.mjs'), embedSnippet)
  writeFileSync(join(dir, 'granted-qos.mjs'), grantedQosScript)
  return dir
}

t.test('the packed tarball installs and runs patched, with and without install scripts', async (t) => {
  t.match(embedSnippet, /createBroker/, 'the README has an "Embed it" snippet')
  const packDir = mkdtempSync(join(tmpdir(), 'rb-pack-'))
  t.teardown(() => rmSync(packDir, { recursive: true, force: true }))
  const { stdout } = await run('npm', ['pack', '--pack-destination', packDir, '--loglevel', 'error'], { cwd: repo, timeout: 120_000 })
  const tarball = join(packDir, stdout.trim().split('\n').at(-1) as string)

  for (const flags of [[], ['--ignore-scripts']]) {
    const dir = await installedProject(t, tarball, flags)
    const embed = await run(process.execPath, ['embed.mjs'], { cwd: dir, timeout: 30_000 })
    t.match(embed.stdout, /mqtt: \{ host: '127\.0\.0\.1', port: \d+ \}/, `Embed it runs (${flags.join(' ') || 'default install'})`)
    const granted = await run(process.execPath, ['granted-qos.mjs'], { cwd: dir, timeout: 30_000 })
    t.equal(granted.stdout.trim(), '[1]', `SUBACK grants the role's maxQos (${flags.join(' ') || 'default install'})`)

    if (flags.length === 0) continue
    // undo one patch in the installed package: the broker must refuse to start, naming it
    await run('patch', ['-R', '-p1', '-s', '-i', join(repo, 'patches', `aedes+${aedesVersion}.patch`)], { cwd: join(dir, 'node_modules', 'realtime-broker') })
    const refused = await run(process.execPath, ['embed.mjs'], { cwd: dir, timeout: 30_000 }).then(() => null, (err: { code: number, stderr: string }) => err)
    t.not(refused, null, 'an unpatched Aedes stops the embedding app')
    t.match(refused?.stderr, new RegExp(`aedes@${escaped(aedesVersion)} at .* is not patched: lib/.* lacks patches/aedes\\+${escaped(aedesVersion)}\\.patch`))
    const cli = await run(process.execPath, [join(dir, 'node_modules', '.bin', 'realtime-broker'), 'start', '--mqtt-port', '0', '--http-port', '0'], { cwd: dir, timeout: 30_000 }).then(() => null, (err: { code: number, stderr: string }) => err)
    t.equal(cli?.code, 1, 'the CLI exits 1')
    t.match(cli?.stderr, new RegExp(`refusing to start on unpatched dependencies:\n {2}aedes@${escaped(aedesVersion)}`))
  }
})
