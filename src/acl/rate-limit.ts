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

/**
 * A token bucket per key (e.g. per user), each with its own rate. Keys whose bucket refilled
 * (idle for a second) are forgotten as the map grows, so it holds only the recently active.
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, { bucket: TokenBucket, lastUsed: number }>()
  private pruneAt = 1024

  /** Takes one unit for `key`; false means its rate is exceeded. */
  take (key: string, rate: number, now: number = Date.now()): boolean {
    let entry = this.buckets.get(key)
    if (entry === undefined) {
      if (this.buckets.size >= this.pruneAt) this.prune(now)
      entry = { bucket: new TokenBucket(rate, now), lastUsed: now }
      this.buckets.set(key, entry)
    }
    entry.lastUsed = now
    return entry.bucket.take(1, now)
  }

  private prune (now: number): void {
    for (const [key, entry] of this.buckets) if (now - entry.lastUsed >= 1000) this.buckets.delete(key)
    this.pruneAt = Math.max(1024, this.buckets.size * 2)
  }
}
