// Configuration: precedence (defaults < file < environment < flags) and validation messages.
import { readFileSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import { ConfigError, loadConfig, resolveConfig } from '../src/broker/config/config.js'
import { defaultOptions } from '../src/broker/config/defaults.js'

t.test('defaults apply when nothing is configured', async (t) => {
  const config = loadConfig()
  t.equal(config.mqtt.port, defaultOptions.mqtt.port)
  t.equal(config.http.port, defaultOptions.http.port)
  t.equal(config.http.websocketPath, '/mqtt')
  t.equal(config.auth.anonymous, false, 'no anonymous access without a config that says so')
})

t.test('flags override environment, which overrides the file', async (t) => {
  const dir = t.testdir({ 'broker.yaml': 'mqtt:\n  port: 1111\nhttp:\n  port: 2222\nhost: 0.0.0.0\n' })
  const config = loadConfig({
    file: `${dir}/broker.yaml`,
    env: { MQTT_PORT: '3333', HTTP_PORT: '4444' },
    flags: [{ flag: '--http-port', path: 'http.port', value: '0' }]
  })
  t.equal(config.host, '0.0.0.0', 'from the file')
  t.equal(config.mqtt.port, 3333, 'environment beats file')
  t.equal(config.http.port, 0, 'flag beats environment; 0 = any free port')
})

t.test('validation names the key, where it came from and what was expected', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'mqtt:\n  port: 70000\nlimits:\n  maxPacketSize: -1\nsurprise: 1\n' })
  const err = t.throws(() => loadConfig({ file: `${dir}/bad.yaml` })) as ConfigError
  t.type(err, ConfigError)
  t.equal(err.exitCode, 2)
  t.match(err.message, /mqtt\.port \(from config file .*bad\.yaml\): expected a port number \(integer 0-65535\), got 70000/)
  t.match(err.message, /limits\.maxPacketSize .*: expected a size in bytes/)
  t.match(err.message, /surprise .*: unknown key/)

  const fromEnv = t.throws(() => loadConfig({ env: { MQTT_PORT: 'abc' } })) as ConfigError
  t.match(fromEnv.message, /mqtt\.port \(from environment variable MQTT_PORT\): expected a port number .*got "abc"/)

  const wrongType = t.throws(() => resolveConfig({ auth: { anonymous: 'yes' as unknown as boolean } })) as ConfigError
  t.match(wrongType.message, /auth\.anonymous .*expected true, false or "auto"/)
})

t.test('secret values are never echoed in validation errors', async (t) => {
  const err = t.throws(() => loadConfig({ env: { REDIS_URL: 'http://user:hunter2@example' } })) as ConfigError
  t.match(err.message, /redis\.url \(from environment variable REDIS_URL\): expected a redis:\/\/ or rediss:\/\/ URL/)
  t.notMatch(err.message, /hunter2/)
})

t.test('a file that is not YAML is reported as such', async (t) => {
  const dir = t.testdir({})
  writeFileSync(`${dir}/broken.yaml`, 'mqtt: [\n')
  t.throws(() => loadConfig({ file: `${dir}/broken.yaml` }), /is not valid YAML/)
  t.throws(() => loadConfig({ file: `${dir}/missing.yaml` }), /cannot read config file/)
})

t.test('the shipped default config is valid and allows anonymous only until JWT is configured', async (t) => {
  const config = loadConfig({ file: new URL('../config/default.yaml', import.meta.url).pathname })
  t.equal(config.auth.anonymous, 'auto')
  t.equal(config.mqtt.port, 1883)
  t.equal(config.http.port, 8080)
})

