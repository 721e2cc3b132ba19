#!/usr/bin/env node
// realtime-broker CLI: `start` runs a broker node.
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from './broker/config/config.js'
import { createBroker } from './server.js'
import cluster from 'node:cluster'
import { boundHeapGrowth } from './broker/process/heap-growth.js'
import { exitOnSignals } from './broker/process/lifecycle.js'
import { UnpatchedDependencyError } from './broker/process/patched-dependencies.js'
import { createLogger } from './broker/observability/logger.js'
import { superviseWorkers, workerCount } from './broker/process/workers.js'
import { signToken } from './acl/jwt.js'
import { simulateLocation } from './simulate/location.js'
import { runSimulation } from './simulate/run.js'
import { simulateTelemetry } from './simulate/telemetry.js'

const usage = `Usage: realtime-broker <command> [options]

Commands:
  start     run a broker node
  token     mint a JWT for development and tests, signed with the configured key
  simulate  run simulated vehicles (location) or devices (telemetry) for the demo pages
  help      show this help

start options (each overrides its environment variable, which overrides the config file):
  --config FILE     YAML config file (env BROKER_CONFIG; default: config/default.yaml)
  --host H          address to listen on (env HOST)
  --mqtt-port N     MQTT over TCP port, 0 = any free port (env MQTT_PORT)
  --http-port N     HTTP/WebSocket port, 0 = any free port (env HTTP_PORT)
  --redis URL       cluster through Redis (env REDIS_URL)
  --workers N       broker processes on this machine, or "auto" (env WORKERS; needs Redis)

token options (prints only the token):
  --user NAME       the token's subject (required)
  --pub FILTER      a topic filter the token may publish to (repeatable)
  --sub FILTER      a topic filter the token may subscribe to (repeatable)
  --role NAME       pick a role the config gives the user (repeatable)
  --ttl SECONDS     lifetime in seconds (default 3600)
  --config FILE     config file with the signing key (auth.jwt; env JWT_SECRET)

simulate location|telemetry options (one native MQTT connection per vehicle or device):
  --url URL         the broker (default mqtt://127.0.0.1:1883)
  --token JWT       for brokers that require one, e.g. from \`realtime-broker token\`
  --vehicles N      location: how many vehicles (default 50)
  --interval-ms MS  location: time between two positions of a vehicle (default 1000)
  --devices N       telemetry: how many devices (default 200)
  --rate R          telemetry: readings per device per second (default 2)
  --duration S      stop after S seconds (default: run until Ctrl-C)
  When no client could connect, it prints why (e.g. CONNACK 5, not authorized: a token is
  needed) and exits with 1.
`

export const defaultConfigFile = fileURLToPath(new URL('../../config/default.yaml', import.meta.url))

/** CLI flags of `start` and the config key each sets. */
const startFlags = {
  host: 'host',
  'mqtt-port': 'mqtt.port',
  'http-port': 'http.port',
  redis: 'redis.url',
  workers: 'workers'
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
  // stdout carries the JSON logs only (`realtime-broker start | jq 'select(.audit)'`): the
  // human start-up lines go to stderr, and a reader that goes away (EPIPE) must not take the
  // broker with it (pino drops its own lines then; these streams need a listener for it).
  for (const stream of [process.stdout, process.stderr]) stream.on('error', ignoreBrokenPipe)
  const announce = (line: string): void => { process.stderr.write(`realtime-broker: ${line}\n`) }
  const workers = workerCount(config)
  if (workers > 1 && cluster.isPrimary) {
    const logger = createLogger(config.log.level, `${config.nodeId === '' ? 'primary' : config.nodeId}`)
    process.exit(await superviseWorkers(workers, logger, announce))
  }
  boundHeapGrowth()
  const nodeId = config.nodeId !== '' && cluster.isWorker ? `${config.nodeId}-${cluster.worker?.id ?? 0}` : config.nodeId
  const broker = await createBroker({ ...config, nodeId }, { announce })
  exitOnSignals(broker)
}

function ignoreBrokenPipe (err: NodeJS.ErrnoException): void {
  if (err.code !== 'EPIPE') throw err
}

async function token (args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      user: { type: 'string' },
      pub: { type: 'string', multiple: true },
      sub: { type: 'string', multiple: true },
      role: { type: 'string', multiple: true },
      ttl: { type: 'string', default: '3600' },
      config: { type: 'string' }
    }
  })
  if (values.user === undefined || values.user === '') throw new UsageError('token: --user is required')
  const ttlS = Number(values.ttl)
  if (!Number.isInteger(ttlS) || ttlS <= 0) throw new UsageError(`token: --ttl expects a positive number of seconds, got ${JSON.stringify(values.ttl)}`)
  const config = loadConfig({ file: values.config ?? process.env.BROKER_CONFIG ?? defaultConfigFile, env: process.env })
  if (config.auth.jwt === undefined) throw new UsageError('token: no signing key: set JWT_SECRET or auth.jwt in the config')
  const minted = signToken(config.auth.jwt, process.env, {
    user: values.user,
    ttlS,
    ...(values.pub === undefined ? {} : { pub: values.pub }),
    ...(values.sub === undefined ? {} : { sub: values.sub }),
    ...(values.role === undefined ? {} : { roles: values.role })
  })
  process.stdout.write(`${minted}\n`)
}

async function simulate (args: string[]): Promise<void> {
  const [kind, ...rest] = args
  const { values } = parseArgs({
    args: rest,
    strict: true,
    options: {
      url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
      token: { type: 'string' },
      vehicles: { type: 'string', default: '50' },
      'interval-ms': { type: 'string', default: '1000' },
      devices: { type: 'string', default: '200' },
      rate: { type: 'string', default: '2' },
      duration: { type: 'string' }
    }
  })
  const number = (flag: keyof typeof values, max: number, integer = true): number => {
    const value = Number(values[flag])
    if (!(value > 0 && value <= max) || (integer && !Number.isInteger(value))) throw new UsageError(`simulate: --${flag} expects a ${integer ? 'whole ' : ''}number from 1 to ${max}, got ${JSON.stringify(values[flag])}`)
    return value
  }
  const durationS = values.duration === undefined ? null : number('duration', 86_400)
  const connection = { url: values.url, ...(values.token === undefined ? {} : { token: values.token }) }
  const simulation = kind === 'location'
    ? simulateLocation({ ...connection, vehicles: number('vehicles', 10_000), intervalMs: number('interval-ms', 60_000) })
    : kind === 'telemetry'
      ? simulateTelemetry({ ...connection, devices: number('devices', 10_000), rate: number('rate', 100, false) })
      : null
  if (simulation === null) throw new UsageError(`simulate: expected "location" or "telemetry", got ${JSON.stringify(kind ?? '')}`)
  process.exitCode = await runSimulation(simulation, values.url, durationS, {
    print: (line) => process.stdout.write(`${line}\n`),
    printError: (line) => process.stderr.write(`${line}\n`)
  })
}

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'start':
      await start(rest)
      return
    case 'token':
      await token(rest)
      return
    case 'simulate':
      await simulate(rest)
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
  if (err instanceof UnpatchedDependencyError) {
    process.stderr.write(`${err.message}\n`)
    process.exit(1)
  }
  const code = (err as { code?: string }).code
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    process.stderr.write(`realtime-broker: cannot listen: ${(err as Error).message}\n`)
    process.exit(1)
  }
  process.stderr.write(`realtime-broker: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
