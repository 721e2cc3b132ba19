// The Shared Subscription filter `$share/<ShareName>/<filter>` (MQTT 5.0 section 4.8.2, accepted
// from MQTT 3.1 and 3.1.1 clients too, as Mosquitto, EMQX and HiveMQ do).
import { multiLevelWildcard, singleLevelWildcard } from '../../acl/topic-grammar.js'

export const sharePrefix = '$share/'

export interface SharedFilter {
  shareName: string
  /** the Topic Filter the group subscribes to */
  filter: string
}

/** Whether a subscription's filter is a Shared Subscription's (valid or not). */
export function isShared (topic: string): boolean {
  return topic.startsWith(sharePrefix)
}

/**
 * The ShareName and filter of `$share/<ShareName>/<filter>`, or null when it breaks the rules:
 * [MQTT-4.8.2-1] a ShareName of at least one character, without '+' or '#' (a '/' ends it);
 * [MQTT-4.8.2-2] followed by '/' and a Topic Filter.
 */
export function parseSharedFilter (topic: string): SharedFilter | null {
  if (!isShared(topic)) return null
  const end = topic.indexOf('/', sharePrefix.length)
  if (end <= sharePrefix.length || end === topic.length - 1) return null
  const shareName = topic.slice(sharePrefix.length, end)
  if (shareName.includes(singleLevelWildcard) || shareName.includes(multiLevelWildcard)) return null
  return { shareName, filter: topic.slice(end + 1) }
}
