// The shape of a complete, validated configuration. Every key is required here because the
// loader merges the built-in defaults in first; `.strict()` makes an unknown key an error.
import { z } from 'zod'
import { jwtAlgorithms } from '../../acl/jwt.js'
import { isValidTopicFilter } from '../../acl/topic-grammar.js'
import { shareStrategies } from '../shared/dispatch-strategy.js'
import { webhookEventTypes } from '../webhooks/events.js'

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

const algorithm = z.enum(jwtAlgorithms, { error: `expected one of ${jwtAlgorithms.join(', ')} ("none" is never allowed)` })

// An ACL pattern: a valid MQTT filter, placeholders %u and %c as whole levels.
const grantPattern = z.string().refine((p) => isValidTopicFilter(p), { error: 'expected an MQTT topic filter (wildcards + and # as whole levels, # last)' })

export const configSchema = z.object({
  host: z.string({ error: 'expected a host name or IP address' }).min(1, 'expected a host name or IP address'),
  nodeId: z.string({ error: 'expected a string (empty = random)' }),
  mqtt: z.object({
    port,
    noDelay: z.boolean({ error: 'expected true or false' })
  }).strict(),
  mqtts: z.object({
    port,
    noDelay: z.boolean({ error: 'expected true or false' }),
    tls: tlsFiles.optional()
  }).strict(),
  http: z.object({
    port,
    websocketPath: z.string().regex(/^\/[\w\-./]*$/, 'expected a URL path starting with "/"'),
    maxWebSocketFrame: positiveInt('a size in bytes (positive integer)'),
    sse: z.object({
      heartbeatMs: positiveInt('milliseconds (positive integer)'),
      maxBufferedBytes: positiveInt('bytes (positive integer)'),
      maxStreamsPerUser: positiveInt('a number of streams (positive integer)'),
      maxStreams: positiveInt('a number of streams (positive integer)')
    }).strict(),
    // Serve the demo pages at / and the browser SDK at /sdk/realtime.js.
    demos: z.boolean({ error: 'expected true or false' }),
    // POST /api/v1/dev/token mints tokens for anyone who asks: development only.
    devTokens: z.boolean({ error: 'expected true or false' }),
    // The operators' web console at /console.
    console: z.boolean({ error: 'expected true or false' }),
    // Origins whose pages may load the SDK and call the HTTP APIs (CORS); empty = same-origin.
    corsOrigins: z.array(z.string().regex(/^https?:\/\/[^/?#\s]+$/, 'expected an origin: scheme://host[:port], no path or trailing "/"')),
    tls: tlsFiles.optional()
  }).strict(),
  redis: z.object({
    // redis+cluster://host:port,host:port names a Redis Cluster by its seed nodes
    url: z.string().regex(/^rediss?(:\/\/|\+cluster:\/\/(?:[^@/]*@)?[^\s:/,]+:\d+(,[^\s:/,]+:\d+)*\/?$)/, 'expected a redis:// or rediss:// URL, or redis+cluster://host:port,host:port').optional(),
    // Redis Sentinel: the master `name` is found through these sentinels; the URL then gives
    // only the credentials, database and TLS.
    sentinel: z.object({
      name: z.string().min(1, 'expected the master name the sentinels monitor'),
      nodes: z.array(z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port')).min(1, 'expected at least one sentinel host:port')
    }).strict().optional(),
    // Redis Cluster: its seed nodes; the URL, if any, then gives only credentials and TLS.
    cluster: z.array(z.string().regex(/^[^\s:,]+:\d+$/, 'expected host:port')).min(1, 'expected at least one cluster node host:port').optional(),
    // Prefix of every key and pub/sub channel, so several brokers can share one Redis.
    keyPrefix: z.string().regex(/^[\w:.-]*$/, 'expected letters, digits, _ : . or -').default(''),
    // Between nodes: 'routed' sends a message only to the nodes whose clients want it, through
    // per-node Redis Stream inboxes; 'mqemitter-redis' is the stock broadcast over pub/sub.
    emitter: z.enum(['routed', 'mqemitter-redis'], { error: 'expected "routed" or "mqemitter-redis"' }).default('routed'),
    inboxMaxLen: positiveInt('a number of messages (positive integer)').default(100_000),
    maxPendingQos0: positiveInt('a number of messages (positive integer)').default(10_000)
  }).strict().optional(),
  workers: z.union([positiveInt('a number of processes (positive integer) or "auto"').max(64, 'expected at most 64'), z.literal('auto')], { error: 'expected a number of processes or "auto"' }),
  cluster: z.object({
    heartbeatIntervalMs: positiveInt('milliseconds (positive integer)')
  }).strict(),
  limits: z.object({
    maxPacketSize: positiveInt('a size in bytes (positive integer)').max(268_435_455, 'expected at most 268435455 (the MQTT maximum)'),
    maxClientIdLength: positiveInt('a length (positive integer)').max(65535, 'expected at most 65535'),
    maxTopicLength: positiveInt('a length (positive integer)').max(65535, 'expected at most 65535'),
    maxTopicLevels: positiveInt('a count (integer 1-100)').max(100, 'expected a count (integer 1-100)'),
    queueLimit: positiveInt('a count (positive integer)'),
    concurrency: positiveInt('a count (positive integer)'),
    connectTimeoutMs: positiveInt('milliseconds (positive integer)'),
    drainTimeoutMs: nonNegativeInt('milliseconds (integer >= 0, 0 = off)'),
    // above the transports' write buffer (16 KiB), so output over it always ends in a 'drain'
    maxClientOutputBytes: positiveInt('a size in bytes (integer >= 65536)').min(65_536, 'expected at least 65536 (64 KiB)'),
    keepaliveLimitS: nonNegativeInt('seconds (integer >= 0, 0 = any)').max(65535, 'expected at most 65535'),
    maxInflightInbound: nonNegativeInt('a count (integer >= 0, 0 = unlimited)'),
    topicAliasMaximum: nonNegativeInt('a count of aliases (integer 0-65535, 0 = none)').max(65535, 'expected a count of aliases (integer 0-65535, 0 = none)'),
    outboundTopicAliases: nonNegativeInt('a count of aliases (integer 0-65535, 0 = none)').max(65535, 'expected a count of aliases (integer 0-65535, 0 = none)'),
    maxConnectionsPerUser: nonNegativeInt('a count (integer >= 0, 0 = unlimited)'),
    maxConnectRatePerUser: nonNegativeInt('connections per second (integer >= 0, 0 = unlimited)'),
    maxConcurrentConnects: nonNegativeInt('a count of CONNECTs (integer >= 0, 0 = no cap)'),
    maxQueuedConnects: nonNegativeInt('a count of CONNECTs (integer >= 0, 0 = refuse at once)'),
    connectQueueTimeoutMs: positiveInt('milliseconds (positive integer)'),
    connectLoopDelayMs: nonNegativeInt('milliseconds (integer >= 0, 0 = the fixed cap only)'),
    maxRetainedMessages: nonNegativeInt('a number of messages (integer >= 0, 0 = unlimited)'),
    maxRetainedPerUser: nonNegativeInt('a number of messages (integer >= 0, 0 = unlimited)'),
    maxRetainedBytesPerUser: nonNegativeInt('a size in bytes (integer >= 0, 0 = unlimited)')
  }).strict(),
  auth: z.object({
    // 'auto': anonymous clients are accepted only while no JWT key is configured.
    anonymous: z.union([z.boolean(), z.literal('auto')], { error: 'expected true, false or "auto"' }),
    jwt: z.object({
      secret: z.string({ error: 'expected a string (an HMAC secret)' }).min(16, 'expected an HMAC secret of at least 16 characters').optional(),
      keys: z.array(z.object({
        kid: z.string().min(1, 'expected a key id').optional(),
        secret: z.string().min(16, 'expected an HMAC secret of at least 16 characters').optional(),
        secretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name').optional(),
        publicKey: z.string().includes('-----BEGIN', { error: 'expected a PEM public key' }).optional(),
        publicKeyFile: filePath.optional(),
        privateKeyFile: filePath.optional(),
        algorithms: z.array(algorithm).min(1).optional()
      }).strict()).default([]),
      algorithms: z.array(algorithm).min(1, 'expected at least one algorithm').default(['HS256']),
      issuer: z.string().optional(),
      audience: z.string().optional(),
      requireExp: z.boolean({ error: 'expected true or false' }).default(true),
      clockToleranceS: nonNegativeInt('seconds (integer 0-300)').max(300, 'expected seconds (integer 0-300)').default(30),
      expiryGraceS: nonNegativeInt('seconds (integer >= 0)').default(0),
      username: z.enum(['empty-or-subject', 'subject'], { error: 'expected "empty-or-subject" or "subject"' }).default('empty-or-subject')
    }).strict().optional()
  }).strict(),
  acl: z.object({
    roles: z.record(z.string(), z.object({
      pub: z.array(grantPattern).default([]),
      sub: z.array(grantPattern).default([]),
      // the ShareNames of shared subscriptions the role may join; unset: any
      shareNames: z.array(z.string({ error: 'expected a ShareName (text)' }).min(1, 'expected a ShareName of at least one character').regex(/^[^/+#]+$/, 'expected a ShareName without /, + or #')).optional(),
      limits: z.object({
        maxPublishRate: positiveInt('messages per second (positive integer)').optional(),
        maxPublishBytesRate: positiveInt('bytes per second (positive integer)').optional(),
        maxSubscriptions: nonNegativeInt('a count (integer >= 0)').optional(),
        maxPayloadSize: nonNegativeInt('a size in bytes (integer >= 0)').optional(),
        maxQos: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: 'expected 0, 1 or 2' }).optional(),
        maxConnections: positiveInt('a count (positive integer)').optional(),
        maxConnectRate: positiveInt('connections per second (positive integer)').optional(),
        maxRetained: nonNegativeInt('a number of messages (integer >= 0)').optional(),
        maxRetainedBytes: nonNegativeInt('a size in bytes (integer >= 0)').optional()
      }).strict().optional()
    }).strict()),
    users: z.record(z.string(), z.object({ roles: z.array(z.string()) }).strict()),
    defaultRoles: z.array(z.string()),
    // What happens to a publish the ACL denies: close the connection, or acknowledge and drop
    // it (MQTT 3.1.1 allows only these two [MQTT-3.3.5-2]).
    onPublishDenied: z.enum(['disconnect', 'drop'], { error: 'expected "disconnect" or "drop"' }),
    // What happens to a publish over a role's rate, payload or QoS limit.
    onLimitExceeded: z.enum(['disconnect', 'drop'], { error: 'expected "disconnect" or "drop"' })
  }).strict(),
  presence: z.object({
    enabled: z.boolean({ error: 'expected true or false' }),
    heartbeatMs: positiveInt('milliseconds (positive integer)'),
    nodeTimeoutMs: positiveInt('milliseconds (positive integer)'),
    minUpdateIntervalMs: nonNegativeInt('milliseconds (integer >= 0, 0 = every change)'),
    retainedExpirySeconds: nonNegativeInt('seconds (integer >= 0, 0 = never)').max(31_536_000, 'expected at most 31536000 (a year)')
  }).strict(),
  sessions: z.object({
    maxQueuedMessages: nonNegativeInt('a number of messages (integer >= 0, 0 = unlimited)'),
    // at most a year: the sweep timer and Redis scores stay far from their limits
    expirySeconds: nonNegativeInt('seconds (integer >= 0, 0 = never)').max(31_536_000, 'expected at most 31536000 (a year)')
  }).strict(),
  sharedSubscriptions: z.object({
    strategy: z.enum(shareStrategies, { error: `expected one of ${shareStrategies.join(', ')}` }),
    preferLocal: z.boolean({ error: 'expected true or false' }),
    maxWaitingPerGroup: nonNegativeInt('a number of messages (integer >= 0)')
  }).strict(),
  history: z.object({
    topics: z.array(z.object({
      filter: z.string({ error: 'expected an MQTT topic filter' }).refine((f) => isValidTopicFilter(f) && !f.startsWith('$'), { error: 'expected an MQTT topic filter (wildcards + and # as whole levels, # last), not a $ topic' }),
      size: positiveInt('a number of messages (positive integer)').max(1_000_000, 'expected at most 1000000 messages'),
      ttlSeconds: nonNegativeInt('seconds (integer >= 0, 0 = kept until pushed out by size)').max(31_536_000, 'expected at most 31536000 (a year)')
    }).strict(), { error: 'expected a list of { filter, size, ttlSeconds }' }),
    idempotencyWindowSeconds: nonNegativeInt('seconds (integer >= 0, 0 = no idempotency keys)').max(86_400, 'expected at most 86400 (a day)'),
    maxReadLimit: positiveInt('a number of messages (positive integer)').max(100_000, 'expected at most 100000 messages')
  }).strict(),
  webhooks: z.object({
    endpoints: z.array(z.object({
      // a metrics label and part of Redis keys: short and plain
      name: z.string().regex(/^[\w.-]{1,64}$/, 'expected a name of 1-64 letters, digits, _ . or -'),
      url: z.string().regex(/^https?:\/\/[^\s]+$/, 'expected an http:// or https:// URL'),
      secret: z.string({ error: 'expected a string (the signing secret)' }).min(16, 'expected a signing secret of at least 16 characters').optional(),
      secretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name').optional(),
      events: z.array(z.enum(webhookEventTypes, { error: `expected one of ${webhookEventTypes.join(', ')}` })).min(1, 'expected at least one event type'),
      topics: z.array(z.string().refine((f) => isValidTopicFilter(f), { error: 'expected an MQTT topic filter' })).default([])
    }).strict().refine((e) => e.secret !== undefined || e.secretEnv !== undefined, { error: 'expected a secret or secretEnv: every webhook request is signed', path: ['secret'] })),
    batchSize: positiveInt('a number of events (positive integer)').max(10_000, 'expected at most 10000'),
    batchMaxBytes: positiveInt('a request body size in bytes (positive integer)').min(1024, 'expected at least 1024 bytes'),
    batchDelayMs: nonNegativeInt('milliseconds (integer >= 0)'),
    timeoutMs: positiveInt('milliseconds (positive integer)'),
    retryInitialMs: positiveInt('milliseconds (positive integer)'),
    retryMaxMs: positiveInt('milliseconds (positive integer)'),
    deadLetterAfterMs: positiveInt('milliseconds (positive integer)'),
    maxPendingPerEndpoint: positiveInt('a number of events (positive integer)'),
    maxDeadLetters: positiveInt('a number of events (positive integer)')
  }).strict(),
  authorizationHook: z.object({
    url: z.union([z.literal(''), z.string().regex(/^https?:\/\/[^\s]+$/)], { error: 'expected an http:// or https:// URL, or "" (off)' }),
    connect: z.boolean({ error: 'expected true or false' }),
    subscribe: z.boolean({ error: 'expected true or false' }),
    publish: z.boolean({ error: 'expected true or false' }),
    timeoutMs: positiveInt('milliseconds (positive integer)'),
    onFailure: z.enum(['deny', 'allow'], { error: 'expected "deny" or "allow"' }),
    cacheTtlS: nonNegativeInt('seconds (integer >= 0, 0 = no cache)'),
    maxCacheEntries: positiveInt('a number of answers (positive integer)'),
    // signs the hook's requests as webhooks are signed, so the backend knows they are the broker's
    secret: z.string().min(16, 'expected a signing secret of at least 16 characters').optional(),
    secretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name').optional()
  }).strict(),
  admin: z.object({
    requestTimeoutMs: positiveInt('milliseconds (positive integer)').max(60_000, 'expected at most 60000 (a minute)'),
    auditEntries: positiveInt('a number of entries (positive integer)').max(1_000_000, 'expected at most 1000000')
  }).strict(),
  shutdown: z.object({
    timeoutMs: positiveInt('milliseconds (positive integer)'),
    drainMs: nonNegativeInt('milliseconds (integer >= 0)')
  }).strict(),
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'expected one of fatal, error, warn, info, debug, trace, silent' })
  }).strict(),
  metrics: z.object({
    eventLoopMonitoringPrecisionMs: positiveInt('milliseconds (positive integer)').max(10_000, 'expected at most 10000 (10 s)')
  }).strict(),
  testOnly: z.object({
    routeChangeDelayMs: nonNegativeInt('milliseconds (integer 0-60000, 0 = off; test-only)').max(60_000, 'expected milliseconds (integer 0-60000, 0 = off; test-only)')
  }).strict()
}).strict().superRefine((config, ctx) => {
  const defined = new Set(Object.keys(config.acl.roles))
  const check = (roles: string[], path: Array<string | number>): void => {
    roles.forEach((role, i) => {
      if (!defined.has(role)) ctx.addIssue({ code: 'custom', path: [...path, i], message: `expected a role defined under acl.roles (${[...defined].join(', ')}), got ${JSON.stringify(role)}` })
    })
  }
  check(config.acl.defaultRoles, ['acl', 'defaultRoles'])
  if (config.workers !== 1 && config.redis === undefined) {
    ctx.addIssue({ code: 'custom', path: ['workers'], message: 'expected 1 without Redis: several worker processes share sessions and messages only through Redis (set redis.url, REDIS_URL or --redis)' })
  }
  if (config.redis !== undefined) redisTopologyIssues(config.redis).forEach(([key, message]) => ctx.addIssue({ code: 'custom', path: ['redis', key], message }))
  if (config.presence.nodeTimeoutMs <= config.presence.heartbeatMs) {
    ctx.addIssue({ code: 'custom', path: ['presence', 'nodeTimeoutMs'], message: `expected more than presence.heartbeatMs (${config.presence.heartbeatMs})` })
  }
  if (config.shutdown.drainMs >= config.shutdown.timeoutMs) {
    ctx.addIssue({ code: 'custom', path: ['shutdown', 'drainMs'], message: `expected less than shutdown.timeoutMs (${config.shutdown.timeoutMs})` })
  }
  const names = config.webhooks.endpoints.map((e) => e.name)
  names.forEach((name, i) => {
    if (names.indexOf(name) !== i) ctx.addIssue({ code: 'custom', path: ['webhooks', 'endpoints', i, 'name'], message: `expected a name no other endpoint has, got ${JSON.stringify(name)} twice` })
  })
  if (config.webhooks.retryMaxMs < config.webhooks.retryInitialMs) {
    ctx.addIssue({ code: 'custom', path: ['webhooks', 'retryMaxMs'], message: `expected at least webhooks.retryInitialMs (${config.webhooks.retryInitialMs})` })
  }
  const hook = config.authorizationHook
  if (hook.url !== '' && !hook.connect && !hook.subscribe && !hook.publish) {
    ctx.addIssue({ code: 'custom', path: ['authorizationHook', 'url'], message: 'expected at least one of connect, subscribe, publish set to true when url is set' })
  }
  for (const [user, entry] of Object.entries(config.acl.users)) check(entry.roles, ['acl', 'users', user, 'roles'])
})

export type BrokerConfig = z.infer<typeof configSchema>

/** What a Redis set-up cannot combine: [key, message] for each conflict. */
function redisTopologyIssues (redis: NonNullable<BrokerConfig['redis']>): Array<[string, string]> {
  const clusterUrl = redis.url?.includes('+cluster://') === true
  const cluster = clusterUrl || redis.cluster !== undefined
  const issues: Array<[string, string]> = []
  if (redis.url === undefined && redis.cluster === undefined) issues.push(['url', 'expected a redis:// URL, or redis.cluster: ["host:port", ...]'])
  if (clusterUrl && redis.cluster !== undefined) issues.push(['cluster', 'expected either redis.cluster or a redis+cluster:// URL, not both'])
  if (cluster && redis.sentinel !== undefined) issues.push(['sentinel', 'expected no sentinel with a Redis Cluster (a Cluster fails over by itself)'])
  // mqemitter-redis takes one ioredis connection, not a Cluster
  if (cluster && redis.emitter !== 'routed') issues.push(['emitter', 'expected "routed" on a Redis Cluster'])
  return issues
}
