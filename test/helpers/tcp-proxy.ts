// A TCP proxy the test controls, to cut a process's link to Redis and restore it.
import { connect, createServer, type Server, type Socket } from 'node:net'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface TcpProxy {
  port: number
  /** Drops every proxied connection and refuses new ones until restore(). */
  cut: () => void
  restore: () => void
}

export async function startTcpProxy (t: Teardown, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let open = true
  const server: Server = createServer((client) => {
    if (!open) {
      client.destroy()
      return
    }
    const upstream = connect(targetPort, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    client.pipe(upstream).pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
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
    restore: () => { open = true }
  }
}
