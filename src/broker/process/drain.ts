// Draining a node: its clients are disconnected spread over a period, so that they reconnect to
// the other nodes gradually, sessions intact. SIGTERM's shutdown drains before it closes; the
// admin API drains a node that stays up (it refuses new connections and reports not ready
// until the drain is lifted).
import type { Aedes } from 'aedes'
import type { ClientRegistry } from '../client-registry.js'

/**
 * Closes the connected clients spread evenly over `ms` (v5: DISCONNECT 0x8B, server shutting
 * down), while `going()` holds. 0 closes them all at once.
 */
export async function drainClients (aedes: Aedes, registry: ClientRegistry, ms: number, going: () => boolean = () => true): Promise<void> {
  const clients = [...registry.clients(aedes)].map(({ client }) => client)
  const pause = clients.length === 0 ? 0 : ms / clients.length
  for (const client of clients) {
    if (!going()) return
    registry.disconnect(client, 'shutdown')
    if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause))
  }
}

/** Whether this node is drained through the admin API, and the drain under way. */
export class NodeDrain {
  private since: number | null = null
  private running: Promise<void> = Promise.resolve()

  constructor (private readonly aedes: Aedes, private readonly registry: ClientRegistry, private readonly drainMs: number) {}

  get draining (): boolean {
    return this.since !== null
  }

  /** When the drain started (ms), or null. */
  get drainingSince (): number | null {
    return this.since
  }

  /** Starts refusing new clients and disconnects the connected ones over shutdown.drainMs. */
  start (): void {
    if (this.since !== null) return
    this.since = Date.now()
    this.running = drainClients(this.aedes, this.registry, this.drainMs, () => this.since !== null)
  }

  /** Accepts clients again (a drain under way stops). */
  stop (): void {
    this.since = null
  }

  /** Resolves once the clients connected at the drain's start were disconnected. */
  done (): Promise<void> {
    return this.running
  }
}
