// The wiring, in one place above the three concerns (broker/, bridge/, acl/): Aedes with its
// persistence and emitter, the policies as hooks, one listener per transport and the HTTP
// routes. Returns a handle with the bound addresses and an async close().
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, Server as HttpServer } from 'node:http'
import { isIPv6 } from 'node:net'
import type { Server, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Aedes, type Client } from 'aedes'
import { createAuthenticator } from './acl/authenticate.js'
import { JwtVerifier } from './acl/jwt.js'
import { PublishRateLimiter } from './acl/rate-limit.js'
import { addAdminRoutes } from './bridge/admin.js'
import { addDevTokenRoute } from './bridge/dev-token.js'
import { addHealthRoutes } from './bridge/health.js'
import { addHttpPublishRoute } from './bridge/http-publish.js'
import { addMetricsRoute } from './bridge/metrics.js'
import { addSseRoute } from './bridge/sse.js'
import { bearerToken } from './bridge/bearer.js'
import { createHttpListener, requestTarget, type Routes } from './bridge/http-server.js'
import { addStaticRoutes, webRoot } from './bridge/static.js'
import { attachWebSocketBridge } from './bridge/websocket.js'
import { ConfigError, resolveConfig, type BrokerConfig, type ConfigInput } from './broker/config/config.js'
import { QueueCatchUp } from './broker/sessions/queue-catch-up.js'
import { authPacketEvent, capClientOutput, GuardedConnection, guardSocket, ProtocolViolation, SlowConsumer } from './broker/protocol/guarded-connection.js'
import { jwtAuthenticationMethod } from './broker/protocol/auth-packet.js'
import { clientById, clientOfConnection, clusterSafeSessionTimers, connectedClients, forgetConnectPacket, interceptClientPublishes, interceptPublishes, numberMessagesFrom, sessionPersistence } from './broker/aedes-adapter.js'
import { ClientRegistry } from './broker/client-registry.js'
import { createPolicies, PublishRefused } from './broker/hooks.js'
import { ClientIdOwnership } from './broker/sessions/client-id-owner.js'
import { closeServer, listen, type BoundAddress } from './broker/listeners/listen.js'
import { createTcpListener } from './broker/listeners/tcp.js'
import { createTlsListener } from './broker/listeners/tls.js'
import { createLogger, type Logger } from './broker/observability/logger.js'
import { assertDependenciesPatched } from './broker/process/patched-dependencies.js'
import { connectThrottleEvents, createConnectGate, throttleConnects } from './broker/process/connect-gate.js'
import { reportOpenFilesLimit } from './broker/process/open-files.js'
import { BrokerMetrics } from './broker/observability/metrics.js'
import { DeliveryLatency } from './broker/observability/delivery-latency.js'
import { Presence, memoryPresenceStore, presencePrefix, redisPresenceStore, type PresenceState } from './broker/presence/presence.js'
import { RetainedCaps } from './broker/storage/retained-quota.js'
import { SessionExpiry } from './broker/sessions/session-expiry.js'
import { capSessionQueues } from './broker/sessions/session-queue-cap.js'
import { createStorage, type Storage } from './broker/storage/storage.js'
import { createSharedEmitter } from './broker/shared/shared-emitter.js'
import { createHistory } from './broker/history/history.js'
import { RecordedMessage } from './broker/history/history-recorder.js'
import { addHistoryRoute, historyJson } from './bridge/history.js'
import { handleHistoryRequest } from './broker/history/history-requests.js'
import { publishedHook, wireWebhookEvents } from './broker/webhooks/broker-events.js'
import { HttpHookDecider } from './broker/authorization-hook/http-hook.js'
import { listenForRevocations, publishRevocation } from './broker/authorization-hook/revocation.js'
import { createWebhooks, type Webhooks } from './broker/webhooks/webhooks.js'
import { drainClients } from './broker/process/drain.js'
import { AdminService } from './broker/admin/admin-service.js'

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss'

export interface BrokerAddresses {
  mqtt: BoundAddress
  mqtts?: BoundAddress
  http: BoundAddress
}

