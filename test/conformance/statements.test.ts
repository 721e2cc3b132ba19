// Every normative statement of MQTT 3.1.1 that binds the server is covered by a conformance
// test that names it, or says why it does not apply; and docs/conformance.md is current.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { collectTests, coverage, loadStatements, renderDocument } from './coverage.js'

const file = loadStatements()
const tests = collectTests()

t.test('every server-side statement is tested by a test that names it, or does not apply, with a reason', async (t) => {
  for (const { statement, tests: covering } of coverage(file.statements, tests)) {
    if (statement.side === 'client') {
      t.ok(statement.na !== undefined && statement.na.length > 0, `${statement.id}: client-only, with a reason`)
      continue
    }
    t.ok(covering.length > 0 || (statement.na !== undefined && statement.na.length > 0), `${statement.id}: ${covering.length > 0 ? covering.map((c) => c.title).join(' | ') : statement.na ?? 'NOT COVERED'}`)
  }
})

t.test('tests name only statements that exist, and each statement appears once in statements.json', async (t) => {
  const known = new Set(file.statements.map((s) => s.id))
  t.equal(known.size, file.statements.length, 'no duplicates')
  for (const test of tests) {
    for (const id of test.ids) t.ok(known.has(id), `${test.file}: ${id} is a statement of MQTT 3.1.1`)
  }
})

t.test('docs/conformance.md is generated from the current statements and tests of both versions (npm run docs:conformance)', async (t) => {
  const doc = readFileSync(new URL('../../docs/conformance.md', import.meta.url), 'utf8')
  t.ok(doc === renderDocument(), 'docs/conformance.md is up to date')
})
