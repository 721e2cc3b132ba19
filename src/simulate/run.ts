// Runs a simulation for the CLI: says what it does, reports progress every few seconds, and
// stops cleanly on Ctrl-C, SIGTERM or after the given duration. When no member could connect,
// it says why (the CONNACK code and its meaning, or the socket error) and fails.
import type { Simulation } from './simulation.js'

export interface SimulationOutput {
  print: (line: string) => void
  printError: (line: string) => void
}

/** Resolves with the process exit code: 0 once done, 1 when no member ever connected. */
export async function runSimulation (simulation: Simulation, url: string, durationS: number | null, { print, printError }: SimulationOutput): Promise<number> {
  print(`simulate: ${simulation.describe} to ${url}; ${durationS === null ? 'Ctrl-C stops' : `stopping after ${durationS} s`}`)
  const reportEveryMs = 5000
  let lastPublished = 0
  const progress = setInterval(() => {
    const published = simulation.published()
    const { lastError } = simulation.health()
    const connected = simulation.connected()
    const why = connected < simulation.total && lastError !== null ? ` (last connection error: ${lastError})` : ''
    print(`simulate: ${connected}/${simulation.total} connected, ${Math.round(((published - lastPublished) * 1000) / reportEveryMs)} messages/s${why}`)
    lastPublished = published
  }, reportEveryMs)
  await new Promise<void>((resolve) => {
    const timer = durationS === null ? undefined : setTimeout(finish, durationS * 1000)
    // A member refused by CONNACK is not retried: once all are, waiting is pointless.
    const allRefused = setInterval(() => { if (simulation.health().refused === simulation.total) finish() }, 250)
    function finish (): void {
      clearTimeout(timer)
      clearInterval(allRefused)
      process.off('SIGINT', finish)
      process.off('SIGTERM', finish)
      resolve()
    }
    process.once('SIGINT', finish)
    process.once('SIGTERM', finish)
  })
  clearInterval(progress)
  await simulation.stop()
  const { everConnected, lastError } = simulation.health()
  if (everConnected === 0) {
    printError(`simulate: none of the ${simulation.total} clients could connect to ${url}: ${lastError ?? 'no answer from the broker'}`)
    return 1
  }
  print(`simulate: stopped after ${simulation.published()} messages`)
  return 0
}
