// The fleet's lower bound: plain Aedes on N worker processes (node:cluster, one shared port),
// clustered the way Aedes documents it (mqemitter-redis: every message through Redis pub/sub),
// in-memory persistence, no authentication and no ACL. Driven by the same generators and load
// as the `rb+jwt workers` target: what this machine gives the mixed load before any work of
// this project's (docs/performance.md). `AEDES_WORKERS` processes, Redis at `REDIS_URL`.
import cluster from 'node:cluster'
import { createServer, type AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import mqemitterRedis from 'mqemitter-redis'

const workers = Number(process.env.AEDES_WORKERS ?? '2')

if (cluster.isPrimary) {
  let listening = 0
  cluster.on('message', (_worker, message: { port: number }) => {
    // every worker listens on the port the first one got (listen(0) in a cluster shares it)
    if (++listening === workers) console.log(`aedes-workers: ${workers} workers, MQTT over TCP listening on mqtt://127.0.0.1:${message.port}`)
  })
  for (let i = 0; i < workers; i++) cluster.fork()
  process.once('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM')
    cluster.on('exit', () => { if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0) })
  })
} else {
  const broker = await Aedes.createBroker({ mq: mqemitterRedis({ connectionString: process.env.REDIS_URL }) })
  const server = createServer(broker.handle)
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }))
  process.once('SIGTERM', () => broker.close(() => process.exit(0)))
}
