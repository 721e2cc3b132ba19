// Retained messages for the admin API: listed by filter, read, deleted one at a time or by
// filter. They are read from the persistence (shared by the nodes with Redis) through its own
// retained stream, which scans the store in chunks (HSCAN) and yields between them, and every
// call stops after a bounded number of messages: no call scans the whole store in one turn.
// A deletion clears the stored message and its entry in the retained caps' ledger; it is not
// published (subscribers see nothing, as when a retained message is replaced [MQTT-3.3.1-10]).
import type { AedesPublishPacket } from 'aedes'
import { isUtf8 } from 'node:buffer'
import type { RetainedLedger } from '../storage/retained-quota.js'

export interface RetainedStore {
  createRetainedStreamCombi: (patterns: string[]) => AsyncIterable<AedesPublishPacket>
  storeRetained: (packet: { topic: string, payload: Buffer, qos: number, retain: boolean, cmd: 'publish' }) => Promise<unknown>
}

export interface RetainedSummary {
  topic: string
  qos: number
  bytes: number
  /** The payload's first bytes, as text when they are UTF-8, else base64. */
  preview: string
  encoding: 'utf8' | 'base64'
}

export interface RetainedMessage extends Omit<RetainedSummary, 'preview'> {
  payload: string
}

const previewBytes = 200
/** Messages one delete-by-filter call clears at most; the answer says whether more match. */
export const maxDeletesPerCall = 10_000

function encoded (payload: Buffer): { text: string, encoding: 'utf8' | 'base64' } {
  return isUtf8(payload) ? { text: payload.toString('utf8'), encoding: 'utf8' } : { text: payload.toString('base64'), encoding: 'base64' }
}

const asBuffer = (payload: Buffer | string): Buffer => typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload)

export class RetainedAdmin {
  constructor (private readonly store: RetainedStore, private readonly ledger: RetainedLedger) {}

  /** The retained messages matching `filter`: `limit` of them after the first `offset`, and whether more match. */
  async list (filter: string, offset: number, limit: number): Promise<{ messages: RetainedSummary[], more: boolean }> {
    const messages: RetainedSummary[] = []
    let seen = 0
    for await (const packet of this.store.createRetainedStreamCombi([filter])) {
      if (seen++ < offset) continue
      if (messages.length === limit) return { messages, more: true }
      const payload = asBuffer(packet.payload)
      // a cut may split a UTF-8 sequence: the preview is of whole characters when it is text
      const { text, encoding } = encoded(payload)
      messages.push({ topic: packet.topic, qos: packet.qos, bytes: payload.length, preview: encoding === 'utf8' ? text.slice(0, previewBytes) : payload.subarray(0, previewBytes).toString('base64'), encoding })
    }
    return { messages, more: false }
  }

  /** The retained message of `topic` (a topic name, no wildcard), or null. */
  async read (topic: string): Promise<RetainedMessage | null> {
    for await (const packet of this.store.createRetainedStreamCombi([topic])) {
      if (packet.topic !== topic) continue
      const payload = asBuffer(packet.payload)
      const { text, encoding } = encoded(payload)
      return { topic, qos: packet.qos, bytes: payload.length, payload: text, encoding }
    }
    return null
  }

  /** Deletes the retained message of `topic`; whether there was one. */
  async delete (topic: string): Promise<boolean> {
    if (await this.read(topic) === null) return false
    await this.clear(topic)
    return true
  }

  /** Deletes the retained messages matching `filter`, at most maxDeletesPerCall; how many, and whether more match. */
  async deleteMatching (filter: string): Promise<{ deleted: number, more: boolean }> {
    const topics: string[] = []
    for await (const packet of this.store.createRetainedStreamCombi([filter])) {
      if (topics.length === maxDeletesPerCall) return { deleted: await this.clearAll(topics), more: true }
      topics.push(packet.topic)
    }
    return { deleted: await this.clearAll(topics), more: false }
  }

  private async clearAll (topics: string[]): Promise<number> {
    for (const topic of topics) await this.clear(topic)
    return topics.length
  }

  private async clear (topic: string): Promise<void> {
    // an empty payload clears a retained message [MQTT-3.3.1-10], in the store and in the caps
    await this.store.storeRetained({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true })
    await this.ledger({ owner: null, topic, bytes: 0, maxCount: undefined, maxBytes: undefined })
  }
}