export interface BrokerHandle {
  readonly aedes: Aedes
  readonly config: BrokerConfig
  readonly logger: Logger
  readonly nodeId: string
  readonly addresses: BrokerAddresses
  /** Stops accepting, drains and disconnects every client, closes storage; bounded in time. */
  close: () => Promise<void>
}

export interface CreateBrokerOptions {
  logger?: Logger
  /** Print one readable line per listener (the CLI does; embedders usually don't). */
  announce?: (line: string) => void
}

export async function createBroker (input: ConfigInput | BrokerConfig = {}, options: CreateBrokerOptions = {}): Promise<BrokerHandle> {
  assertDependenciesPatched()
  const config = resolveConfig(input as ConfigInput)
  const nodeId = config.nodeId === '' ? randomUUID() : config.nodeId
  const logger = options.logger ?? createLogger(config.log.level, nodeId)
  const jwt = createJwtVerifier(config)
  const anonymous = config.auth.anonymous === 'auto' ? jwt === null : config.auth.anonymous
  warnAboutAccess(config, anonymous, jwt !== null, logger)
  if (config.testOnly.routeChangeDelayMs > 0) {
    logger.warn({ event: 'config.test-only', key: 'testOnly.routeChangeDelayMs', value: config.testOnly.routeChangeDelayMs }, 'a test-only setting is on: route changes from other nodes are applied late, widening the route gap (never set it outside tests)')
  }
  reportOpenFilesLimit(logger)

  // the sources are read at scrape time, once storage exists
  const connectGate = createConnectGate(config.limits)
  const metrics = new BrokerMetrics(nodeId, {
    retainedCount: () => storage.retainedCount(),
    redisState: () => storage.redisState(),
    sharedGroups: () => sharedSubscriptions.summary(),
    ...(connectGate === null ? {} : { connectGate: () => connectGate.counts() })
  }, config.metrics.eventLoopMonitoringPrecisionMs)
  const storage = await createStorage(config, nodeId, logger, () => metrics.messageDropped('cluster_backpressure'))
  capSessionQueues(sessionPersistence(storage), {
    max: config.sessions.maxQueuedMessages,
    lengths: storage.queueLengths,
    onDrop: () => metrics.messageDropped('queue_full'),
    logger,
    // aedes-persistence-redis tolerates it through our patch
    tolerateUnstoredUpdates: storage.kind === 'memory'
  })
  const authenticator = createAuthenticator({ anonymous, jwt, username: config.auth.jwt?.username ?? 'empty-or-subject', acl: config.acl })
  const audit = logger.child({ audit: true })
  const retainedCaps = new RetainedCaps({ ledger: storage.retainedLedger, limits: config.limits, metrics, audit, logger })
  // one limiter per user, whatever the transport: MQTT and HTTP publishes take from it
  const publishRates = new PublishRateLimiter()
  const clients = new ClientRegistry(metrics)
  const history = createHistory(config.history, storage.redis, metrics.registry, logger)
  // null without endpoints: no event is ever built
  const webhooks = createWebhooks(config, storage.redis === null ? null : { client: storage.redis, keys: storage.redisKeys }, nodeId, metrics.registry, logger, process.env)
  const authorizationHook = config.authorizationHook.url === '' ? null : new HttpHookDecider(config.authorizationHook, metrics.registry, logger.child({ component: 'authz-hook' }), process.env)
  const policies = createPolicies({
    authenticator,
    acl: config.acl,
    onPublishDenied: config.acl.onPublishDenied,
    onLimitExceeded: config.acl.onLimitExceeded,
    expiryGraceS: config.auth.jwt?.expiryGraceS ?? 0,
    limits: config.limits,
    ownership: new ClientIdOwnership(storage.sessionStore, nodeId),
    publishRates,
    logger,
    audit,
    metrics,
    userConnections: (user) => presence.connections(user),
    retainedCaps,
    deliveryLatency: new DeliveryLatency(metrics, nodeId),
    ...(history === null ? {} : { historyRequest: (client, grants, packet) => handleHistoryRequest(aedes, history, logger, historyJson, client, grants, packet) }),
    authorizationHook
  }, clients)
  // shared subscriptions' groups, around the storage's emitter
  const sharedSubscriptions = await createSharedEmitter(storage, config, nodeId, logger)
  // the admin API's bans and drain refuse CONNECTs around the authentication policy
  const admin = new AdminService({ config, nodeId, storage, clients, metrics, audit, logger })
  await admin.start()
  // limits.maxConcurrentConnects: a CONNECT holds a turn from authentication until clientReady
  // a persistent session's messages routed before its new route reached every node (docs/cluster.md)
  const catchUp = storage.routes === undefined ? null : new QueueCatchUp(storage, storage.routes, storage.registry.timing.timeoutMs, { maxBytes: config.limits.maxClientOutputBytes, drainTimeoutMs: config.limits.drainTimeoutMs }, logger, (outcome) => metrics.routeCatchUp(outcome))
  const throttledConnects = connectGate === null ? null : throttleConnects(connectGate, policies.hooks.authenticate, connectThrottleEvents(connectGate, metrics, logger))
  const aedes = new Aedes({
    id: nodeId,
    persistence: storage.persistence,
    mq: sharedSubscriptions,
    // Aedes' own $SYS heartbeat decides when it publishes the wills of a dead node's clients
    // (silent for 3 of its beats): aligned with the node registry's timeout (docs/cluster.md)
    heartbeatInterval: Math.round(storage.registry.timing.timeoutMs / 3),
    concurrency: config.limits.concurrency,
    queueLimit: config.limits.queueLimit,
    connectTimeout: config.limits.connectTimeoutMs,
    drainTimeout: config.limits.drainTimeoutMs,
    keepaliveLimit: config.limits.keepaliveLimitS,
    maxInflightInbound: config.limits.maxInflightInbound,
    // MQTT 5, told to each v5 client in its CONNACK: the inbound window (Receive Maximum), the
    // largest packet the guard lets through, the topic aliases it may set, and the longest
    // Session Expiry Interval granted (a longer one is lowered and the CONNACK says so)
    receiveMaximum: Math.min(config.limits.maxInflightInbound, 65_535),
    maximumPacketSize: config.limits.maxPacketSize,
    topicAliasMaximum: config.limits.topicAliasMaximum,
    outboundTopicAliases: config.limits.outboundTopicAliases,
    // a client's Receive Maximum window full: its QoS 1/2 messages wait, as many as a session
    // may hold queued
    maxWindowBacklog: config.sessions.maxQueuedMessages === 0 ? 65_535 : config.sessions.maxQueuedMessages,
    sessionExpiryIntervalLimit: config.sessions.expirySeconds,
    // MQTT 5 enhanced authentication: a token as the JWT method's Authentication Data
    authenticationMethods: config.auth.jwt === undefined ? [] : [jwtAuthenticationMethod],
    // Client ids are bounded by the frame guard (MQTT 3.1: 1 to 23 characters) and the
    // authenticate hook (limits.maxClientIdLength); Aedes' own count (UTF-16 units, 3.1 only) is off.
    maxClientsIdLength: Infinity,
    maxTopicLevels: config.limits.maxTopicLevels,
    // message webhooks: a message's event is in the outbox before its PUBACK
    ...(webhooks?.wants('message.published') === true ? { published: publishedHook(webhooks, clients) } : {}),
    ...policies.hooks,
    ...(catchUp === null ? {} : { authorizeSubscribe: catchUp.authorizing(policies.hooks.authorizeSubscribe) }),
    // bans and drain first, then limits.maxConcurrentConnects' turn, then the authentication policy
    authenticate: admin.admitting(throttledConnects?.authenticate ?? policies.hooks.authenticate)
  })
  // above any number a previous run of this node id gave a message (≤ 1,000 a millisecond on average)
  numberMessagesFrom(aedes, Date.now() * 1000)
  await aedes.listen()
  if (throttledConnects !== null) aedes.on('clientReady', throttledConnects.connected)
  catchUp?.attach(aedes)
  // history topics: stored and numbered before delivery; wrapped by the policies' step below, so a dropped publish is never stored
  if (history !== null) interceptPublishes(aedes, (packet) => history.recorder.wants(packet), RecordedMessage, (held) => history.recorder.record(held))
  interceptClientPublishes(aedes, policies.acceptPublish)
  if (webhooks !== null) wireWebhookEvents(webhooks, aedes, clients, metrics)
  if (authorizationHook !== null) await listenForRevocations(aedes, (user) => authorizationHook.revoke(user), clients, audit)
  // The cluster took this node for dead: its clients' wills are out and their live deliveries
  // were not routed here. Closing them makes them reconnect and resume their sessions (on any
  // node), queued messages included, instead of staying connected to a view that went stale.
  storage.registry.on('retired', () => {
    const held = connectedClients(aedes)
    logger.warn({ event: 'cluster.retired', clients: held.length }, 'closing every client connection so that they resume their sessions')
    for (const client of held) client.close()
  })
  const expiry = new SessionExpiry({
    store: storage.sessionStore,
    persistence: sessionPersistence(storage),
    maxLifetimeMs: config.sessions.expirySeconds * 1000,
    nodeId,
    isConnectedHere: (clientId) => clientById(aedes, clientId) !== undefined,
    onExpired: (clientId) => {
      metrics.sessionExpired()
      webhooks?.emit('session.expired', { clientId })
    },
    logger
  })
  admin.attach(aedes, expiry)
  clusterSafeSessionTimers(aedes, (clientId) => storage.sessionStore.isHeld(clientId), (err) => {
    logger.warn({ event: 'will.failed', reason: err.message }, 'a delayed will could not be published')
  })
  // Presence counts every user's connections (for the per-user connection limit) and publishes
  // their states when presence is on.
  const presence = createPresence(config, storage, aedes, nodeId, logger, webhooks)
  // A dead node, on the one node that claimed its death: its sessions go offline, its users are recounted.
  storage.registry.on('died', async (node) => {
    await expiry.nodeDied(node).then(
      () => logger.info({ event: 'session.node-lost', node }, 'sessions held on a dead node are offline from now'),
      (err: Error) => logger.warn({ event: 'session.node-lost-failed', node, reason: err.message }, 'could not take the sessions of a dead node offline'))
  })
  storage.registry.on('died', (node) => presence.nodeDied(node))
  aedes.on('client', (client) => expiry.connected(client))
  // Counted once its CONNACK is out, not at clientReady: Aedes emits that only after reading the
  // session's offline queue (a Redis round trip with the Redis persistence), and a client that
  // disconnected right after its CONNACK was then forgotten as never ready: it was never
  // counted, and its user never seen online nor offline (no presence state, no lastSeen).
  aedes.on('connackSent', (connack, client) => {
    forgetConnectPacket(client)
    // an MQTT 5 CONNACK carries a reason code, a 3.1.1 one a return code
    if ((connack.reasonCode ?? connack.returnCode) !== 0) return
    const state = clients.ready(client)
    if (state !== undefined && state.identity.user !== null) presence.connected(state.identity.user)
    if (state !== undefined) webhooks?.emit('client.connected', { clientId: client.id, user: state.identity.user, transport: state.connection.transport, address: state.connection.remote ?? null, protocolVersion: client.version })
  })
  aedes.on('clientDisconnect', (client) => {
    expiry.disconnected(client)
    sharedSubscriptions.clientClosed(client)
    const state = clients.forget(client, clientById(aedes, client.id), 'client')
    if (state !== undefined && state.identity.user !== null) presence.disconnected(state.identity.user)
    if (state !== undefined) webhooks?.emit('client.disconnected', { clientId: client.id, user: state.identity.user, reason: state.closeReason })
  })
  // [MQTT-3.1.2-25] a message larger than the client's Maximum Packet Size is not sent to it
  aedes.on('publishTooLarge', () => metrics.messageDropped('too_large_for_client'))
  aedes.on('keepaliveTimeout', (client) => clients.noteCloseReason(client, 'keepalive_timeout'))
  aedes.on('unsubscribe', (topics, client) => clients.forgetSubscriptions(client, topics))
  aedes.on('clientError', (client, err) => {
    // an MQTT 5 PUBLISH refused with a reason code: answered, the connection stays (hooks.ts)
    if (err instanceof PublishRefused) return
    if (err instanceof ProtocolViolation) return noteProtocolViolation(client, err)
    logger.info({ event: 'client.error', clientId: client.id, reason: err.message }, 'client connection closed on error')
    // Aedes' drainTimeout, or over limits.maxClientOutputBytes for as long: the client stopped
    // reading, what it was sent is lost to it
    if (err.message === 'drain timeout' || err instanceof SlowConsumer) {
      metrics.messageDropped('slow_consumer')
      clients.noteCloseReason(client, 'slow_consumer')
    } else {
      clients.noteCloseReason(client, 'error')
    }
  })
  aedes.on('connectionError', (client, err) => {
    if (err instanceof ProtocolViolation) return noteProtocolViolation(client, err)
    logger.info({ event: 'connection.error', clientId: client.id, reason: err.message }, 'connection closed before CONNECT completed')
    if (err.message === 'Client queue limit reached') metrics.messageDropped('queue_limit')
  })

  const outputLimits = { maxBytes: config.limits.maxClientOutputBytes, drainTimeoutMs: config.limits.drainTimeoutMs }
  const accept = (transport: Transport) => (stream: Duplex, req?: IncomingMessage): void => {
    const remote = req?.socket.remoteAddress ?? (stream as { remoteAddress?: string }).remoteAddress
    const guarded = transport === 'ws'
      ? new GuardedConnection(stream, config.limits.maxPacketSize, outputLimits)
      : guardSocket(stream as Socket, config.limits.maxPacketSize, outputLimits) // the TCP and TLS listeners hand over sockets
    const upgradeToken = req === undefined ? undefined : bearerToken(req, requestTarget(req), true)
    clients.registerConnection(guarded, { transport, remote, upgradeToken })
    const client = aedes.handle(guarded, req)
    capClientOutput(client, countSlowConsumerDrop)
    guarded.on(authPacketEvent, reauthenticateClient)
  }
  // the listeners of every connection, shared (`this` is the connection): no closures per connection
  const countSlowConsumerDrop = (): void => metrics.messageDropped('slow_consumer')
  function reauthenticateClient (this: Duplex, packet: Buffer): void {
    policies.reauthenticate(clientOfConnection(this), packet)
  }
  // the guard closed the connection: its error reaches Aedes' client, which reports it here
  // (an 'error' listener of each connection was a second one, and ran after clientError had
  // already noted the disconnect as an 'error')
  function noteProtocolViolation (client: Client, err: ProtocolViolation): void {
    const { transport, remote } = clients.connectionOf(client)
    logger.warn({ event: 'protocol.violation', transport, remote, reason: err.message }, 'connection closed: protocol violation')
    clients.noteCloseReason(client, 'protocol_violation')
  }

  const servers: Array<{ name: string, server: Server }> = []
  let ready = false
  try {
    const tcp = createTcpListener(config.mqtt.noDelay, accept('tcp'))
    servers.push({ name: 'mqtt', server: tcp })
    const mqtt = await listen(tcp, config.host, config.mqtt.port)
    announce(options, logger, 'MQTT over TCP', `mqtt://${hostPort(mqtt)}`)

    let mqtts: BoundAddress | undefined
    if (config.mqtts.tls !== undefined) {
      const tls = createTlsListener(config.mqtts.tls, config.mqtts.noDelay, accept('tls'))
      servers.push({ name: 'mqtts', server: tls })
      mqtts = await listen(tls, config.host, config.mqtts.port)
      announce(options, logger, 'MQTT over TLS', `mqtts://${hostPort(mqtts)}`)
    }

    const routes: Routes = new Map()
    addMetricsRoute(routes, metrics)
    addAdminRoutes(routes, { aedes, nodeId, clients, authenticator, audit, cluster: admin.cluster, trail: admin.trail, sessions: admin.sessions, retained: admin.retained, sharedGroups: () => sharedSubscriptions.summary(), webhooks, revoke: authorizationHook === null ? null : async (revocation) => await publishRevocation(aedes, revocation) })
    addHttpPublishRoute(routes, { aedes, authenticator: admin.unlessBanned(authenticator), acl: config.acl, limits: config.limits, publishRates, retainedCaps, metrics, audit })
    addSseRoute(routes, {
      aedes,
      retained: (filters) => storage.persistence.createRetainedStreamCombi(filters),
      authenticator: admin.unlessBanned(authenticator),
      acl: config.acl,
      metrics,
      audit,
      options: config.http.sse,
      ...(history === null ? {} : { history })
    })
    if (history !== null) addHistoryRoute(routes, { history, authenticator, acl: config.acl, audit, metrics })
    addHealthRoutes(routes, { checks: (): Record<string, boolean> => ({ ...(storage.kind === 'redis' ? { listeners: ready, redis: storage.healthy() } : { listeners: ready }), ...(admin.draining ? { drained: false } : {}) }) })
    if (config.http.demos || config.http.console) addStaticRoutes(routes, logger, webRoot(), { demos: config.http.demos, console: config.http.console })
    if (config.http.devTokens) addDevTokenRoute(routes, { jwt: config.auth.jwt, env: process.env, logger })
    const httpServer: HttpServer = createHttpListener(routes, { tls: config.http.tls, logger, corsOrigins: config.http.corsOrigins })
    servers.push({ name: 'http', server: httpServer })
    const secureWeb = config.http.tls !== undefined
    const wss = attachWebSocketBridge(httpServer, {
      path: config.http.websocketPath,
      maxFrameSize: config.http.maxWebSocketFrame,
      onConnection: (stream, req) => accept(secureWeb ? 'wss' : 'ws')(stream, req),
      onRejected: (reason, req) => logger.info({ event: 'websocket.rejected', remote: req.socket.remoteAddress, reason }, 'WebSocket upgrade refused'),
      onError: (err, req) => logger.error({ err, event: 'websocket.failed', remote: req.socket.remoteAddress }, 'WebSocket upgrade failed')
    })
    const http = await listen(httpServer, config.host, config.http.port)
    const web = secureWeb ? 'https' : 'http'
    announce(options, logger, `MQTT over WebSocket (${secureWeb ? 'wss' : 'ws'})`, `${secureWeb ? 'wss' : 'ws'}://${hostPort(http)}${config.http.websocketPath}`)
    announce(options, logger, 'HTTP (health)', `${web}://${hostPort(http)}/healthz`)
    // a browsable address: a wildcard bind is reachable on loopback
    const pages = `${web}://${hostPort({ ...http, host: http.host === '0.0.0.0' || http.host === '::' ? 'localhost' : http.host })}/`
    if (config.http.demos) {
      options.announce?.(`Demos at ${pages}`)
      logger.info({ event: 'demos.up', url: pages }, 'demo pages served')
    }
    webhooks?.start()
    if (config.http.console) options.announce?.(`Console at ${pages}console`)
    ready = true

    let closing: Promise<void> | null = null
    const close = (): Promise<void> => {
      closing ??= (async () => {
        ready = false
        logger.info({ event: 'shutdown.start' }, 'shutting down')
        const stopped = Promise.all(servers.map(({ server }) => closeServer(server)))
        await drainClients(aedes, clients, config.shutdown.drainMs)
        for (const client of wss.clients) client.terminate()
        // publish the presence changes of the clients just disconnected while Aedes still runs
        await until(() => aedes.connectedClients === 0, 1000)
        await bounded(presence.close(), config.shutdown.timeoutMs)
        // the sessions of the clients just disconnected are recorded offline before storage closes
        await bounded(expiry.close(), config.shutdown.timeoutMs)
        // what the endpoints have not acknowledged stays in the outbox (Redis) for the next sender
        await bounded(webhooks?.close() ?? Promise.resolve(), config.shutdown.timeoutMs)
        await bounded(admin.close(), config.shutdown.timeoutMs)
        await bounded(new Promise<void>((resolve) => aedes.close(() => resolve())), config.shutdown.timeoutMs - config.shutdown.drainMs)
        httpServer.closeAllConnections()
        await bounded(stopped, config.shutdown.timeoutMs)
        await bounded(storage.close(), config.shutdown.timeoutMs)
        logger.info({ event: 'shutdown.done' }, 'broker closed')
      })()
      return closing
    }

    return {
      aedes,
      config,
      logger,
      nodeId,
      addresses: { mqtt, ...(mqtts === undefined ? {} : { mqtts }), http },
      close
    }
  } catch (err) {
    await webhooks?.close()
    await admin.close()
    await expiry.close()
    await presence.close()
    await Promise.all(servers.map(({ server }) => closeServer(server)))
    await new Promise<void>((resolve) => aedes.close(() => resolve()))
    await storage.close()
    throw err
  }
}