t.test('config/default.yaml shows every built-in default; its quick-start settings name theirs', async (t) => {
  const text = readFileSync(new URL('../config/default.yaml', import.meta.url), 'utf8')
  const shipped = parseYaml(text) as Record<string, Record<string, unknown>>
  const builtIn = structuredClone(defaultOptions) as unknown as Record<string, Record<string, unknown>>
  // what a config file that leaves these keys out gets, as their lines say
  const quickStart = [
    { key: 'anonymous', line: /^\s*anonymous: auto\s+# quick start; built-in default: false$/m, builtIn: builtIn.auth?.anonymous },
    { key: 'defaultRoles', line: /^\s*defaultRoles: \[member\]\s+# quick start; built-in default: \[\]$/m, builtIn: builtIn.acl?.defaultRoles },
    { key: 'roles.member', line: /^\s*member:\s+# quick start; not a built-in role/m, builtIn: (builtIn.acl?.roles as Record<string, unknown>).member },
    { key: 'history.topics', line: /^\s*topics: \[.+\]\s+# quick start \(the chat demo\); built-in default: \[\]$/m, builtIn: builtIn.history?.topics }
  ]
  t.same(quickStart.map((q) => q.builtIn), [false, [], undefined, []], 'the built-in defaults the quick-start lines name')
  for (const q of quickStart) t.match(text, q.line, `${q.key} is marked as a quick-start setting naming its built-in default`)
  // with the quick-start settings set back, the file holds exactly the built-in defaults
  const auth = shipped.auth as Record<string, unknown>
  const acl = shipped.acl as { roles: Record<string, unknown>, defaultRoles: unknown }
  auth.anonymous = builtIn.auth?.anonymous
  acl.defaultRoles = builtIn.acl?.defaultRoles
  delete acl.roles.member
  ;(shipped.history as { topics: unknown }).topics = builtIn.history?.topics
  t.same(shipped, builtIn, 'every other key of config/default.yaml is the built-in default, and every built-in default is in it')
  const dir = t.testdir({ 'partial.yaml': 'host: 127.0.0.1\n' })
  t.strictSame(loadConfig({ file: `${dir}/partial.yaml` }), loadConfig(), 'a config file that leaves keys out gets the built-in defaults')
})

t.test('sessions: a queue cap and an expiry by default, 0 turns either off, bad values are named', async (t) => {
  const config = loadConfig()
  t.equal(config.sessions.maxQueuedMessages, 10_000)
  t.equal(config.sessions.expirySeconds, 604_800)
  const off = resolveConfig({ sessions: { maxQueuedMessages: 0, expirySeconds: 0 } })
  t.same(off.sessions, { maxQueuedMessages: 0, expirySeconds: 0 })
  const err = t.throws(() => resolveConfig({ sessions: { maxQueuedMessages: -1, expirySeconds: 1.5 } })) as ConfigError
  t.match(err.message, /sessions\.maxQueuedMessages .*expected a number of messages \(integer >= 0, 0 = unlimited\), got -1/)
  t.match(err.message, /sessions\.expirySeconds .*expected seconds \(integer >= 0, 0 = never\), got 1\.5/)
  const shipped = loadConfig({ file: new URL('../config/default.yaml', import.meta.url).pathname })
  t.same(shipped.sessions, config.sessions, 'config/default.yaml shows the built-in defaults')
})

t.test('TCP_NODELAY: on for both MQTT listeners by default, off per listener, a non-boolean named', async (t) => {
  const config = loadConfig()
  t.equal(config.mqtt.noDelay, true)
  t.equal(config.mqtts.noDelay, true)
  t.equal(resolveConfig({ mqtt: { noDelay: false } }).mqtt.noDelay, false)
  const err = t.throws(() => resolveConfig({ mqtts: { noDelay: 'yes' as unknown as boolean } })) as ConfigError
  t.match(err.message, /mqtts\.noDelay .*expected true or false/)
})

t.test('Redis Cluster: redis.cluster or a redis+cluster:// URL; what cannot go with it is named', async (t) => {
  const seeds = resolveConfig({ redis: { cluster: ['10.0.0.7:6379', 'redis-b:6380'] } })
  t.same(seeds.redis?.cluster, ['10.0.0.7:6379', 'redis-b:6380'])
  const fromEnv = loadConfig({ env: { REDIS_URL: 'redis+cluster://user:pw@10.0.0.7:6379,10.0.0.8:6379' } })
  t.equal(fromEnv.redis?.url, 'redis+cluster://user:pw@10.0.0.7:6379,10.0.0.8:6379')
  const badNode = t.throws(() => resolveConfig({ redis: { cluster: ['10.0.0.7'] } })) as ConfigError
  t.match(badNode.message, /redis\.cluster\.0.*: expected host:port/)
  const badUrl = t.throws(() => loadConfig({ env: { REDIS_URL: 'redis+cluster://10.0.0.7' } })) as ConfigError
  t.match(badUrl.message, /redis\.url.*: expected .*redis\+cluster:\/\/host:port,host:port/)
  const nothing = t.throws(() => resolveConfig({ redis: {} })) as ConfigError
  t.match(nothing.message, /redis\.url.*: expected a redis:\/\/ URL, or redis\.cluster/)
  const conflicts = t.throws(() => resolveConfig({ redis: { url: 'redis+cluster://a:1', cluster: ['b:2'], emitter: 'mqemitter-redis', sentinel: { name: 'm', nodes: ['c:3'] } } })) as ConfigError
  t.match(conflicts.message, /redis\.cluster.*: expected either redis\.cluster or a redis\+cluster:\/\/ URL/)
  t.match(conflicts.message, /redis\.emitter.*: expected "routed" on a Redis Cluster/)
  t.match(conflicts.message, /redis\.sentinel.*: expected no sentinel with a Redis Cluster/)
})

t.test('webhooks and the authorization hook: off by default, bad values named, secrets not echoed', async (t) => {
  const config = resolveConfig({})
  t.same(config.webhooks.endpoints, [], 'no endpoint by default')
  t.equal(config.authorizationHook.url, '', 'no hook by default')
  const endpoint = { name: 'app', url: 'https://u:pa55word@app.example.com/events', events: ['message.published'] }
  const noSecret = t.throws(() => resolveConfig({ webhooks: { endpoints: [endpoint] } } as never)) as ConfigError
  t.match(noSecret.message, /webhooks\.endpoints\.0\.secret .*expected a secret or secretEnv/)
  t.notMatch(noSecret.message, /pa55word/, 'the URL (it may carry a password) is not printed')
  const badEvent = t.throws(() => resolveConfig({ webhooks: { endpoints: [{ ...endpoint, secret: 'x'.repeat(16), events: ['message.sent'] }] } } as never)) as ConfigError
  t.match(badEvent.message, /webhooks\.endpoints\.0\.events\.0 .*expected one of client\.connected/)
  const twice = t.throws(() => resolveConfig({ webhooks: { endpoints: [{ ...endpoint, secret: 'x'.repeat(16) }, { ...endpoint, secret: 'y'.repeat(16) }] } } as never)) as ConfigError
  t.match(twice.message, /webhooks\.endpoints\.1\.name .*no other endpoint has/)
  const shortSecret = t.throws(() => resolveConfig({ webhooks: { endpoints: [{ ...endpoint, secret: 'hunter2' }] } } as never)) as ConfigError
  t.notMatch(shortSecret.message, /hunter2/, 'a short secret is not echoed')
  const hook = t.throws(() => resolveConfig({ authorizationHook: { url: 'https://app.example.com/authz' } })) as ConfigError
  t.match(hook.message, /authorizationHook\.url .*: expected at least one of connect, subscribe, publish .*got <redacted>/)
  const failure = t.throws(() => resolveConfig({ authorizationHook: { onFailure: 'maybe' as never } })) as ConfigError
  t.match(failure.message, /authorizationHook\.onFailure .*expected "deny" or "allow"/)
})

t.test('the test-only route change delay: off by default, set by its environment variable, a bad value named', async (t) => {
  t.equal(loadConfig().testOnly.routeChangeDelayMs, 0)
  t.equal(loadConfig({ env: { REALTIME_BROKER_TEST_ROUTE_CHANGE_DELAY_MS: '1500' } }).testOnly.routeChangeDelayMs, 1500)
  for (const bad of ['soon', '-1', '1.5']) {
    const err = t.throws(() => loadConfig({ env: { REALTIME_BROKER_TEST_ROUTE_CHANGE_DELAY_MS: bad } })) as ConfigError
    t.match(err.message, new RegExp(`testOnly\\.routeChangeDelayMs \\(from environment variable REALTIME_BROKER_TEST_ROUTE_CHANGE_DELAY_MS\\): expected milliseconds \\(integer 0-60000, 0 = off; test-only\\), got "?${bad.replace('.', '\\.')}"?`), `${bad} is refused, naming the variable`)
  }
})
