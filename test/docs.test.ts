// Every command block of the docs runs as written: the shell, JavaScript and TypeScript blocks
// of each document run in order in one shell, on free ports, within a time bound. A block that
// cannot run here says so, and why, in a `<!-- not run: reason -->` comment right above it.
import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { freePort } from './helpers/loopback.js'
import { codeBlocks } from './helpers/markdown.js'

const repo = fileURLToPath(new URL('..', import.meta.url))
// about 70 s alone (brokers, a cluster, HAProxy), more beside other test files
t.setTimeout(300_000)
const documents = ['README.md', 'clients/web/README.md', ...readdirSync(join(repo, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]
const shellLanguages = new Set(['sh', 'bash', 'shell'])
const scriptLanguages = new Set(['js', 'ts'])
// blocks that look runnable but can only run elsewhere must carry a `not run` reason
const runnableLanguages = new Set([...shellLanguages, ...scriptLanguages, 'html'])
// the ports the docs use, each replaced by a free one
const documentedPorts = [1883, 1884, 1885, 1886, 8080, 8081, 8082, 8083, 6379]

// A JS/TS snippet passes if it exits 0, or is still running (a client that stays connected)
// after 3 s without having failed.
const preamble = `set -euo pipefail
run_snippet () {
  node --import tsx "$1" & local pid=$!
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || { wait "$pid"; return; }; sleep 0.1; done
  kill "$pid"; wait "$pid" || true
}
`

interface Run { code: number | null, output: string }

function runScript (script: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    // its own process group: the brokers, redis-server and haproxy the blocks start in the
    // background end with it
    const child = spawn('bash', ['-c', script], { cwd: repo, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    const killGroup = (): void => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch { /* already gone */ } }
    const timer = setTimeout(() => { output += `\n[docs test] timed out after ${timeoutMs} ms\n`; killGroup() }, timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      killGroup()
      resolve({ code, output })
    })
  })
}

t.test('every command block of the docs runs as written', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'rb-docs-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
  // `realtime-broker` on PATH, as after `npm install -g`; snippets live in dist/ so that they
  // resolve `mqtt` and `realtime-broker` as they would in a project that installed them
  const bin = join(scratch, 'bin')
  mkdirSync(bin)
  chmodSync(join(repo, 'dist', 'src', 'cli.js'), 0o755)
  symlinkSync(join(repo, 'dist', 'src', 'cli.js'), join(bin, 'realtime-broker'))
  const snippets = mkdtempSync(join(repo, 'dist', 'docs-snippets-'))
  t.teardown(() => rmSync(snippets, { recursive: true, force: true }))

  for (const document of documents) {
    await t.test(document, async (t) => {
      const ports = new Map<number, number>()
      for (const port of documentedPorts) ports.set(port, await freePort())
      const onFreePorts = (code: string): string => code.replace(new RegExp(`\\b(${documentedPorts.join('|')})\\b`, 'g'), (port) => String(ports.get(Number(port))))
      let script = preamble
      for (const block of codeBlocks(join(repo, document)).filter((b) => runnableLanguages.has(b.lang))) {
        if (block.notRun !== null) {
          t.ok(block.notRun.length > 10, `${document}:${block.line} says why it does not run: ${block.notRun}`)
          continue
        }
        t.ok(shellLanguages.has(block.lang) || scriptLanguages.has(block.lang), `${document}:${block.line} (${block.lang}) is a command block`)
        script += `echo "[docs test] ${document}:${block.line}"\n`
        if (shellLanguages.has(block.lang)) {
          script += onFreePorts(block.code)
        } else {
          const file = join(snippets, `${document.replace(/\W/g, '-')}-${block.line}.${block.lang === 'ts' ? 'ts' : 'mjs'}`)
          writeFileSync(file, onFreePorts(block.code))
          script += `run_snippet ${file}\n`
        }
      }
      script += 'echo "[docs test] done"\n'
      const env: NodeJS.ProcessEnv = {
        PATH: `${bin}:${process.env.PATH ?? ''}`,
        HOME: process.env.HOME,
        TMPDIR: scratch,
        // the defaults the docs rely on (npm start: 1883 and 8080), on free ports; loopback only
        MQTT_PORT: String(ports.get(1883)),
        HTTP_PORT: String(ports.get(8080)),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn'
      }
      const run = await runScript(script, env, 90_000)
      t.equal(run.code, 0, `${document}: every block ran (exit code)`)
      t.match(run.output, /\[docs test\] done/, `${document}: ran to the end`, { output: run.output })
      if (run.code !== 0) t.comment(run.output)
    })
  }
})
