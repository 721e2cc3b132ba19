// Sums a `node --cpu-prof` profile by function (self time) and prints the largest, with the
// share of the profile's time each took ((idle), (garbage collector) and (program) included);
// with a window, only the samples from..to seconds after the profile's start (an idle window):
//   node scripts/cpu-profile-summary.mjs <file.cpuprofile> [rows] [from-s to-s]
import { readFileSync } from 'node:fs'

const [file, rowsArg, fromArg, toArg] = process.argv.slice(2)
const rows = Number(rowsArg ?? 30)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const self = new Map()
const deltas = profile.timeDeltas
const from = fromArg === undefined ? -Infinity : profile.startTime + Number(fromArg) * 1e6
const to = toArg === undefined ? Infinity : profile.startTime + Number(toArg) * 1e6
let at = profile.startTime
for (let i = 0; i < profile.samples.length; i++) {
  at += deltas[i] ?? 0
  if (at < from || at > to) continue
  const node = byId.get(profile.samples[i])
  const { functionName, url, lineNumber } = node.callFrame
  const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '')}:${lineNumber + 1}`
  self.set(key, (self.get(key) ?? 0) + (deltas[i] ?? 0))
}
const total = [...self.values()].reduce((a, b) => a + b, 0)
const sorted = [...self.entries()].sort((a, b) => b[1] - a[1])
console.log(`${(total / 1000).toFixed(0)} ms sampled`)
for (const [key, us] of sorted.slice(0, rows)) console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${((us / total) * 100).toFixed(2).padStart(6)}%  ${key}`)
