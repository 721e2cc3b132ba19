// The MQTT 3.1.1 topic grammar (section 4.7), written once: topic names, topic filters and
// how a filter matches a name. The broker's frame guard, the ACL, the HTTP side and the
// browser SDK (clients/web, bundled by esbuild) all import it, so it imports nothing: no Node.

export const levelSeparator = '/'
export const singleLevelWildcard = '+'
export const multiLevelWildcard = '#'
const nul = '\u0000'

/** The same characters as UTF-8 bytes (all ASCII), for the frame guard's check in place on bytes. */
export const levelSeparatorByte = 0x2f
export const singleLevelWildcardByte = 0x2b
export const multiLevelWildcardByte = 0x23
export const nulByte = 0x00

/** Why `name` is not a valid topic name [MQTT-4.7.3-1] [MQTT-3.3.2-2] [MQTT-4.7.3-2], or null. */
export function topicNameViolation (name: string): string | null {
  if (name.length === 0) return 'empty topic name [MQTT-4.7.3-1]'
  if (name.includes(singleLevelWildcard) || name.includes(multiLevelWildcard)) return `wildcard in the topic name ${JSON.stringify(name)} [MQTT-3.3.2-2]`
  if (name.includes(nul)) return 'U+0000 in a topic name [MQTT-4.7.3-2]'
  return null
}

/** Why `filter` is not a valid topic filter [MQTT-4.7.3-1] [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-2], or null. */
export function topicFilterViolation (filter: string): string | null {
  if (filter.length === 0) return 'empty topic filter [MQTT-4.7.3-1]'
  const levels = filter.split(levelSeparator)
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string
    if (level.includes(multiLevelWildcard) && (level !== multiLevelWildcard || i !== levels.length - 1)) return `'#' not alone in the last level of ${JSON.stringify(filter)} [MQTT-4.7.1-2]`
    if (level.includes(singleLevelWildcard) && level !== singleLevelWildcard) return `'+' not alone in a level of ${JSON.stringify(filter)} [MQTT-4.7.1-3]`
  }
  if (filter.includes(nul)) return 'U+0000 in a topic filter [MQTT-4.7.3-2]'
  return null
}

export const isValidTopicName = (name: string): boolean => topicNameViolation(name) === null
export const isValidTopicFilter = (filter: string): boolean => topicFilterViolation(filter) === null

/** Whether `value` can stand as one level of a name or filter as it is: no separator, wildcard or NUL. */
export function isPlainLevel (value: string): boolean {
  return !value.includes(levelSeparator) && !value.includes(singleLevelWildcard) && !value.includes(multiLevelWildcard) && !value.includes(nul)
}

/** Does the filter split into `filterLevels` match the topic name `topic`? [MQTT-4.7.1-2] [MQTT-4.7.1-3] */
export function levelsMatch (filterLevels: readonly string[], topic: string): boolean {
  const levels = topic.split(levelSeparator)
  // Wildcards at the first level never match topics starting with $ [MQTT-4.7.2-1]
  const dollar = topic.startsWith('$')
  for (let i = 0; i < filterLevels.length; i++) {
    const level = filterLevels[i] as string
    // `a/#` also matches `a`, its parent level
    if (level === multiLevelWildcard) return !(i === 0 && dollar)
    const topicLevel = levels[i]
    if (topicLevel === undefined) return false
    if (level === singleLevelWildcard) {
      if (i === 0 && dollar) return false
      continue
    }
    if (level !== topicLevel) return false
  }
  return levels.length === filterLevels.length
}

/** Does the topic filter `filter` match the topic name `topic`? */
export function topicMatches (filter: string, topic: string): boolean {
  return levelsMatch(filter.split(levelSeparator), topic)
}
