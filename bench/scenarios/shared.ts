// Shared subscription throughput: publishers → one group `$share/workers/bench/#` of 4 members,
// publishers and members spread evenly over the target's two endpoints (the two nodes of a
// cluster target, as a balancer would spread them). Reports what the group receives and how
// evenly: the busiest member's count over the least busy's (1 = perfectly even). The same load
// to one plain subscriber across nodes is the fan-in QoS 0 row of the same target.
import { PublishTemplate } from '../load/publish-template.js'
import { Flood } from './flood.js'
import { interleave } from './interleave.js'
import { FloodStream, qos0, slicesFor, sliceTimeout } from './throughput.js'
import type { InterleavedScenario, Role } from './types.js'
import { projectTargetName } from '../targets.js'

const members = 4

export function sharedGroup (id: string): InterleavedScenario {
  const spreadKey = `${id}-spread`
  return {
    id,
    title: 'shared subscription QoS 0',
    // brokers without cluster-wide groups (plain Aedes) deliver nothing to a $share filter
    targets: [projectTargetName, 'rb+redis×2'],
    metrics: (s) => [
      { key: id, label: `shared subscription QoS 0, ${s.fanInPublishers} pub → group of ${members} \`$share/workers/bench/#\`, both spread over the nodes (msg/s)`, better: 'higher', digits: 0 },
      { key: spreadKey, label: 'its busiest member ÷ least busy (messages)', better: 'lower', digits: 2 }
    ],
    timeoutMs: sliceTimeout,
    idleNeighboursMatter: false,
    runInterleaved: (contexts) => interleave(contexts, async (context) => {
      const { settings } = context
      // even clients on the first endpoint, odd ones on the other (the same node on one-node targets)
      const roleOf = (i: number): Role => i % 2 === 0 ? 'publisher' : 'subscriber'
      const counts = new Array<number>(members).fill(0)
      let received = 0
      const group = await Promise.all(Array.from({ length: members }, async (_, i) => {
        const client = await context.connect(roleOf(i), 'tcp', `bench-${id}-member-${i}`)
        client.onPublish = () => {
          received++
          counts[i] = (counts[i] as number) + 1
        }
        await client.subscribe('$share/workers/bench/#', 0, 5_000)
        return client
      }))
      const publishers = await Promise.all(Array.from({ length: settings.fanInPublishers }, async (_, i) => ({
        client: await context.connect(roleOf(i), 'tcp', `bench-${id}-pub-${i}`),
        template: new PublishTemplate(`bench/shared/${i}`, settings.payloadBytes, 0, context.protocolVersion)
      })))
      const flood = new Flood({ publishers, receivers: group, received: () => received, ...qos0 })
      const stream = new FloodStream(context, id, flood, () => received, 1)
      return {
        context,
        slice: async (slice) => await stream.slice(slice),
        outcome: () => {
          const outcome = stream.outcome()
          const least = Math.min(...counts)
          outcome.values[spreadKey] = least === 0 ? Infinity : Math.max(...counts) / least
          outcome.notes.push(`messages per member: ${counts.join(', ')}`)
          return outcome
        }
      }
    }, slicesFor(contexts))
  }
}
