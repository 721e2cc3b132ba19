// Which topics keep history (config history.topics), matched once per topic name: a publish
// on a topic without history costs one Map lookup (docs/history.md).
import { levelSeparator, levelsMatch } from '../../acl/topic-grammar.js'

export interface HistoryTopicConfig {
  filter: string
  /** Messages kept per topic; older ones are trimmed. */
  size: number
  /** Messages older than this are not returned and are trimmed; 0 = kept until pushed out by size. */
  ttlSeconds: number
}

// Topic names remembered with their answer; past this the memo starts afresh (bounded memory).
const maxRemembered = 10_000

export class HistoryTopics {
  private readonly compiled: Array<{ levels: string[], config: HistoryTopicConfig }>
  private readonly remembered = new Map<string, HistoryTopicConfig | null>()

  constructor (readonly configs: readonly HistoryTopicConfig[]) {
    this.compiled = configs.map((config) => ({ levels: config.filter.split(levelSeparator), config }))
  }

  get enabled (): boolean {
    return this.compiled.length > 0
  }

  /** The history settings of topic name `topic` (the first filter that matches), or null. */
  of (topic: string): HistoryTopicConfig | null {
    const known = this.remembered.get(topic)
    if (known !== undefined) return known
    // $ topics never match a wildcard at the first level [MQTT-4.7.2-1], and no filter starts with $
    const found = this.compiled.find(({ levels }) => levelsMatch(levels, topic))?.config ?? null
    if (this.remembered.size >= maxRemembered) this.remembered.clear()
    this.remembered.set(topic, found)
    return found
  }
}
