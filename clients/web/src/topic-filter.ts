// MQTT topic filter matching, to route each incoming message to the handlers of every
// subscription whose filter matches its topic.

/** Whether `topic` matches `filter` with MQTT's `+` and `#` wildcards. */
export function topicMatches (filter: string, topic: string): boolean {
  // Wildcards at the first level never match topics starting with $ [MQTT-4.7.2-1].
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const filterLevels = filter.split('/')
  const topicLevels = topic.split('/')
  for (let i = 0; i < filterLevels.length; i++) {
    const level = filterLevels[i]
    if (level === '#') return true
    if (i >= topicLevels.length) return false
    if (level !== '+' && level !== topicLevels[i]) return false
  }
  return filterLevels.length === topicLevels.length
}

/** Whether a string is a valid topic filter: `#` only last and alone, `+` alone in its level. */
export function isValidFilter (filter: string): boolean {
  if (filter === '') return false
  const levels = filter.split('/')
  return levels.every((level, i) =>
    (level === '#' && i === levels.length - 1) || level === '+' || (!level.includes('#') && !level.includes('+')))
}
