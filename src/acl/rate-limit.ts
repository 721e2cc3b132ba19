// Token buckets: `rate` units per second, with one second of burst. Publish rates are limited
// per user, whatever the transport: one pair of buckets per user, shared by all of that user's
// MQTT connections and HTTP publishes on this node.
import type { RoleLimits } from './authorize.js'

export class TokenBucket {
  private tokens: number
  private last: number

  constructor (private readonly rate: number, now: number = Date.now()) {
    this.tokens = rate
    this.last = now
  }

  /** Takes `cost` units if available; false means the limit is exceeded. */
  take (cost: number, now: number = Date.now()): boolean {
    this.refill(now)
    if (this.tokens < cost) return false
    this.tokens -= cost
    return true
  }

  /** Whether the bucket is full again, i.e. the same as a new one. */
  full (now: number = Date.now()): boolean {
    this.refill(now)
    return this.tokens >= this.rate
  }

  private refill (now: number): void {
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate)
    this.last = now
  }
}

/** A bucket of a publisher under one limit: its key in the shared map, and the rate. */
interface RateKey { key: string, rate: number }

/** The buckets a publisher's publishes are taken from; computed once per connection. */
export interface PublishRateKeys {
  messages: RateKey | null
  bytes: RateKey | null
}

const unlimitedPublishRate: PublishRateKeys = Object.freeze({ messages: null, bytes: null })

// The map is swept of full buckets when it has grown to twice its size after the last sweep.
const minSweepSize = 1024

/**
 * Publish rate limits (maxPublishRate, maxPublishBytesRate) per publisher: a user, or a
 * connection or remote address for anonymous publishers, which have no identity to share. A
 * bucket that is full again is what a new one would be, so full buckets are dropped: the map
 * holds the publishers of about the last second, whether they are connected or not.
 */
export class PublishRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>()
  private sweepAt = minSweepSize

  /**
   * The buckets of `user` under `limits`; an anonymous publisher (user null) has its own,
   * told apart by `anonymousPublisher` (a connection, an address). A user whose tokens give
   * different limits has one pair per limit value: each holds across all of that user's
   * publishes under it.
   */
  keys (user: string | null, anonymousPublisher: string, limits: RoleLimits): PublishRateKeys {
    const { maxPublishRate, maxPublishBytesRate } = limits
    // without limits, one object for every client: nothing per idle connection
    if (maxPublishRate === undefined && maxPublishBytesRate === undefined) return unlimitedPublishRate
    const publisher = user === null ? `anonymous:${anonymousPublisher}` : `user:${user}`
    return {
      messages: maxPublishRate === undefined ? null : { key: `${publisher}\u0000messages\u0000${maxPublishRate}`, rate: maxPublishRate },
      bytes: maxPublishBytesRate === undefined ? null : { key: `${publisher}\u0000bytes\u0000${maxPublishBytesRate}`, rate: maxPublishBytesRate }
    }
  }

  /** Takes `count` messages of `bytes` payload bytes in all; why it is over a limit, or null. */
  take (keys: PublishRateKeys, count: number, bytes: number, now: number = Date.now()): string | null {
    if (keys.messages !== null && !this.bucket(keys.messages, now).take(count, now)) return `over ${keys.messages.rate} messages per second`
    if (keys.bytes !== null && !this.bucket(keys.bytes, now).take(bytes, now)) return `over ${keys.bytes.rate} bytes per second`
    return null
  }

  /** Buckets held, for tests of the bound. */
  get size (): number {
    return this.buckets.size
  }

  private bucket ({ key, rate }: RateKey, now: number): TokenBucket {
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size >= this.sweepAt) this.sweep(now)
      bucket = new TokenBucket(rate, now)
      this.buckets.set(key, bucket)
    }
    return bucket
  }

  private sweep (now: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.full(now)) this.buckets.delete(key)
    this.sweepAt = Math.max(minSweepSize, this.buckets.size * 2)
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
