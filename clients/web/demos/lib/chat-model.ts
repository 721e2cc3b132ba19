// The chat demo's data: messages, the room history they form, and the topics and grants of a room.
import type { Grants } from './session.js'

export interface ChatMessage {
  id: string
  user: string
  text: string
  ts: number
}

/** Messages a room shows: the newest, read from the broker's history of the room (history.topics). */
export const historyLength = 50

export const roomTopics = (room: string): { messages: string, typing: string } => ({
  messages: `chat/rooms/${room}/messages`,
  typing: `chat/rooms/${room}/typing`
})

/** What a user's token allows: these rooms, their own presence entries, everyone's presence. */
export function chatGrants (user: string, rooms: string[]): Grants {
  return {
    pub: [...rooms.flatMap((room) => Object.values(roomTopics(room))), `presence/${user}/+`],
    sub: [...rooms.map((room) => `chat/rooms/${room}/+`), 'presence/+/+', '$presence/+']
  }
}

export function isChatMessage (value: unknown): value is ChatMessage {
  if (typeof value !== 'object' || value === null) return false
  const { id, user, text, ts } = value as Record<string, unknown>
  return typeof id === 'string' && typeof user === 'string' && typeof text === 'string' && typeof ts === 'number'
}

/** Adds a message in time order, once (adding it again changes nothing), keeping the last ones. */
export function addMessage (history: ChatMessage[], message: unknown): ChatMessage[] {
  if (!isChatMessage(message) || history.some((m) => m.id === message.id)) return history
  return [...history, message].sort((a, b) => a.ts - b.ts || a.id.localeCompare(b.id)).slice(-historyLength)
}

/** A JSON payload as a value; null when it is not JSON (addMessage skips it). */
export function parseMessage (payload: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(payload)) as unknown
  } catch {
    return null
  }
}

/** Messages read from the room's history (JSON payloads), merged with those shown: each once. */
export function mergeHistory (history: ChatMessage[], read: unknown[]): ChatMessage[] {
  return read.reduce<ChatMessage[]>(addMessage, history)
}
