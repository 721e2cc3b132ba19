// The realtime client: one logical connection over MQTT.js that outlives network drops,
// broker restarts and token expiry. MQTT.js's own reconnect is off: this class reconnects with
// jittered backoff, a fresh token when needed, and subscribes again to everything the app
// subscribed to, since every connection starts a clean session. It speaks MQTT 5 where the
// broker does, else MQTT 3.1.1 (protocol.ts).
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import { backoffDelay, defaultBackoff, type BackoffOptions } from './backoff.js'
import { asMqttBinary, encodePayload } from './codec.js'
import { Emitter } from './emitter.js'
import { connectionRefused, describeReasonCode, publishRefused, RealtimeError, subscriptionRefused, type ConnectionRefusal } from './errors.js'
import { historyEntry, Recovery, type HistoryPage, type HistoryQuery, type RecoveryEvent } from './history.js'
import { OfflineQueue } from './offline-queue.js'
import { connectionEntryTopic, isTopicLevel } from './presence-topics.js'
import { jwtAuthenticationMethod, ProtocolChoice, refusesProtocolVersion, type ProtocolVersion } from './protocol.js'
import { reauthenticateWith, tokenBytes } from './reauth.js'
import { SubscriptionRegistry, type HandlerEntry, type MessageHandler, type MessageProperties, type QoS } from './subscriptions.js'
import { TokenKeeper, type TokenProvider } from './token.js'
import { isValidTopicFilter, isValidTopicName } from '../../../src/acl/topic-grammar.js'

/**
 * connecting: before the first connection; online: connected; reconnecting: lost it and
 * trying again; offline: the browser has no network, waiting for it; closed: close() was
 * called, or the broker refused a token that cannot be replaced.
 */
export type ConnectionState = 'connecting' | 'online' | 'reconnecting' | 'offline' | 'closed'

export interface StateChange {
  state: ConnectionState
  /** Failed attempts since the client was last online. */
  attempt: number
  /** Reconnecting or connecting: the wait before the next attempt, in ms. */
  retryInMs?: number
  /** Why the last connection ended, when known. */
  reason?: string
}

export interface RealtimeOptions {
  /** Default: ws(s)://<this page's host>/mqtt. */
  url?: string
  /** A JWT, or a function returning one (called again before each token expires). */
  token?: string | TokenProvider
  /** Who this client is for presence and typing when it has no token (anonymous brokers). */
  user?: string
  /** Default: random per client. */
  clientId?: string
  /**
   * Keep a retained `presence/<user>/<clientId>` entry while connected, removed by the last
   * will when the connection dies: presence for brokers that do not publish `$presence/<user>`.
   */
  announcePresence?: boolean
  keepaliveS?: number
  connectTimeoutMs?: number
  backoff?: Partial<BackoffOptions>
  /** Publishes kept while offline; past this, publish() rejects with code 'queue-full'. */
  offlineQueueSize?: number
  /**
   * 5: MQTT 5 only; 4: MQTT 3.1.1 only. Default: MQTT 5, and MQTT 3.1.1 from the first time
   * the broker refuses MQTT 5 on (CONNACK 0x01 or 0x84) for the rest of this client's life.
   */
  protocolVersion?: ProtocolVersion
  /** The broker's history endpoint. Default: http(s)://<the url's host>/api/v1/history. */
  historyUrl?: string
}

export interface PublishOptions {
  /** Default 1: the promise settles on the broker's PUBACK. */
  qos?: QoS
  retain?: boolean
  /** Send a string as plain text instead of JSON. Uint8Array data is always sent as is. */
  raw?: boolean
  /** Default true: while offline, queue it. false: reject at once (for ephemeral messages). */
  queue?: boolean
  /** MQTT 5 properties, e.g. responseTopic and correlationData for a request; an MQTT 3.1.1 connection does not carry them. */
  properties?: MessageProperties
}

export interface SubscribeOptions {
  /** Default 1. */
  qos?: QoS
  /** Hand the payload over as bytes instead of parsed JSON. */
  raw?: boolean
}

export type Unsubscribe = () => Promise<void>

interface PendingPublish {
  topic: string
  payload: string | Uint8Array
  qos: QoS
  retain: boolean
  properties: MessageProperties | undefined
  resolve: () => void
  reject: (err: RealtimeError) => void
  /** The connection it was last written to; null while queued. */
  sentOn: MqttClient | null
}

