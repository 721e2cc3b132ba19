// The load generators pick their connections' source ports (bench/load/source-ports.ts): the
// kernel's own pick, a search of the address's ports at every bind(), cost the storm's
// generator seconds of CPU on the brokers' cores.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import t from 'tap'
import { SourcePorts } from '../bench/load/source-ports.js'

t.test('ports are distinct, below the ephemeral range, and one that closed waits out a TIME_WAIT', async (t) => {
  const ports = new SourcePorts()
  const taken: number[] = []
  for (let port = ports.take(); port !== undefined; port = ports.take()) taken.push(port)
  t.equal(new Set(taken).size, taken.length, 'no port twice')
  t.ok(taken.length > 20_000, `${taken.length} ports`)
  t.ok(taken.every((port) => port >= 1024 && port < 32_768), 'below 32768')
  ports.release(taken[0])
  t.equal(ports.take(), undefined, 'a port just closed is not handed out again: the kernel picks then')
})

t.test('a connection from a loopback alias uses the port it was given', async (t) => {
  const server = createServer((socket) => socket.end())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const port = new SourcePorts().take() as number
  const socket: Socket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, localAddress: '127.0.0.2', localPort: port })
  // another process may hold this port on 127.0.0.2 (a load generator of another run): then the bind fails, which is what the generator counts as a failed attempt
  const result = await new Promise<number | string>((resolve) => {
    socket.once('connect', () => resolve(socket.localPort ?? -1))
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
  })
  socket.destroy()
  if (result === 'EADDRINUSE') t.pass('port in use by another process')
  else t.equal(result, port)
})