function announce (options: CreateBrokerOptions, logger: Logger, what: string, url: string): void {
  options.announce?.(`${what} listening on ${url}`)
  logger.info({ event: 'listener.up', listener: what, url }, 'listening')
}

function hostPort ({ host, port }: BoundAddress): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

function createPresence (config: BrokerConfig, storage: Storage, aedes: Aedes, nodeId: string, logger: Logger, webhooks: Webhooks | null): Presence {
  const store = storage.redis === null ? memoryPresenceStore() : redisPresenceStore(storage.redis, nodeId, storage.redisKeys)
  const publish = (user: string, state: PresenceState | null): Promise<void> => new Promise((resolve, reject) => {
    if (state !== null) webhooks?.emit(state.online ? 'presence.online' : 'presence.offline', { ...state })
    aedes.publish({
      cmd: 'publish',
      topic: presencePrefix + user,
      // an empty retained payload clears the state [MQTT-3.3.1-10]
      payload: state === null ? Buffer.alloc(0) : Buffer.from(JSON.stringify(state)),
      qos: 1,
      retain: true,
      dup: false
    }, (err) => { if (err === undefined || err === null) resolve(); else reject(err) })
  })
  return new Presence(store, config.presence.enabled ? publish : null, logger, {
    sweepIntervalMs: config.presence.heartbeatMs,
    minUpdateIntervalMs: config.presence.minUpdateIntervalMs,
    retainedExpiryMs: config.presence.retainedExpirySeconds * 1000
  })
}

