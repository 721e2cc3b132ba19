// A cap on the CONNECTs this node works on at once (authentication, client-id claim, session
// restore and offline queue, all Redis round trips with a cluster): when a node dies, its
// clients all come back at once, and without a cap the survivors start tens of thousands of
// session restores together, their memory grows with them and live clients wait behind them.
// Over the cap a CONNECT waits its turn in a bounded queue, first come first served, for a
// bounded time; beyond the queue, or after the wait, it is refused with CONNACK 0x03 Server
// unavailable (MQTT 5: 0x89 Server busy) and the client retries with its backoff.
// Paced (limits.connectLoopDelayMs), the cap is a ceiling: fewer turns while the event loop
// runs late, so that the live clients' deliveries, on the same loop, go first.
import type { AedesOptions, AuthenticateError, Client } from 'aedes'
import type { Logger } from '../observability/logger.js'
import type { BrokerMetrics } from '../observability/metrics.js'
import { ReasonCode } from '../protocol/reason-codes.js'
import { ConnectPacer, eventLoopDelay } from './connect-pacer.js'

export interface ConnectGateOptions {
  /** CONNECTs worked on at once. */
  maxConcurrent: number
  /** CONNECTs waiting for a turn; more are refused at once. */
  maxQueued: number
  /** The longest a CONNECT waits for its turn before it is refused. */
  maxWaitMs: number
  /** Fewer turns than maxConcurrent while the event loop runs late; none: always maxConcurrent. */
  pacer?: ConnectPacer
}

/** Why a CONNECT was turned away: the queue was full, or its turn did not come in time. */
export type ConnectRefusal = 'queue_full' | 'wait_timeout'

export interface ConnectGateCounts {
  /** CONNECTs being worked on. */
  active: number
  /** CONNECTs waiting for a turn. */
  waiting: number
  /** CONNECTs allowed at once now: maxConcurrent, or fewer while paced down. */
  turns: number
}

interface Waiting {
  admitted: () => void
  timer: NodeJS.Timeout
}

export class ConnectGate {
  private readonly holders = new Set<object>()
  // insertion-ordered: the first entry is the longest waiting; a connection that closes while
  // waiting leaves it in O(1)
  private readonly waiting = new Map<object, Waiting>()

  constructor (private readonly options: ConnectGateOptions) {}

  /**
   * Asks a turn for the CONNECT of `connection`: `admitted` is called once it may go on (now, or
   * when a turn frees), `refused` if it may not. It holds its turn until leave(connection).
   * Returns whether it had to wait.
   */
  enter (connection: object, admitted: () => void, refused: (why: ConnectRefusal) => void): boolean {
    if (this.idle()) this.options.pacer?.busy(true)
    if (this.waiting.size === 0 && this.holders.size < this.turns()) {
      this.holders.add(connection)
      admitted()
      return false
    }
    if (this.waiting.size >= this.options.maxQueued) {
      this.settled()
      refused('queue_full')
      return false
    }
    const timer = setTimeout(() => {
      this.waiting.delete(connection)
      this.settled()
      refused('wait_timeout')
    }, this.options.maxWaitMs)
    this.waiting.set(connection, { admitted, timer })
    return true
  }

  /** The CONNECT of `connection` is done (CONNACK sent and session resumed, refused, or closed). */
  leave (connection: object): void {
    const waiting = this.waiting.get(connection)
    if (waiting !== undefined) {
      clearTimeout(waiting.timer)
      this.waiting.delete(connection)
      this.settled()
      return
    }
    if (!this.holders.delete(connection)) return
    this.admitNext()
    this.settled()
  }

  counts (): ConnectGateCounts {
    return { active: this.holders.size, waiting: this.waiting.size, turns: this.turns() }
  }

  private turns (): number {
    return this.options.pacer?.allowed() ?? this.options.maxConcurrent
  }

  private idle (): boolean {
    return this.holders.size === 0 && this.waiting.size === 0
  }

  /** Nothing held or waiting any more: the pacer stops measuring. */
  private settled (): void {
    if (this.idle()) this.options.pacer?.busy(false)
  }

  private admitNext (): void {
    if (this.waiting.size === 0) return
    const turns = this.turns()
    for (const [connection, { admitted, timer }] of this.waiting) {
      if (this.holders.size >= turns) return
      clearTimeout(timer)
      this.waiting.delete(connection)
      this.holders.add(connection)
      admitted()
    }
  }
}

type Authenticate = NonNullable<AedesOptions['authenticate']>

