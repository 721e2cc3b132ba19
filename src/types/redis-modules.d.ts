// Typings for the parts of the Redis modules we use that ship none (aedes-persistence-redis)
// or leave out (mqemitter-redis' prefix class and its `state` emitter).
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis'

  export interface RedisPersistenceOptions {
    conn?: Redis
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
