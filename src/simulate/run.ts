// Runs a simulation for the CLI: says what it does, reports progress every few seconds, and
// stops cleanly on Ctrl-C, SIGTERM or after the given duration.
import type { Simulation } from './simulation.js'

export async function runSimulation (simulation: Simulation, url: string, durationS: number | null, print: (line: string) => void): Promise<void> {
  print(`simulate: ${simulation.describe} to ${url}; ${durationS === null ? 'Ctrl-C stops' : `stopping after ${durationS} s`}`)
  const reportEveryMs = 5000
  let lastPublished = 0
  const progress = setInterval(() => {
    const published = simulation.published()
    print(`simulate: ${simulation.connected()}/${simulation.total} connected, ${Math.round(((published - lastPublished) * 1000) / reportEveryMs)} messages/s`)
    lastPublished = published
  }, reportEveryMs)
  await new Promise<void>((resolve) => {
    const timer = durationS === null ? undefined : setTimeout(resolve, durationS * 1000)
    const onSignal = (): void => {
      clearTimeout(timer)
      resolve()
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
  clearInterval(progress)
  await simulation.stop()
  print(`simulate: stopped after ${simulation.published()} messages`)
}