interface ClientEvents extends Record<string, unknown[]> {
  state: [StateChange]
  error: [RealtimeError]
  /** After each reconnect, or a gap, on a topic that keeps history: whether what was missed was handed over. */
  recovery: [RecoveryEvent]
}

type Timer = ReturnType<typeof setTimeout>

/** The page's globals the client reads: absent outside a browser, e.g. in Node, where tests run it too. */
const page = globalThis as {
  window?: Pick<EventTarget, 'addEventListener' | 'removeEventListener'>
  navigator?: { onLine?: boolean }
  location?: { protocol: string, host: string }
}

export class RealtimeClient extends Emitter<ClientEvents> {
  readonly clientId: string
  private currentState: StateChange = { state: 'connecting', attempt: 0 }
  private mqttClient: MqttClient | null = null
  /** A connection being closed to reconnect with a fresh token. */
  private retiring: MqttClient | null = null
  private readonly tokens: TokenKeeper
  private readonly protocol: ProtocolChoice
  private attempt = 0
  private everOnline = false
  /** announcePresence without a usable user name: said once, then ignored. */
  private presenceRefused = false
  private retryTimer: Timer | undefined
  private refreshTimer: Timer | undefined
  private readonly queue: OfflineQueue<PendingPublish>
  private readonly inflight = new Set<PendingPublish>()
  private readonly subscriptions = new SubscriptionRegistry()
  private readonly recovery: Recovery
  private readonly backoff: BackoffOptions
  private readonly url: string
  private readonly removeNetworkListeners: () => void

  constructor (private readonly options: RealtimeOptions = {}) {
    super()
    this.clientId = options.clientId ?? randomClientId()
    this.url = options.url ?? defaultUrl()
    this.backoff = { ...defaultBackoff, ...options.backoff }
    this.queue = new OfflineQueue(options.offlineQueueSize ?? 100)
    this.tokens = new TokenKeeper(options.token)
    this.protocol = new ProtocolChoice(options.protocolVersion)
    this.removeNetworkListeners = this.watchNetwork()
    this.recovery = new Recovery(
      async (topic, query) => await this.history(topic, query),
      (message) => this.subscriptions.dispatch(message, (err) => this.report(err as RealtimeError)),
      (event) => this.emit('recovery', event))
    void this.open()
  }

  get state (): ConnectionState {
    return this.currentState.state
  }

  /** The MQTT version of the current connection, or of the next attempt: 5, or 4 (3.1.1). */
  get protocolVersion (): ProtocolVersion {
    return this.protocol.version
  }

  /** The token's subject, else the `user` option; null for an anonymous client. */
  get user (): string | null {
    return this.tokens.subject ?? this.options.user ?? null
  }

  /** Resolves once online (at once if online now); rejects if the client is closed first. */
  whenOnline (): Promise<void> {
    if (this.state === 'online') return Promise.resolve()
    if (this.state === 'closed') return Promise.reject(new RealtimeError('closed', 'the client was closed'))
    return new Promise((resolve, reject) => {
      const off = this.on('state', ({ state }) => {
        if (state === 'online') resolve()
        else if (state === 'closed') reject(new RealtimeError('closed', 'the client was closed'))
        else return
        off()
      })
    })
  }

