// Publishes made while offline wait here, in order, up to a bound; past it the newest is
// refused rather than memory growing without limit while a page stays offline.

export class OfflineQueue<T> {
  private items: T[] = []

  constructor (readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`offline queue capacity must be a non-negative integer, got ${capacity}`)
  }

  get size (): number {
    return this.items.length
  }

  /** Adds at the end; false when the queue is full (the item was not added). */
  push (item: T): boolean {
    if (this.items.length >= this.capacity) return false
    this.items.push(item)
    return true
  }

  /**
   * Puts items back at the front, ahead of newer ones, e.g. publishes whose acknowledgement
   * was lost with the connection. They may exceed the capacity: they were accepted already.
   */
  requeue (items: T[]): void {
    this.items = [...items, ...this.items]
  }

  /** Removes and returns every item, oldest first. */
  drain (): T[] {
    const items = this.items
    this.items = []
    return items
  }
}
