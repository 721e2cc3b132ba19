// PINGREQs for a generator's idle connections: each connection once per keepalive, spread
// evenly over it (connection i in second i mod keepalive), by the wall clock: on a loaded
// machine a 1 s interval fires late, and a cycle counted in ticks outlives the broker's 1.5
// keepalives of silence.
import { countInTimeline } from './timeline.js'

const pingreq = Buffer.from([0xC0, 0x00])

export interface Pingable {
  /** Writes the bytes if the connection is up. */
  ping: (packet: Buffer) => void
}

/** Starts pinging `connections` (read at each tick: connections added later are pinged too); returns a stop function. */
export function startPinging (connections: () => ArrayLike<Pingable | undefined>, keepaliveS: number): () => void {
  const startedAt = performance.now()
  let nextSecond = 0
  const timer = setInterval(() => {
    const now = Math.floor((performance.now() - startedAt) / 1000)
    const list = connections()
    // the seconds since the last tick, at most one whole cycle
    for (let second = Math.max(nextSecond, now - keepaliveS + 1); second <= now; second++) {
      let pinged = 0
      for (let i = second % keepaliveS; i < list.length; i += keepaliveS, pinged++) list[i]?.ping(pingreq)
      countInTimeline('pings', pinged)
    }
    nextSecond = now + 1
  }, 1_000)
  timer.unref()
  return () => clearInterval(timer)
}
