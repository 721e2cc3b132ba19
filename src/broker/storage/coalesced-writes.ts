// One socket write per event-loop turn for a Redis connection, whatever the number of commands:
// ioredis writes each command as it is sent, one syscall each, and a reconnect storm sends
// thousands a second (a resumed session is about ten commands: its client-id claim, session,
// subscriptions, routes, will, offline queue), which made those writes the largest single cost
// of a survivor. Corked until the end of the turn, the commands go out together (writev), in
// the order they were sent: nothing else about the connection changes, and a command waits
// at most for the rest of the turn that sent it.
import type { Socket } from 'node:net'
import type { Cluster, Redis } from 'ioredis'
import type { RedisClient } from './redis-clients.js'

/** Coalesces the writes of `socket` per event-loop turn. */
function corkPerTurn (socket: Socket): void {
  const write = socket.write
  let corked = false
  const uncork = (): void => {
    corked = false
    socket.uncork()
  }
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>): boolean {
    if (!corked) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    return write.apply(this, args)
  } as Socket['write']
}

/** Each socket that `connection` opens (a new one on each reconnect) coalesces its writes per turn. */
function coalesceConnection (connection: Redis): void {
  connection.on('connect', () => {
    const socket = connection.stream as Socket | undefined
    if (socket !== undefined) corkPerTurn(socket)
  })
}

/** `client`'s commands leave in one write per event-loop turn: on a Cluster, per node connection. */
export function coalesceWrites (client: RedisClient): RedisClient {
  if ('isCluster' in client && client.isCluster) (client as Cluster).on('+node', (node: Redis) => coalesceConnection(node))
  else coalesceConnection(client as Redis)
  return client
}
