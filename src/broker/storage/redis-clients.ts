// The one place that builds the broker's Redis connections: an ioredis `Cluster` when the
// config names a Redis Cluster (`redis.cluster`, or a `redis+cluster://` URL), a `Redis`
// otherwise (one server, or a master found through Sentinel).
import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { BrokerConfig } from '../config/config-schema.js'
import { RedisKeys } from './redis-keys.js'

/** A connection to one Redis or to a Redis Cluster: the commands the broker uses are the same. */
export type RedisClient = Redis | Cluster

type RedisConfig = NonNullable<BrokerConfig['redis']>

const failoverRetryMs = 200

/** `redis+cluster://[user:password@]host:port,host:port` (`rediss+cluster://` for TLS). */
const clusterUrl = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#]+)\/?$/

/** The seed nodes of the Redis Cluster the config names, or null for one Redis. */
export function clusterNodes (redis: Pick<RedisConfig, 'url' | 'cluster'>): ClusterNode[] | null {
  const seeds = redis.cluster ?? clusterUrl.exec(redis.url ?? '')?.[3]?.split(',')
  if (seeds === undefined) return null
  return seeds.map((node) => {
    const colon = node.lastIndexOf(':')
    return { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) }
  })
}

/** Names the broker's keys for this Redis (hash-tagged on a Cluster), with `prefix` added. */
export function redisKeys (redis: Pick<RedisConfig, 'url' | 'cluster'>, prefix: string): RedisKeys {
  return new RedisKeys(prefix, clusterNodes(redis) !== null)
}

/**
 * A factory of connections to the configured Redis, each with `options` and its own extras.
 * On a Cluster, `keyPrefix` and auto-pipelining are the Cluster's own options; the rest
 * applies to its connection to each node.
 */
export function redisConnector (redis: RedisConfig, options: RedisOptions): (extra?: RedisOptions) => RedisClient {
  const nodes = clusterNodes(redis)
  if (nodes !== null) {
    return ({ keyPrefix, enableAutoPipelining, ...extra } = {}) => new Cluster(nodes, {
      ...(keyPrefix === undefined ? {} : { keyPrefix }),
      enableAutoPipelining: enableAutoPipelining ?? false,
      clusterRetryStrategy: options.retryStrategy as ClusterOptions['clusterRetryStrategy'],
      // A command whose master is lost is retried every 200 ms, for up to a minute, until a
      // replica has taken over its slots (cluster-node-timeout, then an election): as on one
      // Redis (maxRetriesPerRequest: null), a QoS 1/2 publish waits for storage rather than
      // fail. ioredis' default gives up after 16 tries 100 ms apart, before a failover ends.
      retryDelayOnFailover: failoverRetryMs,
      retryDelayOnClusterDown: failoverRetryMs,
      maxRedirections: Math.ceil(60_000 / failoverRetryMs),
      redisOptions: { ...credentials(redis.url), ...options, ...extra }
    })
  }
  // the schema asks for a URL unless redis.cluster is set
  const url = redis.url as string
  return (extra = {}) => redis.sentinel === undefined
    ? new Redis(url, { ...options, ...extra })
    : new Redis({ ...credentials(url), ...sentinelOptions(redis.sentinel), ...options, ...extra })
}

/** What a Redis URL says besides the host: credentials, database, TLS. */
function credentials (url: string | undefined): RedisOptions {
  if (url === undefined) return {}
  const cluster = clusterUrl.exec(url)
  // a cluster URL lists several hosts, which URL() cannot parse: give it one
  const parsed = new URL(cluster === null ? url : `${cluster[1]}://${cluster[2] === undefined ? '' : `${cluster[2]}@`}cluster`)
  const db = Number(parsed.pathname.slice(1) || 0)
  return {
    ...(parsed.username === '' ? {} : { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
    ...(Number.isInteger(db) && db > 0 ? { db } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {})
  }
}

function sentinelOptions (sentinel: NonNullable<RedisConfig['sentinel']>): RedisOptions {
  return {
    name: sentinel.name,
    sentinels: sentinel.nodes.map((node) => {
      const [host, port] = node.split(':') as [string, string]
      return { host, port: Number(port) }
    })
  }
}

