// Where presence lives. The broker publishes a retained `$presence/<user>` record per user;
// without it, each connection that announces itself keeps a retained
// `presence/<user>/<clientId>` entry that its last will removes.
import { isPlainLevel } from '../../../src/acl/topic-grammar.js'

export const brokerPresencePrefix = '$presence'
export const fallbackPresencePrefix = 'presence'

export function connectionEntryTopic (user: string, clientId: string): string {
  return `${fallbackPresencePrefix}/${user}/${clientId}`
}

/** Whether a name can stand as one topic level: not empty, no separators, wildcards or NUL. */
export function isTopicLevel (name: string): boolean {
  return name !== '' && isPlainLevel(name)
}
