// Preloaded into every broker process of the fleet scenario (`node --expose-gc --import <this
// file>`; node:cluster workers inherit both): SIGURG runs a full collection, so that RSS is read
// at the steady state of the connections held and not at whatever garbage the last CONNECTs
// left (as bench/idle-floor.ts reads it). SIGURG because its default action is to ignore it:
// a process without this preload (Redis) is untouched, and no broker listens for it.
const collect = (globalThis as { gc?: () => void }).gc
if (collect !== undefined) process.on('SIGURG', () => collect())
