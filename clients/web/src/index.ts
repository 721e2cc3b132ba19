// realtime.js: the browser SDK of realtime-broker. Served by the broker at /sdk/realtime.js.
import { RealtimeClient, type RealtimeOptions } from './client.js'

export { RealtimeClient }
export type { ConnectionState, PublishOptions, RealtimeOptions, StateChange, SubscribeOptions, Unsubscribe } from './client.js'
export type { MessageHandler, MessageMeta, MessageProperties, QoS } from './subscriptions.js'
export type { ProtocolVersion } from './protocol.js'
export type { TokenProvider } from './token.js'
export type { BackoffOptions } from './backoff.js'
export { RealtimeError, type RealtimeErrorCode } from './errors.js'
export { watchPresence, type PresenceState, type WatchPresenceOptions } from './presence.js'
export { PresenceRoster } from './presence-roster.js'
export { TypingIndicator, type TypingMessage, type TypingOptions } from './typing.js'
export { TypingRoster } from './typing-roster.js'
export { positionOf, type HistoryEntry, type HistoryPage, type HistoryPosition, type HistoryQuery, type RecoveryEvent } from './history.js'
export { syncState, type StateSync, type StateSyncOptions } from './state-sync.js'

/** Starts connecting at once; watch `client.on('state', ...)` or await `client.whenOnline()`. */
export function connect (options: RealtimeOptions = {}): RealtimeClient {
  return new RealtimeClient(options)
}
