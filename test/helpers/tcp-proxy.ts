// A TCP proxy the test controls, to cut a process's link to Redis (close), or blackhole it (a
// silent partition), and restore it.
import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Teardown } from './loopback.js'

export interface TcpProxy {
  port: number
  /** Drops every proxied connection and refuses new ones until restore(). */
  cut: () => void
  /**
   * A silent partition: nothing is forwarded in either direction and nothing is closed or
   * reset. The proxy stops reading both sides, so bytes in flight wait in the kernel's socket
   * buffers (then TCP flow control stops the sender), as they wait in retransmission queues
   * when a network drops every packet. New connections are accepted and held, unconnected,
   * with nothing forwarded. Only the application can notice (an unanswered command).
   */
  blackhole: () => void
  /** Ends a cut or a blackhole: held and paused connections resume where they stopped. */
  restore: () => void
  /** Connections currently proxied or held. */
  connections: () => number
}

export async function startTcpProxy (t: Teardown, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let open = true
  let silent = false
  // client sockets accepted during a blackhole, connected upstream at restore()
  const held = new Set<Socket>()
  // each proxied socket and the socket it forwards to
  const peers = new Map<Socket, Socket>()
  const track = (s: Socket): void => {
    sockets.add(s)
    s.on('close', () => { sockets.delete(s); peers.delete(s) })
    s.on('error', () => {})
  }
  const forward = (client: Socket): void => {
    const upstream = connect(targetPort, '127.0.0.1')
    track(upstream)
    peers.set(client, upstream)
    peers.set(upstream, client)
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  }
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    if (!open) {
      client.destroy()
      return
    }
    track(client)
    if (silent) {
      held.add(client)
      client.on('close', () => held.delete(client))
      return
    }
    forward(client)
    client.resume()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('proxy has no port')
  return {
    port: address.port,
    cut: () => {
      open = false
      for (const s of sockets) s.destroy()
    },
    blackhole: () => {
      silent = true
      // pause() alone does not stop a pipe that is mid-write; unpipe, and pipe again at restore
      for (const s of sockets) {
        s.unpipe()
        s.pause()
      }
    },
    restore: () => {
      open = true
      if (!silent) return
      silent = false
      for (const [s, peer] of peers) {
        if (!s.destroyed && !peer.destroyed) s.pipe(peer)
      }
      for (const client of held) {
        forward(client)
        client.resume()
      }
      held.clear()
    },
    connections: () => sockets.size
  }
}
