// Measuring every target in the same stretch of time: each target's part of a scenario is a
// stream that runs one slice at a time, and the targets take turns, slice after slice, so that
// the machine's spells of noise fall on all of them alike.
import type { ScenarioContext, ScenarioOutcome } from './types.js'

/** What a scenario runs against one target, slice by slice. */
export interface SlicedStream<S> {
  readonly context: ScenarioContext
  slice: (slice: S) => Promise<void>
  outcome: () => ScenarioOutcome
}

/**
 * Opens every target's stream, then runs each slice against every target in turn; a target
 * that fails (to open or in a slice) drops out with its error. One result per context, in order.
 */
export async function interleave<S extends { phase: string }> (contexts: ScenarioContext[], open: (context: ScenarioContext) => Promise<SlicedStream<S>>, slices: S[]): Promise<Array<ScenarioOutcome | Error>> {
  const label = (context: ScenarioContext, phase: string): string => contexts.length === 1 ? phase : `${phase} · ${context.targetName}`
  const results: Array<ScenarioOutcome | Error> = []
  const streams: Array<SlicedStream<S> | null> = []
  for (const context of contexts) {
    context.status(label(context, 'connecting'))
    try {
      streams.push(await open(context))
      results.push(new Error('not measured'))
    } catch (err) {
      streams.push(null)
      results.push(err as Error)
    }
  }
  for (const slice of slices) {
    for (const [i, stream] of streams.entries()) {
      if (stream === null) continue
      stream.context.status(label(stream.context, slice.phase))
      try {
        await stream.slice(slice)
      } catch (err) {
        streams[i] = null
        results[i] = err as Error
      }
    }
  }
  for (const [i, stream] of streams.entries()) {
    if (stream !== null) results[i] = stream.outcome()
  }
  return results
}
