// Preloaded into a measured process (`node --import <this file>`) by bench/idle-floor.ts: on
// SIGUSR2 it writes V8's heap space statistics, after a full collection when `--expose-gc` is
// on, to HEAP_REPORT_FILE, so that RSS can be split into V8's part and the rest (native:
// sockets, libuv handles, buffers) in any Node process, a broker or not. With
// HEAP_SNAPSHOT_DIR, each report also writes a heap snapshot there (numbered), to be summed by
// constructor (scripts/heap-by-constructor.mjs).
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'

const file = process.env.HEAP_REPORT_FILE
const snapshotDir = process.env.HEAP_SNAPSHOT_DIR
let reports = 0
if (file !== undefined) {
  process.on('SIGUSR2', () => {
    if (snapshotDir !== undefined) writeHeapSnapshot(join(snapshotDir, `${process.pid}-${++reports}.heapsnapshot`))
    const collect = (globalThis as { gc?: () => void }).gc
    collect?.()
    const spaces = getHeapSpaceStatistics().map((space) => ({ name: space.space_name, size: space.space_size, used: space.space_used_size }))
    writeFileSync(file, JSON.stringify({ spaces, external: process.memoryUsage().external, arrayBuffers: process.memoryUsage().arrayBuffers }))
  })
}
