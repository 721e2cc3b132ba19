// Stream history on the client side (docs/history.md): every message of a history topic
// carries its position (`offset` and `epoch` user properties, MQTT 5); the client remembers the
// last one per topic and, after each reconnect or on a gap (offset N+2 after N), reads what it
// missed over HTTP while holding the live messages of that topic, hands the missed ones over
// oldest first, then the held ones past them: each message once, in order. A history that no
// longer holds the gap (or lost it: another epoch) is said with a `recovered: false` event.
import type { MessageMeta, MessageProperties, QoS } from './subscriptions.js'

export interface HistoryPosition {
  epoch: string
  offset: number
}

/** One message of a history read. */
export interface HistoryEntry {
  offset: number
  topic: string
  /** The payload's bytes (the broker sends text, or base64 for anything else). */
  payload: Uint8Array
  qos: QoS
  /** ms since the epoch, when the broker stored it */
  time: number
  properties?: MessageProperties
}

export interface HistoryPage {
  epoch: string
  /** The topic's latest offset. */
  offset: number
  /** With `since`: false when messages after it are gone (or the epoch changed): resync. */
  recovered?: boolean
  /** Oldest first. */
  messages: HistoryEntry[]
}

export interface HistoryQuery {
  /** Default 100; at most the broker's history.maxReadLimit. */
  limit?: number
  /** Messages after this offset; without it, the newest `limit`. */
  since?: number
  /** The epoch `since` belongs to. */
  epoch?: string
}

/** Said for each recovery: after a reconnect, or after a gap while connected. */
export interface RecoveryEvent {
  topic: string
  /** false: messages were missed that the history no longer has; reload the state (e.g. history()). */
  recovered: boolean
  /** The topic's position after it. */
  epoch: string
  offset: number
  /** Messages handed over by it. */
  messages: number
  /** Why it failed, when it was not the history's answer (e.g. the read failed). */
  reason?: string
}

export type HistoryReader = (topic: string, query: HistoryQuery) => Promise<HistoryPage>

// History pages read for one recovery; further behind is not recovered.
const maxRecoveryPages = 20
const recoveryPageSize = 1000

/** The position a message carries, if it is of a history topic (an MQTT 3.1.1 connection carries none). */
export function positionOf (properties: MessageProperties | undefined): HistoryPosition | undefined {
  const user = properties?.userProperties
  const offset = user?.offset
  const epoch = user?.epoch
  if (typeof offset !== 'string' || typeof epoch !== 'string' || !/^\d+$/.test(offset)) return undefined
  return { epoch, offset: Number(offset) }
}

const fromBase64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0))

/** A message of the broker's JSON history answer, as bytes. */
export function historyEntry (json: { offset: number, topic: string, payload: string, encoding: string, qos: number, time: number, properties?: MessageProperties & { correlationData?: unknown } }): HistoryEntry {
  const payload = json.encoding === 'base64' ? fromBase64(json.payload) : new TextEncoder().encode(json.payload)
  const { correlationData, ...rest } = json.properties ?? {}
  const properties: MessageProperties | undefined = json.properties === undefined
    ? undefined
    : typeof correlationData === 'string' ? { ...rest, correlationData: fromBase64(correlationData) } : rest
  return { offset: json.offset, topic: json.topic, payload, qos: json.qos as QoS, time: json.time, ...(properties === undefined ? {} : { properties }) }
}

export class Recovery {
  private readonly positions = new Map<string, HistoryPosition>()
  /** Topics being recovered, with their live messages held meanwhile. */
  private readonly holding = new Map<string, MessageMeta[]>()

  constructor (
    private readonly read: HistoryReader,
    private readonly dispatch: (message: MessageMeta) => void,
    private readonly onRecovery: (event: RecoveryEvent) => void
  ) {}

  /** A live message: handed over once, in order; a gap before it is recovered first. */
  receive (message: MessageMeta): void {
    const at = positionOf(message.properties)
    if (at === undefined) return this.dispatch(message)
    const held = this.holding.get(message.topic)
    if (held !== undefined) {
      held.push(message)
      return
    }
    const last = this.positions.get(message.topic)
    if (last !== undefined && last.epoch === at.epoch) {
      if (at.offset <= last.offset) return
      if (at.offset > last.offset + 1) {
        // a message missed while connected (e.g. QoS 0 shed by the broker): read it first
        this.holding.set(message.topic, [message])
        void this.recover(message.topic, last)
        return
      }
    }
    this.accept(message, at)
  }

  /**
   * A new connection: the live messages of every topic with a known position are held from now
   * on; once `subscribed` (the SUBACKs: nothing published later can be missed), what was
   * missed is read, then the held ones follow. `wanted` says which topics are still subscribed.
   */
  reconnected (subscribed: Promise<void>, wanted: (topic: string) => boolean): void {
    const topics = [...this.positions].filter(([topic]) => wanted(topic) && !this.holding.has(topic))
    for (const [topic] of topics) this.holding.set(topic, [])
    void subscribed.then(() => {
      for (const [topic, position] of topics) void this.recover(topic, position)
    }, () => {
      for (const [topic] of topics) this.release(topic)
    })
  }

  /** Forgets the position of topics no longer wanted (unsubscribed). */
  forget (wanted: (topic: string) => boolean): void {
    for (const topic of this.positions.keys()) if (!wanted(topic)) this.positions.delete(topic)
  }

  private accept (message: MessageMeta, at: HistoryPosition): void {
    this.positions.set(message.topic, at)
    this.dispatch(message)
  }

  private async recover (topic: string, from: HistoryPosition): Promise<void> {
    let delivered = 0
    let event: RecoveryEvent | null = null
    try {
      let since = from.offset
      for (let page = 0; page < maxRecoveryPages && event === null; page++) {
        const answer = await this.read(topic, { since, epoch: from.epoch, limit: recoveryPageSize })
        if (answer.recovered !== true) {
          // from here on, the topic's live messages are new to the app
          this.positions.set(topic, { epoch: answer.epoch, offset: answer.offset })
          event = { topic, recovered: false, epoch: answer.epoch, offset: answer.offset, messages: delivered }
          break
        }
        for (const entry of answer.messages) {
          this.accept({ topic, retained: false, qos: entry.qos, payload: entry.payload, properties: { ...entry.properties, userProperties: { ...entry.properties?.userProperties, offset: String(entry.offset), epoch: answer.epoch } } }, { epoch: answer.epoch, offset: entry.offset })
          delivered++
          since = entry.offset
        }
        if (answer.messages.length === 0 || since >= answer.offset) event = { topic, recovered: true, epoch: answer.epoch, offset: since, messages: delivered }
      }
      event ??= { topic, recovered: false, epoch: from.epoch, offset: since, messages: delivered, reason: `more than ${maxRecoveryPages * recoveryPageSize} messages behind` }
    } catch (err) {
      const position = this.positions.get(topic) ?? from
      event = { topic, recovered: false, ...position, messages: delivered, reason: (err as Error).message }
      // what is held now is taken as new: nothing before it is known to be missing any more
      this.positions.delete(topic)
    }
    this.onRecovery(event)
    this.release(topic)
  }

  private release (topic: string): void {
    const held = this.holding.get(topic) ?? []
    this.holding.delete(topic)
    for (const message of held) this.receive(message)
  }
}
