#!/usr/bin/env node
// Makes sure the real parts the tests use are installed: installs them from Debian's
// packages when run as root, otherwise says exactly what is missing and how to install it.
import { execFileSync, spawnSync } from 'node:child_process'

// command the tests run -> Debian package that provides it; `check`, when given, is the shell
// test instead of `command -v <command>`
const required = [
  { command: 'redis-server', pkg: 'redis-server' },
  { command: 'mosquitto_pub', pkg: 'mosquitto-clients' },
  { command: 'mosquitto_sub', pkg: 'mosquitto-clients' },
  { command: 'openssl', pkg: 'openssl' },
  { command: 'haproxy', pkg: 'haproxy' },
  // the browser tests drive Debian's Chromium (/usr/bin/chromium) with playwright-core
  { command: 'chromium', pkg: 'chromium' },
  // Paho Python for the interop tests, for the system interpreter Debian's package installs it for
  { command: 'python3 module paho.mqtt', check: '/usr/bin/python3 -c "import paho.mqtt.client"', pkg: 'python3-paho-mqtt' }
]

const has = ({ command, check }) => spawnSync('sh', ['-c', check ?? `command -v ${command}`], { stdio: 'ignore' }).status === 0
const missing = required.filter((item) => !has(item))
if (missing.length === 0) process.exit(0)

const packages = [...new Set(missing.map(({ pkg }) => pkg))]
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
if (!isRoot || !has({ command: 'apt-get' })) {
  console.error(`test prerequisites missing: ${missing.map(({ command }) => command).join(', ')}`)
  console.error(`install them with: sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}`)
  process.exit(1)
}
console.error(`installing test prerequisites from Debian packages: ${packages.join(' ')}`)
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env })
const stillMissing = required.filter((item) => !has(item))
if (stillMissing.length > 0) {
  console.error(`still missing after install: ${stillMissing.map(({ command }) => command).join(', ')}`)
  process.exit(1)
}
