// Every built-in default of the broker, in one table (as Aedes keeps its `defaultOptions`).
// The config file, environment variables and CLI flags override these, in that order.
import type { ShareStrategy } from '../shared/dispatch-strategy.js'

export const defaultOptions = {
  // Loopback only, like Mosquitto 2.0 without a config: the quick start must not expose an
  // anonymous broker to the network. Set HOST=0.0.0.0 (or `host:`) to listen on all interfaces.
  host: '127.0.0.1',
  nodeId: '',
  // TCP_NODELAY on accepted sockets. Off, Nagle holds a small write until the previous segment
  // is acknowledged, and a peer with nothing to send back delays that ACK (up to 40 ms): stalls
  // on request/response flows such as a PUBACK. Nagle did gain about 30% on one-subscriber
  // QoS 0 fan-in floods (docs/performance.md), so ingest-only deployments may turn it off.
  mqtt: {
    port: 1883,
    noDelay: true
  },
  mqtts: {
    port: 8883,
    noDelay: true
  },
  http: {
    port: 8080,
    websocketPath: '/mqtt',
    // WebSocket frames above this are refused by `ws` before they are buffered whole.
    maxWebSocketFrame: 1024 * 1024 + 16,
    // Server-Sent Events: a comment line this often keeps proxies from closing idle
    // streams; a reader that falls this many bytes behind is disconnected.
    sse: {
      heartbeatMs: 15_000,
      maxBufferedBytes: 1024 * 1024,
      // Open streams per user (anonymous: per remote address), and on this node. A stream can
      // hold maxBufferedBytes for a reader that stopped: 1,000 bound that to about 1 GiB. Six
      // streams are all a browser opens to one origin over HTTP/1.1; 8 leave room for a second
      // device.
      maxStreamsPerUser: 8,
      maxStreams: 1000
    },
    demos: true,
    // The operators' web console at /console (signs in with an admin token).
    console: true,
    // Never on by default: it hands out tokens to anyone who can reach the port.
    devTokens: false,
    // Origins (scheme://host[:port]) whose pages may load /sdk/realtime.js and call the HTTP
    // APIs (CORS); none by default: same-origin only.
    corsOrigins: [] as string[]
  },
  limits: {
    // MQTT allows 256 MiB; EMQX defaults to 1 MiB. Larger packets close the connection.
    maxPacketSize: 1024 * 1024,
    // Longer than the 23 the spec obliges a server to accept [MQTT-3.1.3-5]: UUIDs are 36.
    maxClientIdLength: 128,
    maxTopicLength: 1024,
    maxTopicLevels: 32,
    // Aedes: packets queued per client before CONNECT is processed.
    queueLimit: 42,
    // Aedes: concurrent deliveries in its emitter.
    concurrency: 100,
    // Aedes: a client that sends no CONNECT within this time is disconnected.
    connectTimeoutMs: 10_000,
    // Aedes: a client that does not drain its socket within this time is disconnected.
    drainTimeoutMs: 30_000,
    // Unsent output per client (bytes written, not yet taken by the kernel). Beyond it a live
    // QoS 0 message to the client is dropped (counted as slow_consumer), a live QoS 1/2 one
    // ends its connection (a persistent session keeps it in its store), retained messages on
    // SUBSCRIBE wait; a client still over it drainTimeoutMs later is disconnected. Mosquitto's
    // max_queued_bytes and EMQX's queue bounds are the same idea; 1 MiB holds a max-size
    // packet or about a thousand 1 KiB ones.
    maxClientOutputBytes: 1024 * 1024,
    // Aedes: the largest keepalive a client may ask for, seconds; 0 = any.
    keepaliveLimitS: 0,
    // Aedes: inbound QoS 2 messages awaiting PUBREL per client; MQTT 5 clients are told it as
    // the Receive Maximum (at most 65,535) and get DISCONNECT 0x93 beyond it [MQTT-3.3.4-9].
    maxInflightInbound: 1000,
    // MQTT 5: topic aliases a client may set on its PUBLISHes (Topic Alias Maximum in CONNACK);
    // each is a topic name the broker keeps for the connection. Mosquitto allows 10; 0 = none.
    topicAliasMaximum: 16,
    // MQTT 5: topic aliases the broker sets on its PUBLISHes to a client that accepts them (up
    // to the client's Topic Alias Maximum), saving a mobile client the topic on every message
    // after the first. Off by default: 0 = none.
    outboundTopicAliases: 0,
    // Per authenticated user, for users whose roles set no `maxConnections`/`maxConnectRate`:
    // concurrent connections (cluster-wide with Redis) and new connections per second (per
    // node, one second of burst). More get CONNACK 5. Anonymous clients are not counted.
    maxConnectionsPerUser: 100,
    maxConnectRatePerUser: 10,
    // CONNECTs this node authenticates and resumes at once (per worker process): a reconnect
    // storm waits its turn instead of starting every session restore together. Over it a
    // CONNECT waits, at most maxQueuedConnects of them for at most connectQueueTimeoutMs;
    // beyond, CONNACK 3 server unavailable (MQTT 5: 0x89 server busy), counted. 0 = no cap.
    // 50 against 500, back to back, 10,000 sessions, one node of three killed: every session
    // back in 3.9 s instead of 6.0, live clients' p99 0.9 s instead of 4.2. 10 against 50, four
    // or five runs each (30,000 sessions, 10,000 back at once): live p90 61-93 ms against 74-107,
    // p99 median 192 ms against 238, for 1-3 s more to resume them all (docs/operations.md).
    maxConcurrentConnects: 10,
    maxQueuedConnects: 10_000,
    connectQueueTimeoutMs: 10_000,
    // While the event loop runs later than this (the longest delay of a 100 ms window), fewer
    // CONNECTs at once: halved each late window, grown back by a tenth of the cap below half of
    // it, at least one. The live clients' deliveries run on the same loop: they go first.
    // 0 = the fixed cap only.
    connectLoopDelayMs: 20,
    // Retained messages stored for clients, whole broker (cluster-wide with Redis): a retained
    // publish over it is still delivered live but not stored, as EMQX's
    // retainer.max_retained_messages. 0 = unlimited.
    maxRetainedMessages: 1_000_000,
    // Per authenticated user, for users whose roles set no `maxRetained`/`maxRetainedBytes`:
    // retained messages and their payload bytes (cluster-wide with Redis). 0 = unlimited.
    maxRetainedPerUser: 10_000,
    maxRetainedBytesPerUser: 10 * 1024 * 1024
  },
  auth: {
    // Secure by default: no anonymous clients unless a config says so. config/default.yaml
    // (what `npm start` uses) says 'auto': anonymous only while no JWT key is configured.
    anonymous: false as boolean | 'auto'
  },
  acl: {
    roles: {
      // Anonymous access is itself opt-in (auth.anonymous); once on, it reaches every topic
      // that does not start with $, like Mosquitto's allow_anonymous without an ACL file.
      anonymous: { pub: ['#'], sub: ['#'] },
      admin: { pub: ['#'], sub: ['#', '$SYS/#', '$presence/#'] }
    } as Record<string, { pub: string[], sub: string[] }>,
    users: {} as Record<string, { roles: string[] }>,
    // No role for authenticated users unless the config names one: deny by default.
    defaultRoles: [] as string[],
    onPublishDenied: 'disconnect' as 'disconnect' | 'drop',
    onLimitExceeded: 'drop' as 'disconnect' | 'drop'
  },
  // Broker processes on this machine (node:cluster); 'auto' = one per core. Needs Redis.
  workers: 1 as number | 'auto',
  cluster: {
    // The node registry's beat: a node silent for 3 beats is dead (presence.heartbeatMs and
    // presence.nodeTimeoutMs shorten both when shorter); the wills of its clients are published
    // by the others within about 4 beats.
    heartbeatIntervalMs: 5_000
  },
  presence: {
    // Retained `$presence/<user>` states for authenticated users.
    enabled: true,
    // How often retained states of users long offline are looked for. In a cluster, the node
    // registry beats at least this often and takes a node silent for nodeTimeoutMs (at most)
    // for dead: its users go offline (within nodeTimeoutMs + heartbeatMs).
    heartbeatMs: 5_000,
    nodeTimeoutMs: 15_000,
    // At most one published state per user per this period, cluster-wide; the last state
    // always follows (a trailing update). A connect/disconnect loop costs observers one
    // message a second. 0 = every change.
    minUpdateIntervalMs: 1_000,
    // The retained state of a user offline this long is cleared (a day: the `lastSeen` of
    // yesterday's users stays readable, abandoned user names do not pile up). 0 = never.
    retainedExpirySeconds: 86_400
  },
  sessions: {
    // QoS 1/2 messages a persistent session may hold (queued while offline, or sent and not
    // yet acknowledged); further ones are not stored for it, and counted. Mosquitto and EMQX
    // default to 1,000, sized for small devices; 10,000 lets an app be offline for hours at
    // a few messages a minute while bounding a session to about 10 MB at 1 KiB a message
    // (a million abandoned sessions can no longer fill Redis). 0 = unlimited.
    maxQueuedMessages: 10_000,
    // A persistent session whose client stays away this long is deleted (a week: a weekend
    // offline keeps its messages). 0 = never, as MQTT 3.1.1 itself would [MQTT-3.1.2-4].
    expirySeconds: 604_800
  },
  // `$share/<group>/<filter>` (docs/cluster.md, "Shared subscriptions")
  sharedSubscriptions: {
    // Which member of a group gets a message: round_robin (the publisher's node's own members
    // first), random (likewise), sticky (by publisher), hash_topic (by topic, keeps each
    // topic's order). EMQX defaults to round_robin too.
    strategy: 'round_robin' as ShareStrategy,
    // round_robin and random: the publisher's node serves its own members when it has any (no
    // Redis hop). Members are then even per node only when publishers are: false spreads every
    // node's messages over the whole group (fair whatever the publishers, a hop for most).
    preferLocal: true,
    // QoS 1/2 messages a group with no member left keeps for the next one (per node); more
    // are dropped and counted. QoS 0 messages never wait.
    maxWaitingPerGroup: 1_000
  },
  history: {
    // Topics whose messages are kept, numbered and readable after the fact (docs/history.md),
    // e.g. [{ filter: 'chat/rooms/+/messages', size: 200, ttlSeconds: 86400 }]. Off: none.
    topics: [] as Array<{ filter: string, size: number, ttlSeconds: number }>,
    // A publish on a history topic whose idempotency key was seen this recently on that topic
    // is acknowledged and not stored or delivered again (a retry after a lost PUBACK).
    idempotencyWindowSeconds: 120,
    // The most messages one history read returns (HTTP, MQTT 5 request, SDK recovery).
    maxReadLimit: 10_000
  },
  webhooks: {
    // HTTP endpoints told what happens on the broker (docs/webhooks.md): each with a name, a
    // url, a secret (or secretEnv) that signs its requests, the events it wants and, for
    // message.published, the topic filters. None by default: no event is built.
    endpoints: [] as Array<{ name: string, url: string, secret?: string, secretEnv?: string, events: string[], topics?: string[] }>,
    // Events per request, and how long the first event of a batch waits for more: while a
    // request is in flight events wait, and the next takes all that waits up to batchSize and
    // batchMaxBytes of body (1 MiB: the receiver must accept that much; Express' json() takes
    // 100 KB unless told more). 1,000 keeps 10,000 events/s to about 10 requests/s.
    batchSize: 1000,
    batchMaxBytes: 1_048_576,
    batchDelayMs: 100,
    // A request not answered 2xx within this is a failure, retried.
    timeoutMs: 5_000,
    // Retries of a failed batch wait from retryInitialMs, doubling up to retryMaxMs, jittered.
    retryInitialMs: 500,
    retryMaxMs: 60_000,
    // An event still undelivered this long after it happened goes to the dead letters (an
    // hour: a receiver's deploy or outage does not lose events), listed and replayed through
    // the admin API.
    deadLetterAfterMs: 3_600_000,
    // Events waiting per endpoint (memory, or the Redis outbox); more are dropped and counted,
    // so a receiver that is down costs bounded memory.
    maxPendingPerEndpoint: 100_000,
    maxDeadLetters: 100_000
  },
  authorizationHook: {
    // The app backend asked whether a user may connect, subscribe, publish (docs/auth.md):
    // on top of the JWT and role ACL, which still bound what it grants. Off while url is empty.
    url: '',
    connect: false,
    subscribe: false,
    publish: false,
    // An answer not back within this is a failure: onFailure decides (deny by default).
    timeoutMs: 1_000,
    onFailure: 'deny' as 'deny' | 'allow',
    // How long an answer is reused when it names no ttl of its own (seconds, per user, action
    // and topic): a chat at 2,000 messages/s does not make 2,000 calls/s.
    cacheTtlS: 60,
    maxCacheEntries: 100_000
  },
  admin: {
    // A node that does not answer another's admin request within this is reported unreachable
    // (the answer is partial) rather than holding the request.
    requestTimeoutMs: 2_000,
    // Admin actions kept in the audit trail (GET /api/v1/admin/audit), cluster-wide; every one
    // is also an audit log line.
    auditEntries: 1_000
  },
  shutdown: {
    // Graceful shutdown is bounded: after this the process exits even if clients linger.
    timeoutMs: 10_000,
    // Clients are disconnected spread over this period, so a rolling deploy does not send
    // them all to the other nodes at once. 0 = all at once.
    drainMs: 0
  },
  log: {
    level: 'info'
  },
  metrics: {
    // How often the event-loop-delay histogram behind realtime_broker_nodejs_eventloop_lag_*
    // wakes the process (prom-client's eventLoopMonitoringPrecision; its own default is 10 ms).
    // Each wake-up costs an idle worker CPU: at 10 ms, ~100 a second were most of a worker's
    // idle 1% of a core (docs/performance.md). The gauges report the intervals between
    // wake-ups, so they read about this value on an idle loop; a block shorter than it may not
    // show. 100 ms still sees every stall that matters to a client (alerts at 0.1 s or more).
    eventLoopMonitoringPrecisionMs: 100
  },
  // Test-only: never set outside tests. Route changes from other nodes are applied this much
  // later (ms), widening the window a new route takes to reach this node
  // (test/route-gap.test.ts sets it for a spawned node through the environment variable
  // REALTIME_BROKER_TEST_ROUTE_CHANGE_DELAY_MS). 0 = off.
  testOnly: {
    routeChangeDelayMs: 0
  }
} as const
