// Reconnect delays: exponential growth, capped, with jitter so that many clients dropped at
// once (a broker restart) do not all come back in the same instant.

export interface BackoffOptions {
  /** Delay before the first retry, in ms. */
  initialDelayMs: number
  /** The largest delay, in ms. */
  maxDelayMs: number
  /** Share of each delay that is random, 0 (none) to 1 (anywhere from 0 to the delay). */
  jitter: number
}

export const defaultBackoff: BackoffOptions = { initialDelayMs: 500, maxDelayMs: 30_000, jitter: 0.5 }

/** The delay before retry number `attempt` (0 for the first retry). */
export function backoffDelay (attempt: number, options: BackoffOptions = defaultBackoff, random: () => number = Math.random): number {
  // 2 ** 30 is far past any cap; bounding the exponent keeps the number finite.
  const exponential = options.initialDelayMs * 2 ** Math.min(Math.max(attempt, 0), 30)
  const capped = Math.min(options.maxDelayMs, exponential)
  const jitter = Math.min(Math.max(options.jitter, 0), 1)
  return Math.round(capped * (1 - jitter * random()))
}
