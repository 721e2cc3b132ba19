// Binds a server and reports the address actually taken (port 0 = any free port).
import type { Server } from 'node:net'

export interface BoundAddress {
  host: string
  port: number
}

// Connections the kernel may hold for us before they are accepted (capped by net.core.somaxconn):
// Node's default of 511 overflows in a reconnect storm, and overflowed clients hang half-open.
const acceptBacklog = 4096

export function listen (server: Server, host: string, port: number): Promise<BoundAddress> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    server.once('error', onError)
    server.listen(port, host, acceptBacklog, () => {
      server.off('error', onError)
      const address = server.address()
      if (address === null || typeof address === 'string') {
        reject(new Error(`listener on ${host}:${port} has no TCP address`))
        return
      }
      resolve({ host: address.address, port: address.port })
    })
  })
}

/** Stops accepting; resolves once every connection the server holds has ended. */
export function closeServer (server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve()
      return
    }
    server.close(() => resolve())
  })
}
