// How many CONNECTs the gate lets work at once, paced by this process's event-loop delay:
// every CONNECT resumed runs on the loop that also delivers live clients' messages, so when
// the loop runs late the turns shrink (halved each window over the target: live traffic
// first), and when it is back under half the target they grow again by a tenth of the cap
// per window (additive increase, multiplicative decrease, as TCP does for its window). One
// turn always remains, so a storm is still worked off on a loop that is late for other reasons.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'

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

// the histogram's timer: finer would wake an idle loop more often while a storm waits
const resolutionMs = 10
const windowMs = 100

/** The event loop's delay, over windows of 100 ms, measured only between start() and stop(). */
export function eventLoopDelay (): LoopDelaySource {
  let histogram: IntervalHistogram | null = null
  let windowStartedAt = 0
  let sample: LoopDelaySample = { window: 0, maxMs: 0 }
  return {
    start: () => {
      if (histogram !== null) return
      histogram = monitorEventLoopDelay({ resolution: resolutionMs })
      histogram.enable()
      windowStartedAt = performance.now()
    },
    stop: () => {
      histogram?.disable()
      histogram = null
    },
    latest: () => {
      const now = performance.now()
      if (histogram === null || now - windowStartedAt < windowMs) return sample
      // the histogram counts from the timer's due time: its max is how late the loop ran
      sample = { window: sample.window + 1, maxMs: histogram.count === 0 ? now - windowStartedAt : histogram.max / 1e6 }
      histogram.reset()
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
