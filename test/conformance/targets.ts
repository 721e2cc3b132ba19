// The brokers the conformance suite runs against: a single node on the in-memory store, and
// a cluster node on Redis (aedes-persistence-redis and the default emitter); optionally also a
// cluster node with the stock mqemitter-redis emitter. Each test file runs every test once per
// target.
import tap from 'tap'
import type { BrokerHandle } from '../../src/server.js'
import type { ConfigInput } from '../../src/broker/config/config.js'
import { startBroker } from '../helpers/broker.js'
import { startRedis } from '../helpers/redis.js'
import { RawClient, uniqueId, type ProtocolLevel } from './raw-client.js'
import type { Teardown } from '../helpers/loopback.js'

export interface Target {
  name: string
  /** A node of a cluster: other nodes can join it with `{ redis: broker.config.redis }`. */
  cluster: boolean
  /** A broker for this target; each call starts a new one, closed by `t`'s teardown. */
  broker: (t: Teardown, config?: ConfigInput) => Promise<BrokerHandle>
}

export interface TargetEnv {
  target: Target
  /** A broker shared by the tests of one file and target (default config). */
  broker: BrokerHandle
  /** A raw TCP client to the shared broker, or to `broker` when given (MQTT 3.1.1, or 5.0 with `level: 5`). */
  raw: (t: Teardown, broker?: BrokerHandle) => Promise<RawClient>
  /** A raw client that sent CONNECT (clean session / Clean Start, fresh id) and got CONNACK 0. */
  connected: (t: Teardown, options?: Parameters<RawClient['connect']>[0], broker?: BrokerHandle) => Promise<RawClient>
}

const memory: Target = {
  name: 'single node',
  cluster: false,
  broker: async (t, config = {}) => await startBroker(t, config)
}

function redisTarget (url: string, emitter?: 'mqemitter-redis'): Target {
  return {
    name: emitter === undefined ? 'cluster node (Redis)' : `cluster node (Redis, ${emitter})`,
    cluster: true,
    // Each broker gets its own key prefix: brokers of different tests never share sessions,
    // retained messages or channels, as if each had its own Redis.
    broker: async (t, config = {}) => await startBroker(t, { ...config, redis: { url, keyPrefix: `${uniqueId('t')}:`, ...(emitter === undefined ? {} : { emitter }), ...config.redis } })
  }
}

/**
 * Runs `body` once per target, inside a subtest named after the target, with a shared broker.
 * Redis is started once per target. `mqemitterRedis` adds a cluster node on mqemitter-redis
 * (for the tests of topic matching, which that emitter does partly in Redis). `level` 5: the raw
 * clients speak MQTT 5.0.
 */
export function forEachTarget (body: (t: Tap, env: TargetEnv) => void | Promise<void>, { mqemitterRedis = false, level = 4 as ProtocolLevel } = {}): void {
  const kinds = mqemitterRedis ? ['memory', 'redis', 'mqemitter-redis'] as const : ['memory', 'redis'] as const
  for (const kind of kinds) {
    const name = kind === 'memory' ? memory.name : kind === 'redis' ? 'cluster node (Redis)' : 'cluster node (Redis, mqemitter-redis)'
    tap.test(name, async (t) => {
      const target = kind === 'memory' ? memory : redisTarget((await startRedis(t)).url, kind === 'redis' ? undefined : kind)
      const broker = await target.broker(t)
      const raw = async (t: Teardown, b: BrokerHandle = broker): Promise<RawClient> => await RawClient.tcp(t, b.addresses.mqtt.port, level)
      const connected = async (t: Teardown, options: Parameters<RawClient['connect']>[0] = {}, b: BrokerHandle = broker): Promise<RawClient> => {
        const client = await raw(t, b)
        const connack = await client.connect(options)
        const code = level === 5 ? connack.reasonCode : connack.returnCode
        if (code !== 0) throw new Error(`CONNACK ${code}`)
        return client
      }
      await body(t, { target, broker, raw, connected })
    })
  }
}

/** tap's Test object, as a test function receives it. */
export type Tap = Parameters<Parameters<typeof tap.test>[0]>[0]
