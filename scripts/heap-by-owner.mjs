// Names what holds the objects of a V8 heap snapshot: each object is counted once, under the
// first edge that retains it (its owner's type and constructor, and the property or element
// name), skipping edges every object has (__proto__, map, weak ones). Shared objects count once
// in all, so the rows of N objects per connection are the per-connection state and its owner;
// `(object elements)` rows are also summed under the owner of the array they belong to:
//   node --max-old-space-size=6000 scripts/heap-by-owner.mjs all.heapsnapshot <connections> [rows]
// The companion of scripts/heap-by-constructor.mjs (what grew), for where it hangs
// (docs/performance.md, "What an idle connection costs").
import { readFileSync } from 'node:fs'

const [path, perArg, rowsArg] = process.argv.slice(2)
const per = Number(perArg)
const rows = Number(rowsArg ?? 60)
const { snapshot, nodes, edges, strings } = JSON.parse(readFileSync(path, 'utf8'))
const nodeFields = snapshot.meta.node_fields
const edgeFields = snapshot.meta.edge_fields
const nodeTypes = snapshot.meta.node_types[0]
const edgeTypes = snapshot.meta.edge_types[0]
const width = nodeFields.length
const edgeWidth = edgeFields.length
const [typeAt, nameAt, sizeAt, edgeCountAt] = ['type', 'name', 'self_size', 'edge_count'].map((f) => nodeFields.indexOf(f))
const [edgeTypeAt, edgeNameAt, toAt] = ['type', 'name_or_index', 'to_node'].map((f) => edgeFields.indexOf(f))
const count = nodes.length / width
const skipped = new Set(['__proto__', 'constructor', 'prototype', 'map'])

const label = (node) => {
  const type = nodeTypes[nodes[node * width + typeAt]]
  const named = type === 'object' || type === 'closure' || type === 'hidden' || type === 'array' || type === 'native'
  return named ? `${type}:${strings[nodes[node * width + nameAt]].slice(0, 40)}` : type
}
const edgeName = (edge) => {
  const type = edgeTypes[edges[edge + edgeTypeAt]]
  return type === 'element' || type === 'hidden' ? `[${type}]` : String(strings[edges[edge + edgeNameAt]] ?? edges[edge + edgeNameAt])
}

// the first retaining edge of every node
const owner = new Int32Array(count).fill(-1)
const ownerEdge = new Int32Array(count).fill(-1)
for (let node = 0, edge = 0; node < count; node++) {
  const end = edge + nodes[node * width + edgeCountAt] * edgeWidth
  for (; edge < end; edge += edgeWidth) {
    const type = edgeTypes[edges[edge + edgeTypeAt]]
    if (type === 'weak' || type === 'shortcut' || skipped.has(edgeName(edge))) continue
    const to = edges[edge + toAt] / width
    if (owner[to] === -1) {
      owner[to] = node
      ownerEdge[to] = edge
    }
  }
}

const held = new Map()
const add = (key, bytes) => {
  const sum = held.get(key) ?? { count: 0, bytes: 0 }
  sum.count++
  sum.bytes += bytes
  held.set(key, sum)
}
for (let node = 0; node < count; node++) {
  if (owner[node] === -1) continue
  const bytes = nodes[node * width + sizeAt]
  add(`${label(node)} <- ${label(owner[node])}.${edgeName(ownerEdge[node])}`, bytes)
  // an array's elements, under the array's own owner
  const array = owner[node]
  if (label(node) === 'array:(object elements)' && owner[array] !== -1) add(`elements of ${label(array)} <- ${label(owner[array])}.${edgeName(ownerEdge[array])}`, bytes)
}
console.log(`per connection (${per}); rows held by at least half as many objects`)
console.log('bytes/conn\tcount/conn\twhat <- owner.edge')
const table = [...held].filter(([, sum]) => sum.count >= per / 2).sort((a, b) => b[1].bytes - a[1].bytes)
for (const [key, sum] of table.slice(0, rows)) console.log(`${(sum.bytes / per).toFixed(0)}\t${(sum.count / per).toFixed(2)}\t${key}`)
