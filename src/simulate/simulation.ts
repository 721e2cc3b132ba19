// What the CLI runs and reports on, whichever simulation it is.
import type { FleetHealth } from './fleet.js'

export interface Simulation {
  /** One line saying what is simulated. */
  describe: string
  total: number
  connected: () => number
  health: () => FleetHealth
  /** Messages published so far. */
  published: () => number
  /** Leaves cleanly: clears or marks offline what the members retained, then disconnects. */
  stop: () => Promise<void>
}
