// Sums two V8 heap snapshots by node type and constructor (or closure / string kind), and
// prints what grew from the first to the second per added connection (or item):
//   node scripts/heap-by-constructor.mjs half.heapsnapshot all.heapsnapshot <added> [rows]
// The method of docs/performance.md ("What an idle connection costs"): snapshots of one
// process at half and at all of its idle clients (bench/idle-floor.ts --snapshots DIR).
import { readFileSync } from 'node:fs'

function summarize (path) {
  const { snapshot, nodes, strings } = JSON.parse(readFileSync(path, 'utf8'))
  const fields = snapshot.meta.node_fields
  const types = snapshot.meta.node_types[0]
  const width = fields.length
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f))
  const sums = new Map()
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]]
    // strings and code are many distinct names: grouped by type only
    const name = type === 'object' || type === 'closure' || type === 'native' || type === 'hidden' || type === 'array' ? strings[nodes[i + nameAt]] : ''
    const key = `${type}\t${name.slice(0, 60)}`
    const sum = sums.get(key) ?? { count: 0, bytes: 0 }
    sum.count++
    sum.bytes += nodes[i + sizeAt]
    sums.set(key, sum)
  }
  return sums
}

const [first, second, addedArg, rowsArg] = process.argv.slice(2)
const added = Number(addedArg)
const rows = Number(rowsArg ?? 30)
const a = summarize(first)
const b = summarize(second)
const growth = []
let total = 0
for (const [key, sum] of b) {
  const before = a.get(key) ?? { count: 0, bytes: 0 }
  const bytes = sum.bytes - before.bytes
  total += bytes
  growth.push({ key, bytes, count: sum.count - before.count })
}
for (const [key, sum] of a) if (!b.has(key)) { total -= sum.bytes; growth.push({ key, bytes: -sum.bytes, count: -sum.count }) }
growth.sort((x, y) => y.bytes - x.bytes)
console.log(`per added item (${added}): ${(total / added).toFixed(0)} bytes of heap`)
console.log('bytes/item\tcount/item\ttype\tname')
for (const g of growth.slice(0, rows)) console.log(`${(g.bytes / added).toFixed(1)}\t${(g.count / added).toFixed(2)}\t${g.key}`)