function createJwtVerifier (config: BrokerConfig): JwtVerifier | null {
  const jwt = config.auth.jwt
  if (jwt === undefined || (jwt.secret === undefined && jwt.keys.length === 0)) return null
  try {
    return new JwtVerifier(jwt, process.env)
  } catch (err) {
    throw new ConfigError(`config: ${(err as Error).message}`)
  }
}

function warnAboutAccess (config: BrokerConfig, anonymous: boolean, jwt: boolean, logger: Logger): void {
  if (!anonymous && !jwt) {
    logger.warn({ event: 'config.no-auth' }, 'no authentication method is configured and anonymous access is off: every client will be refused')
  }
  if (anonymous) {
    const loopback = config.host === 'localhost' || config.host.startsWith('127.') || config.host === '::1'
    logger.warn({ event: 'config.anonymous', host: config.host },
      loopback
        ? 'anonymous clients are accepted (auth.anonymous); fine for development on this machine, configure JWT before exposing the broker'
        : 'anonymous clients are accepted on a non-loopback address: anyone who can reach this host can read and write every topic')
  }
}

/** Resolves once `condition` holds (polled), or after `ms` at the latest. */
async function until (condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
}

/** Waits for `work`, but no longer than `ms`. */
function bounded (work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    work.finally(() => {
      clearTimeout(timer)
      resolve()
    })
  })
}
