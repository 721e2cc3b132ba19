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
