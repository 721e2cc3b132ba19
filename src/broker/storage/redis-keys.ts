// The names of the broker's own Redis keys, one rule for every concern (docs/cluster.md, "Keys
// on a Redis Cluster", lists them). A Redis Cluster places a key by its hash tag, the part
// between the first `{` and the next `}`, and refuses a MULTI, a script or a multi-key command
// whose keys sit on different slots. So every key of a concern that scripts touch together
// shares the concern's tag (`shared`), and keys that belong to one node or client, and that
// only that owner's operations touch together, share the owner's tag (`owned`), which spreads
// the owners over the masters. On one Redis the names carry no tag: they stay those of
// earlier releases, so an upgrade finds its sessions, routes and ledgers where it left them.

export class RedisKeys {
  /**
   * @param prefix prepended to every name (redis.keyPrefix), or '' on a connection whose
   *   ioredis `keyPrefix` adds it
   * @param cluster whether the keys live on a Redis Cluster (names carry hash tags)
   */
  constructor (readonly prefix: string, readonly cluster: boolean) {}

  /** A key of a concern whose keys all live on one slot: `<concern>:<parts>`, tag `{<concern>}`. */
  shared (concern: string, ...parts: string[]): string {
    const head = this.cluster ? `{${concern}}` : concern
    return [`${this.prefix}${head}`, ...parts].join(':')
  }

  /** A key of one owner (a node, a client): `<concern>:<owner>:<parts>`, tag `{<owner>}`. */
  owned (concern: string, owner: string, ...parts: string[]): string {
    // an owner's name could hold braces: only its first `{...}` would be hashed, so encode them
    const tag = this.cluster ? `{${owner.replaceAll('{', '%7B').replaceAll('}', '%7D')}}` : owner
    return [`${this.prefix}${concern}`, tag, ...parts].join(':')
  }

  /** A pub/sub channel (a Redis Cluster delivers every channel on every node: no tag). */
  channel (concern: string, name: string): string {
    return `${this.prefix}${concern}:${name}`
  }
}
