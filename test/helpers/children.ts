// Processes a test starts die with it. When one teardown of a test throws, tap skips the
// teardowns after it: a burst test that timed out under load, whose client teardown then threw
// "Connection closed", left two broker nodes and a redis-server running.
import type { ChildProcess } from 'node:child_process'
import { onExit } from 'signal-exit'

const live = new Set<ChildProcess>()
onExit(() => {
  for (const child of live) child.kill('SIGKILL')
})

/** Kills `child` when this process ends, however it ends; returns it. */
export function diesWithTest<C extends ChildProcess> (child: C): C {
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}
