#!/usr/bin/env node
// realtime-broker CLI: `start` runs a broker node.
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from './broker/config.js'
import { createBroker } from './broker/create-broker.js'
import { exitOnSignals } from './broker/lifecycle.js'

const usage = `Usage: realtime-broker <command> [options]

Commands:
  start     run a broker node
  help      show this help

start options (each overrides its environment variable, which overrides the config file):
  --config FILE     YAML config file (env BROKER_CONFIG; default: config/default.yaml)
  --host H          address to listen on (env HOST)
  --mqtt-port N     MQTT over TCP port, 0 = any free port (env MQTT_PORT)
  --http-port N     HTTP/WebSocket port, 0 = any free port (env HTTP_PORT)
  --redis URL       cluster through Redis (env REDIS_URL)
`

export const defaultConfigFile = fileURLToPath(new URL('../../config/default.yaml', import.meta.url))

/** CLI flags of `start` and the config key each sets. */
const startFlags = {
  host: 'host',
  'mqtt-port': 'mqtt.port',
  'http-port': 'http.port',
  redis: 'redis.url'
} as const

async function start (args: string[]): Promise<void> {
  const options: Record<string, { type: 'string' }> = { config: { type: 'string' } }
  for (const flag of Object.keys(startFlags)) options[flag] = { type: 'string' }
  const { values } = parseArgs({ args, strict: true, options })
  const flags = Object.entries(startFlags).flatMap(([flag, path]) => {
    const value = values[flag]
    return typeof value === 'string' ? [{ flag: `--${flag}`, path, value }] : []
  })
  const file = values.config ?? process.env.BROKER_CONFIG ?? defaultConfigFile
  const config = loadConfig({ file: String(file), env: process.env, flags })
  const broker = await createBroker(config, { announce: (line) => process.stdout.write(`realtime-broker: ${line}\n`) })
  exitOnSignals(broker)
}

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'start':
      await start(rest)
      return
    case 'help':
    case '--help':
    case '-h':
    case undefined:
      process.stdout.write(usage)
      return
    default:
      throw new UsageError(`unknown command "${command}"`)
  }
}

class UsageError extends Error {}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`)
    process.exit(err.exitCode)
  }
  // parseArgs throws TypeErrors with a code for unknown or malformed flags
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
    process.stderr.write(`realtime-broker: ${(err as Error).message}\n\n${usage}`)
    process.exit(2)
  }
  const code = (err as { code?: string }).code
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    process.stderr.write(`realtime-broker: cannot listen: ${(err as Error).message}\n`)
    process.exit(1)
  }
  process.stderr.write(`realtime-broker: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
