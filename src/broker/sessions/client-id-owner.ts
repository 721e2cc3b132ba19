// Who owns a client id: the user whose connection created its session. Another user's CONNECT
// with that id is refused before Aedes closes the holder's connection or reads the session, so
// nobody can disconnect another user, read Session Present about their session, or have the
// forward check empty their queue. Recorded in the session store (memory on one node, Redis in
// a cluster), so every node sees it; freed when the session ends: a CleanSession 1 connection
// ends, or a persistent session expires (session-expiry.ts).
import type { Client } from 'aedes'
import type { Identity } from '../../acl/identity.js'
import type { SessionStore } from './session-expiry.js'

/**
 * The owner an identity claims ids as: `user:<sub>` for a token's subject, `anonymous` for
 * every anonymous client (so anonymous clients and users never take each other's ids).
 */
function clientIdOwner (identity: Identity): string {
  return identity.user === null ? 'anonymous' : `user:${identity.user}`
}

export type ClaimResult = { ok: true } | { ok: false, owner: string }

export class ClientIdOwnership {
  private sequence = 0

  constructor (private readonly store: SessionStore, private readonly nodeId: string) {}

  /**
   * Claims the connection's client id for `identity`; rejects when the store cannot answer.
   * A successful claim is released when the connection's stream closes, whenever that is.
   */
  async claim (connection: Pick<Client, 'id' | 'clean' | 'conn'>, identity: Identity): Promise<ClaimResult> {
    const { id, clean } = connection
    // the token is built again on release: an idle connection keeps its number, not the string
    const sequence = ++this.sequence
    const claimed = this.store.claim(id, clientIdOwner(identity), this.token(sequence, clean))
    // Listening before the claim resolves: the connection may close while it is pending.
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      void claimed.then((current) => current === null ? this.store.release(id, this.token(sequence, clean), clean) : undefined).catch(() => {})
    }
    // on, not once (whose wrapper costs more than the listener): release runs once anyway
    connection.conn.on('close', release)
    if (connection.conn.destroyed) release()
    const current = await claimed
    return current === null ? { ok: true } : { ok: false, owner: current }
  }

  /** What the store records as the claim of this node's connection number `sequence`. */
  private token (sequence: number, clean: boolean): string {
    return `${this.nodeId}|${sequence}|${clean ? 'clean' : 'persistent'}`
  }
}
