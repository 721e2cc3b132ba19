// How far V8 lets the heap grow past what its last full collection kept before collecting
// again. Left to itself V8 picks a factor of up to 4: a broker that has just accepted tens of
// thousands of connections keeps up to three times their live memory as garbage that an idle
// process never has a reason to collect (20,000 idle connections: 14 KiB of RSS each, of which
// 7 KiB is live heap). A factor of 2 halves that; the extra full collections are incremental and
// concurrent, and a broker in steady state promotes little, so they are rare (docs/performance.md).
// The CLI applies it to the process it owns; an embedder's process keeps its own settings.
import { setFlagsFromString } from 'node:v8'

export const heapGrowingPercent = 100

/** Bounds heap growth, unless node was started with its own --heap-growing-percent. */
export function boundHeapGrowth (execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return
  setFlagsFromString(`--heap-growing-percent=${heapGrowingPercent}`)
}
