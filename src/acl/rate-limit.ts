// A token bucket: `rate` units per second, with one second of burst.

export class TokenBucket {
  private tokens: number
  private last: number

  constructor (private readonly rate: number, now: number = Date.now()) {
    this.tokens = rate
    this.last = now
  }

  /** Takes `cost` units if available; false means the limit is exceeded. */
  take (cost: number, now: number = Date.now()): boolean {
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate)
    this.last = now
    if (this.tokens < cost) return false
    this.tokens -= cost
    return true
  }
}
