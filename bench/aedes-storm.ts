// The storm's lower bound: one plain Aedes node of three, clustered the way Aedes documents
// it (aedes-persistence-redis for sessions, subscriptions and offline queues, mqemitter-redis
// between the nodes), no authentication, no CONNECT cap. Driven by the same storm generators
// and load as the `rb+redis×3 storm` target: what this machine gives the live clients while
// 10,000 sessions are resumed, before any work of this project's (docs/performance.md).
// Redis at `REDIS_URL`; prints its TCP listener as the project's CLI does.
import { createServer, type AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import aedesPersistenceRedis from 'aedes-persistence-redis'
import { Redis } from 'ioredis'
import mqemitterRedis from 'mqemitter-redis'

const url = process.env.REDIS_URL
const broker = await Aedes.createBroker({
  ...(process.env.NODE_ID === undefined ? {} : { id: process.env.NODE_ID }),
  mq: mqemitterRedis({ connectionString: url }),
  persistence: aedesPersistenceRedis({ conn: new Redis(url ?? 'redis://127.0.0.1:6379') }) as unknown as NonNullable<Parameters<typeof Aedes.createBroker>[0]>['persistence']
})
const server = createServer(broker.handle)
server.listen(0, '127.0.0.1', () => console.log(`aedes-storm: MQTT over TCP listening on mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`))
process.once('SIGTERM', () => broker.close(() => process.exit(0)))
