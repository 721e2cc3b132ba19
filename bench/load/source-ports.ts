// Source ports for a generator process's connections, picked here rather than by the kernel:
// connect() from a given address binds it to port 0 first, and on an address that already
// holds thousands of connections the kernel searches its ports for a free one. The storm's
// 10,000 reconnects spent 4.5 s of CPU in bind() (28% of its generator's profile over 16 s),
// on the two cores the surviving brokers run on. A port is handed out again only after its
// connection closed and a TIME_WAIT (60 s on Linux) has passed; the ports are below the
// kernel's ephemeral range (32768-60999 here), so none that it gives another socket.
const firstPort = 10_000
const lastPort = 32_767
const timeWaitMs = 61_000

export class SourcePorts {
  private readonly free: number[] = []
  private freeAt = 0
  // closed ports in the order they closed, each reusable from its time on
  private readonly cooling: Array<{ port: number, reusableAt: number }> = []
  private coolingAt = 0

  constructor () {
    for (let port = firstPort; port <= lastPort; port++) this.free.push(port)
  }

  /** A port no connection of this process holds or held within a TIME_WAIT; undefined when none is left (the kernel picks then). */
  take (): number | undefined {
    const now = performance.now()
    while (this.coolingAt < this.cooling.length && (this.cooling[this.coolingAt]?.reusableAt ?? Infinity) <= now) {
      this.free.push((this.cooling[this.coolingAt++] as { port: number }).port)
    }
    // the consumed heads of both queues are dropped now and then, not per port
    if (this.coolingAt > 1024 && this.coolingAt * 2 > this.cooling.length) {
      this.cooling.splice(0, this.coolingAt)
      this.coolingAt = 0
    }
    if (this.freeAt >= this.free.length) return undefined
    const port = this.free[this.freeAt++]
    if (this.freeAt > 1024 && this.freeAt * 2 > this.free.length) {
      this.free.splice(0, this.freeAt)
      this.freeAt = 0
    }
    return port
  }

  /** The connection on `port` closed: the port is reusable after a TIME_WAIT. */
  release (port: number | undefined): void {
    if (port !== undefined) this.cooling.push({ port, reusableAt: performance.now() + timeWaitMs })
  }
}
