// Topic patterns of grants: MQTT filters with the placeholders %u (user) and %c (client id).
// Pure functions: compile once per client, then match topics (topic-grammar's levelsMatch)
// and filters (covers) by levels.
import { isPlainLevel, levelSeparator, multiLevelWildcard, singleLevelWildcard } from './topic-grammar.js'

/** A grant pattern split into levels, placeholders substituted. */
export type CompiledPattern = readonly string[]

export interface PlaceholderValues {
  user: string | null
  clientId: string
}

/**
 * Why a value may not stand in for a placeholder: a `+`, `#`, `/` or NUL would widen the
 * pattern (`devices/%c/#` with client id `#` would become `devices/#/#`), and an empty value
 * would leave an empty level. Such identities are refused at connect.
 */
export function unsafePlaceholderValue (value: string | null): string | null {
  if (value === null || value === '') return 'is empty'
  if (!isPlainLevel(value)) return 'contains one of + # / or NUL'
  return null
}

/** Substitutes placeholders; returns null if the pattern needs a value that is unsafe. */
export function compilePattern (pattern: string, values: PlaceholderValues): CompiledPattern | null {
  const levels = pattern.split(levelSeparator)
  const out: string[] = []
  for (const level of levels) {
    if (level === '%u' || level === '%c') {
      const value = level === '%u' ? values.user : values.clientId
      if (unsafePlaceholderValue(value) !== null) return null
      out.push(value as string)
    } else {
      out.push(level)
    }
  }
  return out
}

/**
 * Does `grant` cover the filter `filter`, i.e. does every topic the filter can match also
 * match the grant? A grant of `chat/room1/#` covers `chat/room1/+/typing`, not `chat/#`.
 */
export function covers (grant: CompiledPattern, filter: string): boolean {
  const levels = filter.split(levelSeparator)
  const dollar = filter.startsWith('$')
  for (let i = 0; i < grant.length; i++) {
    const g = grant[i] as string
    const f = levels[i]
    if (g === multiLevelWildcard) {
      // `a/#` also matches `a`: the filter may stop one level early
      return !(i === 0 && dollar)
    }
    if (f === undefined) return false
    if (f === multiLevelWildcard) return false // the filter reaches deeper than a non-# grant level
    if (g === singleLevelWildcard) {
      if (i === 0 && dollar) return false
      continue
    }
    if (f === singleLevelWildcard || f !== g) return false
  }
  if (levels.length === grant.length) return true
  // the filter `x/#` also matches `x`, which the grant `x` covers, but not `x/y`
  return false
}
