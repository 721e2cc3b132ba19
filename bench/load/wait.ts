// Bounded waiting: every wait of the harness has a deadline and stops when the scenario is aborted.

export class Aborted extends Error {
  constructor () {
    super('aborted')
    this.name = 'Aborted'
  }
}

export function pause (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Aborted())
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(new Aborted())
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Polls `done` until it is true (resolves true), `timeoutMs` passes, or nothing counted by
 * `progress` has changed for `idleMs` (both resolve false).
 */
export async function waitUntil (done: () => boolean, options: { timeoutMs: number, signal: AbortSignal, progress?: () => number, idleMs?: number }): Promise<boolean> {
  const deadline = performance.now() + options.timeoutMs
  let lastProgress = options.progress?.()
  let lastChange = performance.now()
  while (!done()) {
    const now = performance.now()
    if (now > deadline) return false
    if (options.progress !== undefined && options.idleMs !== undefined) {
      const progress = options.progress()
      if (progress !== lastProgress) {
        lastProgress = progress
        lastChange = now
      } else if (now - lastChange > options.idleMs) {
        return false
      }
    }
    await pause(10, options.signal)
  }
  return true
}
