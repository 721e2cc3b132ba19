// What every helper that starts something on the loopback needs: the test's teardown to
// register the stop with, and a free port.
import { createServer } from 'node:net'

/** The part of a tap test the helpers use: each registers how to stop what it started. */
export interface Teardown { teardown: (fn: () => unknown) => void }

/** A port free on 127.0.0.1 right now (bound, read, released). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}
