// Typings for the parts of modules we use that ship none (aedes-persistence-redis, qlobber)
// or leave out (mqemitter-redis' prefix class and its `state` emitter).
declare module 'aedes-persistence-redis' {
  import type { Cluster, Redis } from 'ioredis'

  export interface RedisPersistenceOptions {
    /** a Cluster needs our patch (patches/aedes-persistence-redis+12.0.0.patch) */
    conn?: Redis | Cluster
    maxSessionDelivery?: number
    packetTTL?: () => number
  }

  export interface RedisPersistence {
    setup: (broker: unknown) => Promise<void>
    createRetainedStreamCombi: (patterns: string[]) => AsyncIterable<import('aedes').AedesPublishPacket>
    destroy: () => Promise<void>
  }

  export default function aedesPersistenceRedis (options?: RedisPersistenceOptions): RedisPersistence
}

declare module 'qlobber' {
  export interface QlobberOptions {
    separator?: string
    wildcard_one?: string
    wildcard_some?: string
    match_empty_levels?: boolean
    max_words?: number
  }

  /** A topic matcher whose match() returns the distinct values added under matching filters. */
  export class QlobberDedup<V> {
    constructor (options?: QlobberOptions)
    add (topic: string, value: V): this
    remove (topic: string, value?: V): this
    match (topic: string): Set<V>
    clear (): this
  }
}
