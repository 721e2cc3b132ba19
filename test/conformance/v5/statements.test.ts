// Every normative statement of MQTT 5.0 that binds the server is covered by a conformance test
// that names it, or says why it does not apply or is not honoured yet. docs/conformance.md
// (both versions) is checked by ../statements.test.ts.
import t from 'tap'
import { collectTests, conformanceDir5, coverage, loadStatements } from '../coverage.js'

const file = loadStatements('5.0')
const tests = collectTests(conformanceDir5)

t.test('every server-side MQTT 5.0 statement is tested by a test that names it, or does not apply or is not honoured yet, with a reason', async (t) => {
  for (const { statement, tests: covering } of coverage(file.statements, tests)) {
    if (statement.side === 'client') {
      t.ok(statement.na !== undefined && statement.na.length > 0, `${statement.id}: client-only, with a reason`)
      continue
    }
    const reason = statement.na ?? statement.gap
    t.ok(covering.length > 0 || (reason !== undefined && reason.length > 0), `${statement.id}: ${covering.length > 0 ? covering.map((c) => c.title).join(' | ') : reason ?? 'NOT COVERED'}`)
  }
})

t.test('a statement not honoured yet is not also said not to apply, and each todo test names one not honoured yet', async (t) => {
  const byId = new Map(file.statements.map((s) => [s.id, s]))
  for (const statement of file.statements) t.notOk(statement.na !== undefined && statement.gap !== undefined, `${statement.id}: na or gap, not both`)
  for (const test of tests.filter((test) => test.todo !== undefined)) {
    t.ok(test.ids.some((id) => byId.get(id)?.gap !== undefined), `${test.file}: ${test.title} (todo: ${test.todo})`)
  }
})

t.test('MQTT 5.0 tests name only statements that exist, and each statement appears once in v5/statements.json', async (t) => {
  const known = new Set(file.statements.map((s) => s.id))
  t.equal(known.size, file.statements.length, 'no duplicates')
  for (const test of tests) {
    for (const id of test.ids) t.ok(known.has(id), `${test.file}: ${id} is a statement of MQTT 5.0`)
  }
  for (const statement of file.statements) {
    const section = statement.id.slice('MQTT-'.length, statement.id.lastIndexOf('-'))
    t.ok(file.sections?.[section] !== undefined, `${statement.id}: section ${section} has a title`)
  }
})
