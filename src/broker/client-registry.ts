// What the broker knows of each connection and client of this node: where it comes from, who
// it is, what it may do, and why it ended. The hooks (hooks.ts) read and write it; the wiring
// and the admin API list and disconnect clients through it.
import type { Aedes, Client } from 'aedes'
import type { ClientGrants } from '../acl/authorize.js'
import type { Identity } from '../acl/identity.js'
import type { PublishRateKeys } from '../acl/rate-limit.js'
import { connectedClients } from './aedes-adapter.js'
import { DeadlineBuckets } from './deadline-buckets.js'
import type { BrokerMetrics, DisconnectReason, TransportLabel } from './observability/metrics.js'
import { disconnectCode } from './protocol/reason-codes.js'

/** Where a connection comes from, recorded when it is accepted. */
export interface ConnectionInfo {
  transport: TransportLabel
  remote: string | undefined
  /** The token a WebSocket upgrade carried (`Authorization: Bearer`, `?token=`), read by the bridge. */
  upgradeToken?: string
}

export interface ClientState {
  connection: ConnectionInfo
  connectedSince: number
  /**
   * Whether the connect completed (CONNACK sent) and was counted: a
   * connection dropped during CONNECT is forgotten without counting a disconnect.
   */
  ready: boolean
  /** Set when the broker itself ends the connection, for the disconnect metric. */
  closeReason: DisconnectReason | null
  identity: Identity
  grants: ClientGrants
  /** The filters subscribed, kept only when a role limits how many (limits.maxSubscriptions). */
  subscriptions: Set<string> | null
  /** The publish rate buckets it takes from: its user's, or its own when anonymous. */
  publishRate: PublishRateKeys
  /** When its token expires, grace included (ms since the epoch); null for none (setTokenExpiry). */
  tokenExpiresAt: number | null
  /**
   * Its retained publishes being checked against the caps (a Redis round trip): its later
   * publishes wait for them, so its messages keep their order [MQTT-4.6.0-6].
   */
  retainedCheck: Promise<void> | null
}

// how late after its token's expiry a client may be disconnected
const tokenExpiryResolutionMs = 250

// A connection's info and a client's state are kept on the stream and the client themselves:
// two WeakMaps cost ~0.1 KiB per idle connection in their tables (and ephemeron work at every
// full collection). A client belongs to one broker, so one property each is enough.
const kConnection = Symbol('connection info')
const kState = Symbol('client state')
type RegisteredStream = object & { [kConnection]?: ConnectionInfo }
type AdmittedClient = Client & { [kState]?: ClientState | undefined }

function stateOf (client: Client): ClientState | undefined {
  return (client as AdmittedClient)[kState]
}

export class ClientRegistry {
  // every client's token expiry behind one timer, not one Timeout per client
  private readonly tokenExpiries = new DeadlineBuckets<Client>(tokenExpiryResolutionMs, (client) => { this.tokenExpired(client) })
  private tokenExpired: (client: Client) => void = () => {}

  constructor (private readonly metrics: BrokerMetrics) {}

  /** What is done with a client whose token expired (the policies disconnect it). */
  onTokenExpired (expired: (client: Client) => void): void {
    this.tokenExpired = expired
  }

  /** Sets when the token of an admitted client expires (null: never), replacing the previous deadline. */
  setTokenExpiry (client: Client, at: number | null): void {
    const state = stateOf(client)
    if (state === undefined) return
    if (state.tokenExpiresAt !== null) this.tokenExpiries.remove(client, state.tokenExpiresAt)
    state.tokenExpiresAt = at
    if (at !== null) this.tokenExpiries.add(client, at)
  }

  /** Records where a connection comes from; `stream` is what Aedes gets as client.conn. */
  registerConnection (stream: object, info: ConnectionInfo): void {
    (stream as RegisteredStream)[kConnection] = info
  }

  connectionOf (client: Client): ConnectionInfo {
    return (client.conn as RegisteredStream)[kConnection] ?? { transport: 'tcp', remote: undefined }
  }

  /** Records an authenticated client. */
  admit (client: Client, state: ClientState): void {
    (client as AdmittedClient)[kState] = state
  }

  stateOf (client: Client): ClientState | undefined {
    return stateOf(client)
  }

  /** Clients this node holds, with their state. */
  * clients (aedes: Aedes): Generator<{ client: Client, state: ClientState }> {
    for (const client of connectedClients(aedes)) {
      const state = stateOf(client)
      if (state !== undefined) yield { client, state }
    }
  }

  /** Ends a client's connection on the broker's initiative, recording why. */
  disconnect (client: Client, reason: DisconnectReason, reasonCode?: number): void {
    const state = stateOf(client)
    if (state !== undefined) state.closeReason = reason
    // a v5 client is told why [MQTT-3.14.2-1]; Aedes just closes an MQTT 3.1.1 connection
    client.disconnect({ reasonCode: disconnectCode(reason, reasonCode) }, () => {})
  }

  /** Marks a client whose connect completed (CONNACK sent) and counts it; its state, once. */
  ready (client: Client): ClientState | undefined {
    const state = stateOf(client)
    if (state === undefined || state.ready) return undefined
    state.ready = true
    this.metrics.clientConnected(state.connection.transport)
    return state
  }

  /**
   * Forgets a client that disconnected; returns its state only if its connect was counted
   * (ready), so that a connection dropped during CONNECT counts no disconnect and takes no
   * presence offline.
   */
  forget (client: Client, currentHolder: Client | undefined, fallback: DisconnectReason): ClientState | undefined {
    const state = stateOf(client)
    if (state === undefined) return undefined
    if (state.tokenExpiresAt !== null) this.tokenExpiries.remove(client, state.tokenExpiresAt)
    ;(client as AdmittedClient)[kState] = undefined
    if (!state.ready) return undefined
    // Another connection now holds the client id: it took the session over.
    const reason = state.closeReason ?? (currentHolder !== undefined && currentHolder !== client ? 'takeover' : fallback)
    // the state returned says why (webhooks' client.disconnected)
    state.closeReason = reason
    this.metrics.clientDisconnected(state.connection.transport, reason)
    return state
  }

  /** Marks why Aedes is about to close a client (keepalive, drain timeout, errors). */
  noteCloseReason (client: Client, reason: DisconnectReason): void {
    const state = stateOf(client)
    if (state !== undefined && state.closeReason === null) state.closeReason = reason
  }

  forgetSubscriptions (client: Client, topics: string[]): void {
    const state = stateOf(client)
    if (state?.subscriptions != null) for (const topic of topics) state.subscriptions.delete(topic)
  }
}