  /** Publishes `data` (JSON unless raw). Resolves on PUBACK for QoS 1/2, once written for QoS 0. */
  publish (topic: string, data: unknown, options: PublishOptions = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.state === 'closed') throw new RealtimeError('closed', 'the client was closed')
      if (!isValidTopicName(topic)) throw new RealtimeError('publish-failed', `cannot publish to "${topic}": a topic name is not empty and has no wildcards or NUL`)
      const { properties } = options
      // [MQTT-3.3.2-14] the Response Topic is a topic name
      if (properties?.responseTopic !== undefined && !isValidTopicName(properties.responseTopic)) throw new RealtimeError('publish-failed', `cannot publish to "${topic}": the response topic "${properties.responseTopic}" is not a topic name`)
      const payload = encodePayload(data, options.raw === true)
      const pending: PendingPublish = { topic, payload, qos: options.qos ?? 1, retain: options.retain ?? false, properties, resolve, reject, sentOn: null }
      if (this.state === 'online') this.send(pending)
      else if (options.queue === false) throw new RealtimeError('not-connected', `not connected: "${topic}" was not published`)
      else if (!this.queue.push(pending)) throw new RealtimeError('queue-full', `offline queue full (${this.queue.capacity} messages): "${topic}" was not published`)
    })
  }

  /**
   * Calls `handler` with each message on topics matching `filter`, parsed as JSON (or as bytes
   * with `{ raw: true }`). Resolves with the function that unsubscribes once the broker granted
   * the subscription; rejects with code 'subscription-refused' if it refused it. Subscriptions
   * made offline are sent on (re)connect; all are renewed after every reconnect.
   */
  subscribe<T = unknown>(filter: string, handler: MessageHandler<T>, options?: SubscribeOptions & { raw?: false }): Promise<Unsubscribe>
  subscribe (filter: string, handler: MessageHandler<Uint8Array>, options: SubscribeOptions & { raw: true }): Promise<Unsubscribe>
  async subscribe (filter: string, handler: MessageHandler<never>, options: SubscribeOptions = {}): Promise<Unsubscribe> {
    if (this.state === 'closed') throw new RealtimeError('closed', 'the client was closed')
    if (!isValidTopicFilter(filter)) throw new RealtimeError('subscription-refused', `"${filter}" is not a valid topic filter`)
    // The overloads tie a raw handler to bytes and a JSON handler to the app's declared type.
    const entry: HandlerEntry = options.raw === true
      ? { raw: true, handler: handler as MessageHandler<Uint8Array> }
      : { raw: false, handler: handler as MessageHandler<unknown> }
    const qos = options.qos ?? 1
    const { ready, needsSubscribe } = this.subscriptions.add(filter, entry, qos)
    if (needsSubscribe && this.state === 'online' && this.mqttClient !== null) this.sendSubscribe(this.mqttClient, [{ filter, qos }]).catch(() => {}) // the next connection subscribes again
    let unsubscribed: Promise<void> | null = null
    const unsubscribe = (): Promise<void> => {
      unsubscribed ??= this.subscriptions.remove(filter, entry) ? this.sendUnsubscribe(filter) : Promise.resolve()
      this.recovery.forget((topic) => this.subscriptions.wants(topic))
      return unsubscribed
    }
    await ready
    return unsubscribe
  }

  /**
   * Reads the history of a topic that keeps it (the broker's history.topics): the newest
   * `limit` messages, or those after `since`. For late joiners: subscribe first, then read, and
   * skip what the subscription already handed over (by offset, see positionOf).
   */
  async history (topic: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    if (!isValidTopicName(topic)) throw new RealtimeError('history', `cannot read the history of "${topic}": a topic name has no wildcards`)
    const search = new URLSearchParams({ topic, limit: String(query.limit ?? 100) })
    if (query.since !== undefined) search.set('since', String(query.since))
    if (query.epoch !== undefined) search.set('epoch', query.epoch)
    const token = await this.tokens.current()
    const res = await fetch(`${this.options.historyUrl ?? historyUrlOf(this.url)}?${search.toString()}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })
    const body = await res.json().catch(() => ({})) as { error?: string, epoch?: string, offset?: number, recovered?: boolean, messages?: Array<Parameters<typeof historyEntry>[0]> }
    if (!res.ok || body.messages === undefined) throw new RealtimeError('history', `history of "${topic}": ${body.error ?? `HTTP ${res.status}`}`)
    return { epoch: body.epoch ?? '', offset: body.offset ?? 0, ...(body.recovered === undefined ? {} : { recovered: body.recovered }), messages: body.messages.map(historyEntry) }
  }

  /** Leaves for good: queued publishes and pending subscriptions are rejected with code 'closed'. */
  close (): Promise<void> {
    return this.shutDown('closed by the app')
  }

  private async shutDown (reason: string): Promise<void> {
    if (this.state === 'closed') return
    this.setState({ state: 'closed', attempt: 0, reason })
    clearTimeout(this.retryTimer)
    clearTimeout(this.refreshTimer)
    this.removeNetworkListeners()
    const client = this.mqttClient
    this.mqttClient = null
    if (client?.connected === true) {
      const presence = this.presenceEntryTopic()
      // A polite DISCONNECT suppresses the last will, so remove the presence entry ourselves.
      if (presence !== null) client.publish(presence, '', { qos: 1, retain: true })
      await new Promise<void>((resolve) => {
        const forced = setTimeout(() => client.end(true, {}, () => resolve()), 2000)
        client.end(false, {}, () => { clearTimeout(forced); resolve() })
      })
    } else {
      client?.end(true)
    }
    const closed = new RealtimeError('closed', 'the client was closed')
    for (const pending of [...this.inflight, ...this.queue.drain()]) pending.reject(closed)
    this.inflight.clear()
    this.subscriptions.rejectAll(closed)
  }

  private async open (): Promise<void> {
    clearTimeout(this.retryTimer)
    if (this.state === 'closed' || this.mqttClient !== null) return
    let password: string | undefined
    try {
      password = await this.tokens.current()
    } catch (err) {
      this.report(err as RealtimeError)
      this.scheduleRetry('no token')
      return
    }
    // close() or the network listener may have acted while the token was being fetched.
    if (this.isClosed() || this.mqttClient !== null) return
    const version = this.protocol.version
    const options = this.connectOptions(password)
    const client = mqtt.connect(this.url, options)
    this.mqttClient = client
    let refusal: ConnectionRefusal | null = null
    let disconnectReason: number | undefined
    client.on('connect', () => this.onConnected(client))
    client.on('message', (topic, payload, packet) => {
      if (client !== this.mqttClient) return
      this.recovery.receive({ topic, payload, retained: packet.retain, qos: packet.qos, properties: packet.properties })
    })
    client.on('error', (err) => {
      // MQTT.js reports a refused CONNECT as an error carrying the CONNACK return code.
      const code = (err as { code?: unknown }).code
      if (typeof code === 'number' && code > 0 && !client.connected) refusal = connectionRefused(code, version)
    })
    // An MQTT 5 broker says why it ends a connection [MQTT-3.14.2-1].
    client.on('disconnect', (packet) => { disconnectReason = packet.reasonCode })
    client.on('close', () => {
      const sentAuthenticationData = options.properties?.authenticationMethod !== undefined
      this.onClosed(client, refusal, disconnectReason, sentAuthenticationData)
    })
  }

  private connectOptions (password: string | undefined): IClientOptions {
    const presence = this.presenceEntryTopic()
    // On MQTT 5 the token is Authentication Data under the method JWT: the client may then
    // send the next one on the live connection [MQTT-4.12.1-1]. Else it is the password.
    const credentials: IClientOptions = password === undefined
      ? {}
      : this.protocol.tokenAsAuthenticationData
        ? { username: this.tokens.subject ?? '', properties: { authenticationMethod: jwtAuthenticationMethod, authenticationData: asMqttBinary(tokenBytes(password)) } }
        : { username: this.tokens.subject ?? '', password }
    return {
      protocolVersion: this.protocol.version,
      // Clean Start, and on MQTT 5 a Session Expiry Interval of 0 (the default): the session
      // ends with the connection, as a 3.1.1 clean session does.
      clean: true,
      clientId: this.clientId,
      reconnectPeriod: 0,
      resubscribe: false,
      keepalive: this.options.keepaliveS ?? 30,
      connectTimeout: this.options.connectTimeoutMs ?? 10_000,
      // The token, and its subject as the user name.
      ...credentials,
      ...(presence === null ? {} : { will: { topic: presence, payload: '', qos: 1, retain: true } })
    }
  }

  private onConnected (client: MqttClient): void {
    if (client !== this.mqttClient) return
    this.attempt = 0
    this.everOnline = true
    this.setState({ state: 'online', attempt: 0 })
    const presence = this.presenceEntryTopic()
    if (presence !== null) client.publish(presence, JSON.stringify({ user: this.user, online: true, since: Date.now() }), { qos: 1, retain: true })
    const all = this.subscriptions.all()
    const subscribed = all.length > 0 ? this.sendSubscribe(client, all) : Promise.resolve()
    // what the topics with history missed while away, once subscribed again
    this.recovery.reconnected(subscribed, (topic) => this.subscriptions.wants(topic))
    this.flush()
    this.scheduleRefresh()
  }

  /** `connackRefusal`: the CONNACK refused the connection; `disconnectReason`: an MQTT 5 broker's DISCONNECT ended it. */
  private onClosed (client: MqttClient, connackRefusal: ConnectionRefusal | null, disconnectReason: number | undefined, sentAuthenticationData: boolean): void {
    // Publishes not acknowledged on that connection go out again, ahead of newer ones.
    const lost = [...this.inflight].filter((pending) => pending.sentOn === client)
    for (const pending of lost) {
      this.inflight.delete(pending)
      pending.sentOn = null
    }
    this.queue.requeue(lost)
    if (client === this.retiring) {
      this.retiring = null
      void this.open()
      return
    }
    if (client !== this.mqttClient) return
    this.mqttClient = null
    clearTimeout(this.refreshTimer)
    this.subscriptions.resetGrants()
    if (this.state === 'closed') return
    if (connackRefusal !== null && this.protocol.stepBack(connackRefusal.returnCode, sentAuthenticationData)) {
      // An older broker, not a failure: the other version or method at once, with no backoff.
      void this.open()
      return
    }
    const refusal = connackRefusal ?? tokenRefusedByDisconnect(disconnectReason)
    if (refusal !== null) {
      this.report(refusal)
      // A version the broker refuses stays refused (the app forced it, or 3.1.1 after MQTT 5).
      if (!this.tokens.renewable || (connackRefusal !== null && refusesProtocolVersion(connackRefusal.returnCode))) {
        // The same credentials would be refused again: stop rather than hammer the broker.
        void this.shutDown(refusal.message)
        return
      }
      this.tokens.discard()
    }
    const disconnected = disconnectReason === undefined ? null : `disconnected by the broker: ${describeReasonCode(disconnectReason)}`
    this.scheduleRetry(refusal?.message ?? disconnected ?? 'connection lost')
  }

  private scheduleRetry (reason: string): void {
    if (this.state === 'closed') return
    if (page.navigator?.onLine === false) {
      // The 'online' listener reconnects when the network is back.
      this.setState({ state: 'offline', attempt: this.attempt, reason })
      return
    }
    const retryInMs = backoffDelay(this.attempt, this.backoff)
    this.attempt += 1
    this.setState({ state: this.everOnline ? 'reconnecting' : 'connecting', attempt: this.attempt, retryInMs, reason })
    this.retryTimer = setTimeout(() => { void this.open() }, retryInMs)
  }

  private watchNetwork (): () => void {
    const target = page.window
    if (target === undefined) return () => {}
    const online = (): void => {
      if (this.state === 'offline' || (this.state !== 'closed' && this.mqttClient === null)) {
        this.attempt = 0
        void this.open()
      }
    }
    // A socket can take a keepalive period to notice the network is gone; the browser knows now.
    const offline = (): void => { this.mqttClient?.stream.destroy() }
    target.addEventListener('online', online)
    target.addEventListener('offline', offline)
    return () => {
      target.removeEventListener('online', online)
      target.removeEventListener('offline', offline)
    }
  }

  private send (pending: PendingPublish): void {
    const client = this.mqttClient
    if (client === null) {
      this.queue.requeue([pending])
      return
    }
    pending.sentOn = client
    this.inflight.add(pending)
    // MQTT.js writes Uint8Array payloads as they are; its typings name only Node's Buffer.
    const payload = pending.payload as string
    client.publish(pending.topic, payload, { qos: pending.qos, retain: pending.retain, properties: publishProperties(pending.properties) }, (err) => {
      if (pending.sentOn !== client) return
      if (err !== undefined && err !== null) {
        // An MQTT 5 broker refused it in its PUBACK or PUBREC, and the connection stays up.
        const reasonCode = (err as { code?: unknown }).code
        if (typeof reasonCode === 'number' && reasonCode >= 0x80 && this.inflight.delete(pending)) pending.reject(publishRefused(pending.topic, reasonCode))
        // Else the connection went away: onClosed sends it again on the next one.
        return
      }
      if (!this.inflight.delete(pending)) return
      pending.resolve()
    })
  }

  private flush (): void {
    for (const pending of this.queue.drain()) this.send(pending)
  }

  /** Resolves on the SUBACK; rejects when the connection went away first. */
  private sendSubscribe (client: MqttClient, list: Array<{ filter: string, qos: QoS }>): Promise<void> {
    const request = Object.fromEntries(list.map(({ filter, qos }) => [filter, { qos }]))
    return new Promise((resolve, reject) => client.subscribe(request, (_err, _granted, suback) => {
      // No SUBACK: the connection went away, and the next one subscribes again.
      if (client !== this.mqttClient || suback === undefined) return reject(new RealtimeError('not-connected', 'the connection went away before the SUBACK'))
      resolve()
      list.forEach(({ filter }, i) => {
        const code = suback.granted[i]
        if (typeof code === 'number' && code < 0x80) {
          this.subscriptions.granted(filter)
          return
        }
        const error = subscriptionRefused(filter, typeof code === 'number' ? code : 0x80)
        // Refused on a reconnect, nobody awaits it: say so as an event.
        if (!this.subscriptions.refused(filter, error)) this.report(error)
      })
    }))
  }

  private sendUnsubscribe (filter: string): Promise<void> {
    const client = this.mqttClient
    if (client === null || this.state !== 'online') return Promise.resolve()
    return new Promise((resolve) => { client.unsubscribe(filter, () => resolve()) })
  }

  private scheduleRefresh (): void {
    clearTimeout(this.refreshTimer)
    const dueInMs = this.tokens.dueInMs(Date.now())
    if (dueInMs !== null) this.refreshTimer = setTimeout(() => { void this.refreshToken() }, dueInMs)
  }

  /**
   * Fetches a new token and hands it to the broker: on an MQTT 5 connection authenticated with
   * the method JWT, by re-authenticating the live connection; else (MQTT 3.1.1 cannot), or if
   * the broker does not answer, by reconnecting with it.
   */
  private async refreshToken (): Promise<void> {
    const client = this.mqttClient
    if (client === null || this.state !== 'online') return
    let token: string | undefined
    try {
      token = await this.tokens.renew()
    } catch (err) {
      this.report(err as RealtimeError)
      // Try again shortly; the broker disconnects at expiry, and the reconnect path retries too.
      this.refreshTimer = setTimeout(() => { void this.refreshToken() }, 2000)
      return
    }
    if (client !== this.mqttClient || this.state !== 'online') return
    if (token !== undefined && client.options.properties?.authenticationMethod === jwtAuthenticationMethod) {
      const outcome = await reauthenticateWith(client, token, this.options.connectTimeoutMs ?? 10_000)
      if (client !== this.mqttClient || this.state !== 'online') return
      if (outcome === 'accepted') {
        this.scheduleRefresh()
        return
      }
      // 'closed' does not get here (the connection is gone); 'unsupported' or 'unanswered': reconnect.
    }
    this.reconnectWithNewToken(client)
  }

  private reconnectWithNewToken (client: MqttClient): void {
    this.retiring = client
    this.mqttClient = null
    this.subscriptions.resetGrants()
    this.setState({ state: 'reconnecting', attempt: 0, retryInMs: 0, reason: 'token refresh' })
    // DISCONNECT, not a dropped socket: the last will (presence "gone") must not fire.
    // onClosed opens the next connection once this one is closed.
    client.end(false)
    setTimeout(() => { if (this.retiring === client) client.stream.destroy() }, 3000)
  }

  private presenceEntryTopic (): string | null {
    if (this.options.announcePresence !== true) return null
    const user = this.user
    if (user !== null && isTopicLevel(user)) return connectionEntryTopic(user, this.clientId)
    if (!this.presenceRefused) this.report(new RealtimeError('token', `announcePresence needs a user fit for a topic level (no "/", "+", "#"), got ${JSON.stringify(user)}`))
    this.presenceRefused = true
    return null
  }

  /** A method, not `this.state`, so that TypeScript does not narrow it across an await. */
  private isClosed (): boolean {
    return this.currentState.state === 'closed'
  }

  private setState (change: StateChange): void {
    this.currentState = change
    this.emit('state', change)
  }

  private report (error: RealtimeError): void {
    if (!this.emit('error', error)) console.warn(`realtime: ${error.message}`)
  }
}

// An MQTT 5 broker's DISCONNECT that refuses the connection's token, e.g. a refused
// re-authentication [MQTT-4.12.1-2] or an expired token: Not authorized, Bad authentication method.
const tokenRefusingDisconnects = new Set([0x87, 0x8c])

function tokenRefusedByDisconnect (reasonCode: number | undefined): RealtimeError | null {
  if (reasonCode === undefined || !tokenRefusingDisconnects.has(reasonCode)) return null
  return new RealtimeError('connection-refused', `disconnected by the broker: ${describeReasonCode(reasonCode)}`)
}

/** The properties as MQTT.js takes them; undefined when there are none (no cost on 3.1.1). */
function publishProperties (properties: MessageProperties | undefined): IPublishPacket['properties'] {
  if (properties === undefined) return undefined
  const { correlationData, ...rest } = properties
  return correlationData === undefined ? rest : { ...rest, correlationData: asMqttBinary(correlationData) }
}

/** ws(s)://host/path -> http(s)://host/api/v1/history */
function historyUrlOf (url: string): string {
  const parsed = new URL(url)
  return `${parsed.protocol === 'wss:' ? 'https:' : 'http:'}//${parsed.host}/api/v1/history`
}

function defaultUrl (): string {
  const { location } = page
  if (location === undefined) throw new RealtimeError('connection-refused', 'no url given and no page location to derive it from')
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt`
}

function randomClientId (): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8))
  return `rt-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`
}
