// Every normative statement of MQTT 3.1.1 that binds the server is covered by a conformance
// test that names it, or says why it does not apply; and docs/conformance.md is current.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { collectTests, conformanceDir5, coverage, loadStatements, renderDocument } from './coverage.js'

const file = loadStatements()
const tests = collectTests()
const file5 = loadStatements(conformanceDir5)
const tests5 = collectTests(conformanceDir5)

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

t.test('MQTT 5.0: every statement of v5/statements.json is tested or does not apply; v5 tests name only those', async (t) => {
  for (const { statement, tests: covering } of coverage(file5.statements, tests5)) {
    t.ok(covering.length > 0 || (statement.na !== undefined && statement.na.length > 0), `${statement.id}: ${covering.length > 0 ? covering.map((c) => c.title).join(' | ') : statement.na ?? 'NOT COVERED'}`)
  }
  const known = new Set(file5.statements.map((s) => s.id))
  t.equal(known.size, file5.statements.length, 'no duplicates')
  for (const test of tests5) {
    for (const id of test.ids) t.ok(known.has(id), `v5/${test.file}: ${id} is listed in v5/statements.json`)
  }
})

t.test('docs/conformance.md is generated from the current statements and tests (npm run docs:conformance)', async (t) => {
  const doc = readFileSync(new URL('../../docs/conformance.md', import.meta.url), 'utf8')
  t.ok(doc === renderDocument(file, tests, file5, tests5), 'docs/conformance.md is up to date')
})