export interface ConnectThrottleEvents {
  queued: () => void
  refused: (client: Client, why: ConnectRefusal) => void
}

export interface ThrottledConnects {
  /** Aedes' authenticate hook behind the gate. */
  authenticate: Authenticate
  /** `client`'s CONNECT is done: CONNACK sent and its offline queue read (Aedes' clientReady). */
  connected: (client: Client) => void
}

/**
 * Puts `gate` in front of Aedes' authenticate hook: a CONNECT holds its turn from
 * authentication until its session is resumed, or its connection closes.
 */
export function throttleConnects (gate: ConnectGate, authenticate: Authenticate, events: ConnectThrottleEvents): ThrottledConnects {
  // the 'close' listener of each connection holding or waiting for a turn
  const onClose = new WeakMap<object, () => void>()
  const leave = (connection: Client['conn']): void => {
    const listener = onClose.get(connection)
    if (listener === undefined) return
    onClose.delete(connection)
    removeCloseListener(connection, listener)
    gate.leave(connection)
  }
  return {
    authenticate: (client, username, password, done) => {
      const connection = client.conn
      const listener = (): void => leave(connection)
      onClose.set(connection, listener)
      connection.once('close', listener)
      const queued = gate.enter(connection, () => authenticate(client, username, password, done), (why) => {
        leave(connection)
        events.refused(client, why)
        // [MQTT-3.2.2-6] a refused CONNECT gets a CONNACK with a non-zero code, then the close
        const busy = Object.assign(new Error(`server busy: ${why === 'queue_full' ? 'too many connections waiting to connect' : 'no turn to connect in time'}`), {
          returnCode: 3,
          reasonCode: ReasonCode.serverBusy
        }) as AuthenticateError
        done(busy, null)
      })
      if (queued) events.queued()
    },
    connected: (client) => leave(client.conn)
  }
}

/**
 * Removes the gate's 'close' listener from a connection that goes on. While it held its turn,
 * the client-id claim added a third 'close' listener (after Aedes' own), which grew the
 * connection's listener array to 19 slots; the two left would keep that array for the life of
 * the connection (~0.15 KiB per idle connection), so they get an array of their own, in order.
 */
function removeCloseListener (connection: Client['conn'], listener: () => void): void {
  connection.removeListener('close', listener)
  const rest = connection.rawListeners('close') as Array<(...args: unknown[]) => void>
  // a closing connection emits 'close' to the listeners it has: nothing to keep
  if (rest.length < 2 || connection.destroyed) return
  // one at a time: removeAllListeners() deletes the event's key, which turns a stream's
  // fixed-shape listener table into a dictionary (~0.2 KiB more)
  for (const kept of rest) connection.removeListener('close', kept)
  for (const kept of rest) connection.on('close', kept)
}

// a storm refuses thousands of CONNECTs a second: one log line per interval says how many
const refusalLogIntervalMs = 5_000

/** The gate of limits.maxConcurrentConnects (paced by limits.connectLoopDelayMs), or null when it is 0 (no cap). */
export function createConnectGate (limits: { maxConcurrentConnects: number, maxQueuedConnects: number, connectQueueTimeoutMs: number, connectLoopDelayMs: number }): ConnectGate | null {
  if (limits.maxConcurrentConnects === 0) return null
  return new ConnectGate({
    maxConcurrent: limits.maxConcurrentConnects,
    maxQueued: limits.maxQueuedConnects,
    maxWaitMs: limits.connectQueueTimeoutMs,
    ...(limits.connectLoopDelayMs === 0 ? {} : { pacer: new ConnectPacer(limits.maxConcurrentConnects, limits.connectLoopDelayMs, eventLoopDelay()) })
  })
}

/** Counts what the gate does, and logs its refusals: at most one line per interval. */
export function connectThrottleEvents (gate: ConnectGate, metrics: BrokerMetrics, logger: Logger): ConnectThrottleEvents {
  let lastLoggedAt = -Infinity
  let unlogged = 0
  return {
    queued: () => metrics.connectThrottled('queued'),
    refused: (client, why) => {
      metrics.connectThrottled(why)
      unlogged++
      const now = performance.now()
      if (now - lastLoggedAt < refusalLogIntervalMs) return
      logger.warn({ event: 'connect.busy', clientId: client.id, reason: why, refused: unlogged, ...gate.counts() }, 'CONNECTs refused with server busy: too many connecting at once (limits.maxConcurrentConnects)')
      lastLoggedAt = now
      unlogged = 0
    }
  }
}
