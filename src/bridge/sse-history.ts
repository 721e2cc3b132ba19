// History on an SSE stream: each event's `id:` is the stream's position in every history topic it
// delivered (a cursor), a reader reconnecting with Last-Event-ID resumes from it, and a message
// at or below the position already sent on its topic is not sent again (docs/history.md).
import type { History } from '../broker/history/history.js'
import type { HistoryMessage, HistoryPosition } from '../broker/history/history-store.js'

// Topics a cursor remembers (the least recently updated is forgotten): ids stay short.
export const maxCursorTopics = 32
// History pages read to resume one topic; a reader further behind is told to resync.
const maxResumePages = 10

/** `epoch:offset:topic` per topic, space-separated; the topic URI-encoded (no space, no colon). */
export function formatCursor (positions: ReadonlyMap<string, HistoryPosition>): string {
  return [...positions].map(([topic, { epoch, offset }]) => `${epoch}:${offset}:${encodeURIComponent(topic)}`).join(' ')
}

/** The positions of a Last-Event-ID; malformed entries (or a plain counter id) are left out. */
export function parseCursor (id: string): Map<string, HistoryPosition> {
  const positions = new Map<string, HistoryPosition>()
  for (const entry of id.split(' ').slice(0, maxCursorTopics)) {
    const match = /^([A-Za-z0-9_-]{1,64}):(\d{1,15}):(.+)$/.exec(entry)
    if (match === null) continue
    try {
      positions.set(decodeURIComponent(match[3] as string), { epoch: match[1] as string, offset: Number(match[2]) })
    } catch {
      // not URI-encoded: not ours
    }
  }
  return positions
}

/** The positions one stream has sent, per history topic. */
export class StreamPositions {
  private readonly sent = new Map<string, HistoryPosition>()
  private id: string | null = null

  /** The cursor for the next event's id; null until a history message was sent. */
  cursor (): string | null {
    return this.id
  }

  /** Whether a message at `position` of `topic` is new to this stream (it is then recorded as sent). */
  admit (topic: string, position: HistoryPosition): boolean {
    const last = this.sent.get(topic)
    if (last !== undefined && last.epoch === position.epoch && position.offset <= last.offset) return false
    this.sent.delete(topic)
    this.sent.set(topic, position)
    if (this.sent.size > maxCursorTopics) this.sent.delete(this.sent.keys().next().value as string)
    this.id = formatCursor(this.sent)
    return true
  }
}

export type ResumeOutcome = { topic: string, recovered: true, epoch: string, messages: HistoryMessage[] } | { topic: string, recovered: false, epoch: string, offset: number }

/**
 * What a stream resuming at `from` (topic by topic; only the ones `readable` lets through)
 * missed: every message after its position, oldest first, or "not recovered" for a topic whose
 * history no longer holds them (or whose epoch changed): the reader resyncs that topic.
 */
export async function resume (history: History, from: ReadonlyMap<string, HistoryPosition>, readable: (topic: string) => boolean): Promise<ResumeOutcome[]> {
  const outcomes: ResumeOutcome[] = []
  for (const [topic, position] of from) {
    if (!history.keeps(topic) || !readable(topic)) continue
    const messages: HistoryMessage[] = []
    let since = position.offset
    let outcome: ResumeOutcome | null = null
    for (let page = 0; page < maxResumePages && outcome === null; page++) {
      const result = await history.read({ topic, limit: history.maxReadLimit, since, epoch: position.epoch }, 'sse')
      if (result.recovered !== true) outcome = { topic, recovered: false, epoch: result.epoch, offset: result.offset }
      else {
        messages.push(...result.messages)
        since = messages.at(-1)?.offset ?? since
        if (since >= result.offset) outcome = { topic, recovered: true, epoch: result.epoch, messages }
      }
    }
    outcomes.push(outcome ?? { topic, recovered: false, epoch: position.epoch, offset: since })
  }
  return outcomes
}
