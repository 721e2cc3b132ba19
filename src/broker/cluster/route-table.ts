// The cluster's route table as one node sees it: which other nodes have subscribers for a
// topic. Matching splits the topic and walks a trie (qlobber, as Aedes does); real traffic
// repeats its topics, so each answer is cached until the table changes.
import { QlobberDedup } from 'qlobber'
import { levelSeparator, multiLevelWildcard, singleLevelWildcard } from '../../acl/topic-grammar.js'

const matcherOptions = { separator: levelSeparator, wildcard_one: singleLevelWildcard, wildcard_some: multiLevelWildcard, match_empty_levels: true }
// Topics remembered at most; past it the cache starts over (bounded memory, no LRU bookkeeping).
const maxCachedTopics = 10_000

export class RouteTable {
  private readonly trie = new QlobberDedup<string>(matcherOptions)
  private readonly cache = new Map<string, readonly string[]>()

  add (filter: string, node: string): void {
    this.trie.add(filter, node)
    this.cache.clear()
  }

  remove (filter: string, node: string): void {
    this.trie.remove(filter, node)
    this.cache.clear()
  }

  clear (): void {
    this.trie.clear()
    this.cache.clear()
  }

  /** The nodes whose filters match `topic`. */
  nodesFor (topic: string): readonly string[] {
    let nodes = this.cache.get(topic)
    if (nodes === undefined) {
      nodes = [...this.trie.match(topic)]
      if (this.cache.size >= maxCachedTopics) this.cache.clear()
      this.cache.set(topic, nodes)
    }
    return nodes
  }
}
