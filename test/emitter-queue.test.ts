// Aedes' in-process emitter (mqemitter, patched): a long queue of messages that match no local
// listener must not overflow the stack when it drains (it took a node down under a burst).
import t from 'tap'
import mqemitter from 'mqemitter'

t.test('100,000 queued messages with no listener drain without recursion', async (t) => {
  const emitter = mqemitter({ concurrency: 1 })
  let release: () => void = () => {}
  emitter.on('busy', (_message, done) => { release = done })
  emitter.emit({ topic: 'busy' })
  const queued = 100_000
  let completed = 0
  for (let i = 0; i < queued; i++) emitter.emit({ topic: 'nobody/listens' }, () => { completed++ })
  t.equal(completed, 0, 'held behind the one in flight (concurrency 1)')
  t.doesNotThrow(() => release(), 'releasing the one in flight drains the queue')
  t.equal(completed, queued, 'every queued message completed')
  t.equal(emitter.current, 0, 'nothing left in flight')
})

t.test('the last queued message started fills the window without a spurious release', async (t) => {
  // The queue emptied by the release that started its last message while every slot was
  // taken: the next emit took that for a leak and released a slot no message had freed, so
  // two messages ran at concurrency 1 and the in-flight counter ended negative.
  const emitter = mqemitter({ concurrency: 1 })
  const held: Array<() => void> = []
  let running = 0
  let mostRunning = 0
  emitter.on('busy', (_message, done) => {
    mostRunning = Math.max(mostRunning, ++running)
    held.push(() => { running--; done() })
  })
  const leakWarnings: string[] = []
  const onWarning = (warning: Error): void => { leakWarnings.push(warning.message) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  emitter.emit({ topic: 'busy' })
  emitter.emit({ topic: 'busy' }) // queued
  held.shift()?.() // starts the queued one: every slot taken again, the queue empty
  emitter.emit({ topic: 'busy' }) // must queue, not run
  t.equal(mostRunning, 1, 'never more in flight than the concurrency')
  while (held.length > 0) held.shift()?.()
  t.equal(mostRunning, 1, 'the third ran once the second was done')
  t.equal(emitter.current, 0, 'the in-flight counter ends at 0, not below')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(leakWarnings, [], 'no "leak detected" warning')
})
