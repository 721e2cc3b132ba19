// Deadlines of many items (the token expiry of every client of a node) behind one timer:
// a Node Timeout with its callback closure costs ~0.3 KiB per idle connection, while here an
// item is an entry of the Set of its time slot. Deadlines are grouped in slots of
// `resolutionMs`: an item is due at the end of its slot, at most resolutionMs after its deadline,
// never before it.

// setTimeout's longest delay; a later slot is re-armed when the timer fires
const maxTimerDelay = 2 ** 31 - 1

export class DeadlineBuckets<T> {
  private readonly slots = new Map<number, Set<T>>()
  // slot numbers, a binary min-heap; a slot emptied by remove() stays in it until it is due
  private readonly heap: number[] = []
  private timer: NodeJS.Timeout | null = null
  private armedSlot = Infinity

  constructor (private readonly resolutionMs: number, private readonly onDue: (item: T) => void) {}

  /** Calls onDue(item) once `at` (ms since the epoch) has passed, unless remove(item, at) first. */
  add (item: T, at: number): void {
    const slot = Math.ceil(at / this.resolutionMs)
    let items = this.slots.get(slot)
    if (items === undefined) {
      items = new Set()
      this.slots.set(slot, items)
      this.push(slot)
    }
    items.add(item)
    if (slot < this.armedSlot) this.arm()
  }

  /** Forgets the deadline `at` of `item` (the `at` it was added with). */
  remove (item: T, at: number): void {
    const slot = Math.ceil(at / this.resolutionMs)
    const items = this.slots.get(slot)
    if (items === undefined) return
    items.delete(item)
    if (items.size === 0) this.slots.delete(slot)
  }

  /** Items waiting for their deadline. */
  get size (): number {
    let size = 0
    for (const items of this.slots.values()) size += items.size
    return size
  }

  private arm (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.armedSlot = Infinity
    // slots emptied meanwhile need no timer
    while (this.heap.length > 0 && !this.slots.has(this.heap[0] as number)) this.pop()
    const next = this.heap[0]
    if (next === undefined) return
    this.armedSlot = next
    this.timer = setTimeout(this.fire, Math.min(Math.max(0, next * this.resolutionMs - Date.now()), maxTimerDelay))
    this.timer.unref()
  }

  private readonly fire = (): void => {
    this.timer = null
    this.armedSlot = Infinity
    const now = Date.now()
    while (this.heap.length > 0 && (this.heap[0] as number) * this.resolutionMs <= now) {
      const slot = this.pop()
      const items = this.slots.get(slot)
      if (items === undefined) continue
      this.slots.delete(slot)
      for (const item of items) this.onDue(item)
    }
    this.arm()
  }

  private push (slot: number): void {
    const heap = this.heap
    let i = heap.push(slot) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if ((heap[parent] as number) <= slot) break
      heap[i] = heap[parent] as number
      i = parent
    }
    heap[i] = slot
  }

  private pop (): number {
    const heap = this.heap
    const top = heap[0] as number
    const last = heap.pop() as number
    if (heap.length === 0) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= heap.length) break
      const right = left + 1
      const child = right < heap.length && (heap[right] as number) < (heap[left] as number) ? right : left
      if ((heap[child] as number) >= last) break
      heap[i] = heap[child] as number
      i = child
    }
    heap[i] = last
    return top
  }
}
