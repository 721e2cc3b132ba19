// Loads the configuration: built-in defaults <- config file <- environment <- CLI flags,
// then validates the result once, naming the bad key, where it came from and what was expected.
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { configSchema, type BrokerConfig } from './config-schema.js'
import { defaultOptions } from './defaults.js'

export type { BrokerConfig }

/** A configuration error: the process should print the message and exit with code 2. */
export class ConfigError extends Error {
  readonly exitCode = 2
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

type Plain = Record<string, unknown>
/** A partial config as a user writes it: any subset of the keys. */
export type ConfigInput = DeepPartial<BrokerConfig>
type DeepPartial<T> = T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T

type ValueKind = 'string' | 'number' | 'boolean-or-auto' | 'count-or-auto'

/** Environment variables and the config key each one sets. */
export const environmentVariables: ReadonlyArray<{ name: string, path: string, kind: ValueKind }> = [
  { name: 'HOST', path: 'host', kind: 'string' },
  { name: 'NODE_ID', path: 'nodeId', kind: 'string' },
  { name: 'MQTT_PORT', path: 'mqtt.port', kind: 'number' },
  { name: 'MQTTS_PORT', path: 'mqtts.port', kind: 'number' },
  { name: 'HTTP_PORT', path: 'http.port', kind: 'number' },
  { name: 'REDIS_URL', path: 'redis.url', kind: 'string' },
  { name: 'REDIS_KEY_PREFIX', path: 'redis.keyPrefix', kind: 'string' },
  { name: 'REDIS_EMITTER', path: 'redis.emitter', kind: 'string' },
  { name: 'WORKERS', path: 'workers', kind: 'count-or-auto' },
  { name: 'JWT_SECRET', path: 'auth.jwt.secret', kind: 'string' },
  { name: 'JWT_ISSUER', path: 'auth.jwt.issuer', kind: 'string' },
  { name: 'JWT_AUDIENCE', path: 'auth.jwt.audience', kind: 'string' },
  { name: 'ALLOW_ANONYMOUS', path: 'auth.anonymous', kind: 'boolean-or-auto' },
  { name: 'LOG_LEVEL', path: 'log.level', kind: 'string' },
  // test-only (testOnly in the defaults table)
  { name: 'REALTIME_BROKER_TEST_ROUTE_CHANGE_DELAY_MS', path: 'testOnly.routeChangeDelayMs', kind: 'number' }
]

export interface ConfigSources {
  /** A YAML (or JSON) config file. */
  file?: string
  /** Environment variables, usually process.env. */
  env?: Record<string, string | undefined>
  /** Values from CLI flags, keyed by config path, with the flag that set each. */
  flags?: ReadonlyArray<{ flag: string, path: string, value: string }>
}

/** Builds and validates the configuration from all its sources. */
export function loadConfig (sources: ConfigSources = {}): BrokerConfig {
  const origins = new Map<string, string>()
  let merged: Plain = structuredClone(defaultOptions) as Plain
  if (sources.file !== undefined) {
    const fromFile = readConfigFile(sources.file)
    merged = deepMerge(merged, fromFile, `config file ${sources.file}`, origins, '')
  }
  for (const variable of environmentVariables) {
    const raw = sources.env?.[variable.name]
    if (raw === undefined || raw === '') continue
    setPath(merged, variable.path, convert(raw, variable.kind))
    origins.set(variable.path, `environment variable ${variable.name}`)
  }
  for (const { flag, path, value } of sources.flags ?? []) {
    const variable = environmentVariables.find((v) => v.path === path)
    setPath(merged, path, convert(value, variable?.kind ?? 'string'))
    origins.set(path, `flag ${flag}`)
  }
  return validate(merged, origins)
}

/** Defaults <- the given partial config, validated: for embedding the broker as a library. */
export function resolveConfig (input: ConfigInput = {}): BrokerConfig {
  const origins = new Map<string, string>()
  return validate(deepMerge(structuredClone(defaultOptions) as Plain, input as Plain, 'options', origins, ''), origins)
}

function readConfigFile (file: string): Plain {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`config: cannot read config file ${file}: ${(err as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = parseYaml(text)
  } catch (err) {
    throw new ConfigError(`config: ${file} is not valid YAML: ${(err as Error).message}`)
  }
  if (parsed === null || parsed === undefined) return {}
  if (!isPlain(parsed)) throw new ConfigError(`config: ${file} must hold a mapping of keys at its top level`)
  return parsed
}

function validate (candidate: Plain, origins: Map<string, string>): BrokerConfig {
  const result = configSchema.safeParse(candidate)
  if (result.success) return result.data
  const lines = result.error.issues.map((issue) => {
    const base = issue.path.join('.')
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => {
        const path = base === '' ? key : `${base}.${key}`
        return `  ${path}${originOf(path, origins)}: unknown key`
      }).join('\n')
    }
    const got = isSecretPath(base) ? '<redacted>' : JSON.stringify(getPath(candidate, base)) ?? 'nothing'
    return `  ${base}${originOf(base, origins)}: ${issue.message}, got ${got}`
  })
  return failWith(`config: invalid configuration\n${lines.join('\n')}`)
}

/** Keys whose values are never printed: secrets, and URLs that may carry a password. */
export function isSecretPath (path: string): boolean {
  return /(^|\.)(secret|password|url|privateKey)$/i.test(path) || path.includes('.secrets')
}

function failWith (message: string): never {
  throw new ConfigError(message)
}

function originOf (path: string, origins: Map<string, string>): string {
  for (let p = path; p !== ''; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const origin = origins.get(p)
    if (origin !== undefined) return ` (from ${origin})`
  }
  return ''
}

function convert (raw: string, kind: ValueKind): unknown {
  if (kind === 'count-or-auto') return raw === 'auto' ? raw : convert(raw, 'number')
  if (kind === 'number') return /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw
  if (kind === 'boolean-or-auto') {
    if (raw === 'true' || raw === '1') return true
    if (raw === 'false' || raw === '0') return false
    return raw
  }
  return raw
}

function isPlain (value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function deepMerge (base: Plain, over: Plain, origin: string, origins: Map<string, string>, prefix: string): Plain {
  const out: Plain = { ...base }
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue
    const path = prefix === '' ? key : `${prefix}.${key}`
    const current = out[key]
    out[key] = isPlain(current) && isPlain(value) ? deepMerge(current, value, origin, origins, path) : value
    if (!isPlain(value)) origins.set(path, origin)
  }
  return out
}

function setPath (target: Plain, path: string, value: unknown): void {
  const keys = path.split('.')
  let node = target
  for (const key of keys.slice(0, -1)) {
    const next = node[key]
    if (!isPlain(next)) node[key] = {}
    node = node[key] as Plain
  }
  node[keys[keys.length - 1] as string] = value
}

function getPath (source: Plain, path: string): unknown {
  let node: unknown = source
  for (const key of path.split('.')) {
    if (!isPlain(node)) return undefined
    node = node[key]
  }
  return node
}
