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

const enum ClaimState { Pending, Held, NotHeld, ClosedWhilePending, Released }

/**
 * One connection's claim, kept on its stream until the stream closes: a few fields instead of
 * a release closure, its context and the claim's promise (~0.2 KiB per idle connection).
 */
class Claim {
  state = ClaimState.Pending
  constructor (readonly ownership: ClientIdOwnership, readonly id: string, readonly sequence: number, readonly clean: boolean) {}
}

const kClaim = Symbol('client-id claim')
type ClaimingStream = NodeJS.EventEmitter & { destroyed: boolean, [kClaim]?: Claim }

// the 'close' listener of every claiming connection (on, not once, whose wrapper costs more
// than the listener: it runs once anyway)
function releaseOnClose (this: ClaimingStream): void {
  const claim = this[kClaim]
  if (claim === undefined) return
  if (claim.state === ClaimState.Held) claim.ownership.release(claim)
  else if (claim.state === ClaimState.Pending) claim.state = ClaimState.ClosedWhilePending
}

export class ClientIdOwnership {
  private sequence = 0

  constructor (private readonly store: SessionStore, private readonly nodeId: string) {}

  /**
   * Claims the connection's client id for `identity`; rejects when the store cannot answer.
   * A successful claim is released when the connection's stream closes, whenever that is.
   */
  async claim (connection: Pick<Client, 'id' | 'clean' | 'version' | 'conn'>, identity: Identity): Promise<ClaimResult> {
    const { id, clean } = connection
    // the token is built again on release: an idle connection keeps its number, not the string
    const claim = new Claim(this, id, ++this.sequence, clean)
    // Listening before the claim resolves: the connection may close while it is pending.
    const stream = connection.conn as unknown as ClaimingStream
    stream[kClaim] = claim
    stream.on('close', releaseOnClose)
    if (stream.destroyed) claim.state = ClaimState.ClosedWhilePending
    let current: string | null
    try {
      // an MQTT 3.1.1 clean session is discarded in the same round trip [MQTT-3.1.2-6]; a CONNECT
      // that closes before Aedes registers it leaves the previous session's subscriptions and
      // queue (Aedes wipes them after the takeover) without an expiry until the id's next CONNECT
      current = await this.store.claim(id, clientIdOwner(identity), this.token(claim.sequence, clean), clean && connection.version !== 5)
    } catch (err) {
      claim.state = ClaimState.NotHeld
      throw err
    }
    const closedMeanwhile = claim.state === ClaimState.ClosedWhilePending
    claim.state = current === null ? ClaimState.Held : ClaimState.NotHeld
    if (closedMeanwhile && current === null) this.release(claim)
    return current === null ? { ok: true } : { ok: false, owner: current }
  }

  /** Releases a held claim, once. */
  release (claim: Claim): void {
    if (claim.state !== ClaimState.Held) return
    claim.state = ClaimState.Released
    this.store.release(claim.id, this.token(claim.sequence, claim.clean), claim.clean).catch(() => {})
  }

  /** What the store records as the claim of this node's connection number `sequence`. */
  private token (sequence: number, clean: boolean): string {
    return `${this.nodeId}|${sequence}|${clean ? 'clean' : 'persistent'}`
  }
}
