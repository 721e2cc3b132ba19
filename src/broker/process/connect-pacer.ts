// How many CONNECTs the gate lets work at once, paced by this process's event-loop delay:
// every CONNECT resumed runs on the loop that also delivers live clients' messages, so when
// the loop runs late the turns shrink (halved each window over the target: live traffic
// first), and when it is back under half the target they grow again by a tenth of the cap
// per window (additive increase, multiplicative decrease, as TCP does for its window). One
// turn always remains, so a storm is still worked off on a loop that is late for other reasons.

/** The longest event-loop delay of the last full window, numbered so that a window is judged once. */
export interface LoopDelaySample {
  window: number
  maxMs: number
}

export interface LoopDelaySource {
  /** Starts measuring (the gate is in use). */
  start: () => void
  /** Stops measuring (the gate is idle): nothing runs meanwhile. */
  stop: () => void
  latest: () => LoopDelaySample
}

// a timer this often while the gate has work: how late it fires is how late the loop runs
// (perf_hooks' monitorEventLoopDelay records the intervals between its ticks instead, the
// resolution included, and loses a block that spans its reset)
const tickMs = 10
const windowMs = 100

/** The event loop's delay, over windows of 100 ms, measured only between start() and stop(). */
export function eventLoopDelay (): LoopDelaySource {
  let timer: NodeJS.Timeout | null = null
  let dueAt = 0
  let windowStartedAt = 0
  let windowMaxMs = 0
  let sample: LoopDelaySample = { window: 0, maxMs: 0 }
  const tick = (): void => {
    const now = performance.now()
    windowMaxMs = Math.max(windowMaxMs, now - dueAt)
    dueAt = now + tickMs
    timer = setTimeout(tick, tickMs).unref()
  }
  return {
    start: () => {
      if (timer !== null) return
      windowStartedAt = performance.now()
      windowMaxMs = 0
      dueAt = windowStartedAt + tickMs
      timer = setTimeout(tick, tickMs).unref()
    },
    stop: () => {
      if (timer !== null) clearTimeout(timer)
      timer = null
    },
    latest: () => {
      const now = performance.now()
      if (timer === null || now - windowStartedAt < windowMs) return sample
      // a tick overdue now counts too: latest() is called from the work that makes it late
      sample = { window: sample.window + 1, maxMs: Math.max(windowMaxMs, now - dueAt) }
      windowMaxMs = 0
      windowStartedAt = now
      return sample
    }
  }
}

export class ConnectPacer {
  private turns: number
  private judgedWindow = 0

  /**
   * `max` turns at most; `targetMs` the event-loop delay above which they shrink.
   */
  constructor (private readonly max: number, private readonly targetMs: number, private readonly delay: LoopDelaySource) {
    this.turns = max
  }

  /** The turns allowed now. */
  allowed (): number {
    const { window, maxMs } = this.delay.latest()
    if (window === this.judgedWindow) return this.turns
    this.judgedWindow = window
    if (maxMs > this.targetMs) this.turns = Math.max(1, Math.floor(this.turns / 2))
    else if (maxMs < this.targetMs / 2) this.turns = Math.min(this.max, this.turns + Math.max(1, Math.ceil(this.max / 10)))
    return this.turns
  }

  /** The gate has work (true) or is idle (false): the delay is measured only meanwhile. */
  busy (busy: boolean): void {
    if (busy) this.delay.start()
    else this.delay.stop()
  }
}
