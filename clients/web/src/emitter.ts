// A minimal typed event emitter: `on` returns the function that removes the listener.

type Listener<Args extends unknown[]> = (...args: Args) => void

export class Emitter<Events extends Record<string, unknown[]>> {
  private readonly listeners: { [E in keyof Events]?: Set<Listener<Events[E]>> } = {}

  on<E extends keyof Events> (event: E, listener: Listener<Events[E]>): () => void {
    const set = this.listeners[event] ?? new Set<Listener<Events[E]>>()
    this.listeners[event] = set
    set.add(listener)
    return () => { set.delete(listener) }
  }

  /** Calls every listener; false when there was none. A throwing listener does not stop the others. */
  protected emit<E extends keyof Events> (event: E, ...args: Events[E]): boolean {
    const set = this.listeners[event]
    if (set === undefined || set.size === 0) return false
    for (const listener of [...set]) {
      try {
        listener(...args)
      } catch (err) {
        reportLater(err)
      }
    }
    return true
  }
}

/** Rethrows outside the current call stack: the error shows in the console, delivery goes on. */
export function reportLater (err: unknown): void {
  setTimeout(() => { throw err }, 0)
}
