// The scenario table, in report order. Ids are what --scenarios takes.
import { connections } from './connections.js'
import { historyRecovery } from './history-recovery.js'
import { fleet } from './fleet.js'
import { storm } from './storm.js'
import { latency } from './latency.js'
import { retained } from './retained.js'
import { sharedGroup } from './shared.js'
import { fanIn, fanOut } from './throughput.js'
import type { Scenario } from './types.js'

export const scenarios: Scenario[] = [
  fanIn('fanin-qos0', 0, 'tcp'),
  fanIn('fanin-qos1', 1, 'tcp'),
  fanOut('fanout-qos0'),
  fanIn('fanin-ws', 0, 'ws'),
  sharedGroup('shared-qos0'),
  latency('latency-tcp', 'tcp'),
  latency('latency-ws', 'ws'),
  connections('connections'),
  fleet('fleet'),
  storm('storm'),
  retained('retained'),
  historyRecovery('history-recovery')
]
