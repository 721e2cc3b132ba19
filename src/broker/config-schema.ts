// The shape of a complete, validated configuration. Every key is required here because the
// loader merges the built-in defaults in first; `.strict()` makes an unknown key an error.
import { z } from 'zod'

const port = z.number({ error: 'expected a port number (integer 0-65535)' })
  .int('expected a port number (integer 0-65535)')
  .min(0, 'expected a port number (integer 0-65535)')
  .max(65535, 'expected a port number (integer 0-65535)')

const positiveInt = (what: string) => z.number({ error: `expected ${what}` })
  .int(`expected ${what}`).positive(`expected ${what}`)
const nonNegativeInt = (what: string) => z.number({ error: `expected ${what}` })
  .int(`expected ${what}`).min(0, `expected ${what}`)

const filePath = z.string({ error: 'expected a file path' }).min(1, 'expected a file path')

const tlsFiles = z.object({
  key: filePath,
  cert: filePath,
  ca: filePath.optional()
}).strict()

export const configSchema = z.object({
  host: z.string({ error: 'expected a host name or IP address' }).min(1, 'expected a host name or IP address'),
  nodeId: z.string({ error: 'expected a string (empty = random)' }),
  mqtt: z.object({
    port
  }).strict(),
  mqtts: z.object({
    port,
    tls: tlsFiles.optional()
  }).strict(),
  http: z.object({
    port,
    websocketPath: z.string().regex(/^\/[\w\-./]*$/, 'expected a URL path starting with "/"'),
    maxWebSocketFrame: positiveInt('a size in bytes (positive integer)'),
    tls: tlsFiles.optional()
  }).strict(),
  redis: z.object({
    url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL')
  }).strict().optional(),
  limits: z.object({
    maxPacketSize: positiveInt('a size in bytes (positive integer)').max(268_435_455, 'expected at most 268435455 (the MQTT maximum)'),
    maxClientIdLength: positiveInt('a length (positive integer)').max(65535, 'expected at most 65535'),
    maxTopicLength: positiveInt('a length (positive integer)').max(65535, 'expected at most 65535'),
    maxTopicLevels: positiveInt('a count (integer 1-100)').max(100, 'expected a count (integer 1-100)'),
    queueLimit: positiveInt('a count (positive integer)'),
    concurrency: positiveInt('a count (positive integer)'),
    connectTimeoutMs: positiveInt('milliseconds (positive integer)'),
    drainTimeoutMs: nonNegativeInt('milliseconds (integer >= 0, 0 = off)'),
    keepaliveLimitS: nonNegativeInt('seconds (integer >= 0, 0 = any)').max(65535, 'expected at most 65535'),
    maxInflightInbound: nonNegativeInt('a count (integer >= 0, 0 = unlimited)')
  }).strict(),
  auth: z.object({
    // 'auto': anonymous clients are accepted only while no JWT key is configured.
    anonymous: z.union([z.boolean(), z.literal('auto')], { error: 'expected true, false or "auto"' })
  }).strict(),
  shutdown: z.object({
    timeoutMs: positiveInt('milliseconds (positive integer)')
  }).strict(),
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'expected one of fatal, error, warn, info, debug, trace, silent' })
  }).strict()
}).strict()

export type BrokerConfig = z.infer<typeof configSchema>
