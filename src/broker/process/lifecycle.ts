// Graceful shutdown on SIGTERM/SIGINT: the first signal closes the broker (bounded by
// shutdown.timeoutMs) and exits 0; a second signal exits at once.
import type { BrokerHandle } from '../../server.js'

export function exitOnSignals (broker: BrokerHandle): void {
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      broker.logger.warn({ event: 'shutdown.forced', signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    broker.logger.info({ event: 'shutdown.signal', signal }, 'signal received, shutting down')
    // The close is bounded, but guard against a hang anywhere else too.
    setTimeout(() => process.exit(1), broker.config.shutdown.timeoutMs * 2 + 1000).unref()
    broker.close().then(() => process.exit(0), (err: unknown) => {
      broker.logger.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}
