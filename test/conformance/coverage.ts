// Which conformance test covers which normative statement of MQTT 3.1.1 and of MQTT 5.0: the
// statements come from statements.json (v5/statements.json), the tests from the titles in
// test/conformance/*.test.ts (v5/*.test.ts); a test covers every [MQTT-x.y.z-n] its title
// names, unless it is marked todo. Used by the coverage checks (statements.test.ts,
// v5/statements.test.ts) and by scripts/conformance-table.ts, which writes docs/conformance.md.
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

export const conformanceDir = fileURLToPath(new URL('.', import.meta.url))
export const conformanceDir5 = join(conformanceDir, 'v5')

export type MqttVersion = '3.1.1' | '5.0'

export interface Statement {
  id: string
  side: 'server' | 'client' | 'both'
  text: string
  /** Why the statement does not apply to this broker; absent when it does. */
  na?: string
  /** Why the broker does not honour the statement yet (not implemented, or a known bug); absent when it does. */
  gap?: string
}

export interface StatementsFile {
  source: string
  sides: Record<Statement['side'], string>
  /** Titles of the spec's sections, by number (MQTT 5.0). */
  sections?: Record<string, string>
  statements: Statement[]
}

export interface TestTitle {
  file: string
  title: string
  ids: string[]
  /** The reason of a test marked todo: it names statements the broker does not honour yet, and covers none. */
  todo?: string
}

export interface Row {
  statement: Statement
  tests: TestTitle[]
}

// MQTT 5.0 has one id with two section levels: [MQTT-4.2-1]
const idPattern = /\[(MQTT-\d+\.\d+(?:\.\d+)?-\d+)\]/g
// a title in quotes, or a template literal (whose ${...} parts are shown as {...})
const titlePattern = /t\.test\(\s*(?:'((?:\\.|[^'\\])*)'|`((?:\\.|[^`\\])*)`)(\s*,\s*\{\s*todo:\s*'((?:\\.|[^'\\])*)')?/g

export function loadStatements (version: MqttVersion = '3.1.1'): StatementsFile {
  const dir = version === '3.1.1' ? conformanceDir : conformanceDir5
  return JSON.parse(readFileSync(join(dir, 'statements.json'), 'utf8')) as StatementsFile
}

const unescape = (text: string): string => text.replace(/\\(.)/g, '$1')

/** The titles of the tests in `dir`/*.test.ts (default: the MQTT 3.1.1 ones), with the statement ids they name. */
export function collectTests (dir = conformanceDir): TestTitle[] {
  const tests: TestTitle[] = []
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort()) {
    const source = readFileSync(join(dir, file), 'utf8')
    for (const match of source.matchAll(titlePattern)) {
      const title = match[1] !== undefined ? unescape(match[1]) : unescape(match[2] as string).replace(/\$\{([^}]*)\}/g, '{$1}')
      const ids = [...title.matchAll(idPattern)].map((m) => m[1] as string)
      tests.push({ file, title, ids, ...(match[4] === undefined ? {} : { todo: unescape(match[4]) }) })
    }
  }
  return tests
}

/** Each statement with the tests that cover it (tests marked todo cover nothing). */
export function coverage (statements = loadStatements().statements, tests = collectTests()): Row[] {
  return statements.map((statement) => ({ statement, tests: tests.filter((test) => test.todo === undefined && test.ids.includes(statement.id)) }))
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ')

/** What differs between the two editions' tables: their title, where they come from, their prose. */
interface Edition {
  version: MqttVersion
  dir: string
  /** The statements file and tests, relative to test/conformance/. */
  from: { statements: string, tests: string }
  intro: string[]
  /** A Section column (the 5.0 statements file titles its sections). */
  sectionColumn: boolean
}

const editions: Edition[] = [{
  version: '3.1.1',
  dir: conformanceDir,
  from: { statements: 'statements.json', tests: '*.test.ts' },
  intro: [
    'whether it binds the server, and the test that checks it. Each test speaks raw MQTT bytes over TCP (WebSocket for section 6)',
    'and runs against a single node on the in-memory store and against a cluster node (Redis',
    'persistence and emitter); the tests of `subscribe.test.ts` also against a cluster node on',
    'the stock mqemitter-redis emitter. `interop.test.ts` runs the same end-to-end scenarios with',
    'MQTT.js, mosquitto_pub/mosquitto_sub and Paho Python, over TCP and WebSocket.',
    '`statements.test.ts` fails when a statement that binds the server has neither a test nor a',
    'reason why it does not apply, and when this file is out of date.',
    '',
    'Where the broker did not honour a statement, the fix is in the stream in front of Aedes',
    '(`src/broker/protocol/packet-frame-guard.ts`: byte-level rules, CONNACK 0x01 and 0x02 answers), in',
    '`preConnect` (`src/broker/protocol/connect-rules.ts`: will topic, keep alive limit), or in a patch',
    'to Aedes or one of its parts ([aedes-patches.md](aedes-patches.md)).'
  ],
  sectionColumn: false
}, {
  version: '5.0',
  dir: conformanceDir5,
  from: { statements: 'v5/statements.json', tests: 'v5/*.test.ts' },
  intro: [
    'whether it binds the server, and the test that checks it. The tests of `v5/guard.test.ts` and',
    '`v5/guarded-connection.test.ts` check the packet guard at byte level; the others speak raw MQTT 5.0',
    'bytes (or MQTT.js at protocolVersion 5) over TCP (WebSocket for section 6) to a single node on the',
    'in-memory store and to a cluster node on Redis. `v5/statements.test.ts` fails when a statement that',
    'binds the server has neither a test nor a reason why it does not apply or is not honoured yet.',
    'A test marked todo shows a statement the broker does not honour yet; it covers nothing.'
  ],
  sectionColumn: true
}]

/** One edition's part of docs/conformance.md, generated. */
function renderTable (edition: Edition): string {
  const file = loadStatements(edition.version)
  const tests = collectTests(edition.dir)
  const rows = coverage(file.statements, tests)
  const count = (keep: (row: Row) => boolean): number => rows.filter(keep).length
  const notHonoured = count((r) => r.statement.gap !== undefined)
  const lines = [
    `# MQTT ${edition.version} conformance`,
    '',
    `<!-- Generated by \`npm run docs:conformance\` from test/conformance/${edition.from.statements} and the`,
    `     test titles in test/conformance/${edition.from.tests}. Do not edit by hand. -->`,
    '',
    `Every normative statement of MQTT ${edition.version} (${file.source}),`,
    ...edition.intro,
    '',
    `${file.statements.length} statements: ${count((r) => r.statement.side !== 'client')} bind the server, ${count((r) => r.tests.length > 0)} are tested, ${count((r) => r.statement.na !== undefined)} do not apply to this broker${notHonoured > 0 ? `, ${notHonoured} are not honoured yet` : ''}.`,
    '',
    'Side: **server**: ' + file.sides.server + '; **both**: ' + file.sides.both + '; **client**: ' + file.sides.client + '.',
    '',
    `| Statement |${edition.sectionColumn ? ' Section |' : ''} Side | Requirement (abridged) | Tested by, or why it does not apply |`,
    `|---|${edition.sectionColumn ? '---|' : ''}---|---|---|`
  ]
  for (const { statement, tests: covering } of rows) {
    const todos = tests.filter((test) => test.todo !== undefined && test.ids.includes(statement.id))
    const how = [
      ...covering.map((test) => `\`${test.file}\`: ${cell(test.title)}`),
      ...(statement.gap !== undefined ? [`**not honoured yet**: ${cell(statement.gap)}`] : []),
      ...todos.map((test) => `todo \`${test.file}\`: ${cell(test.title)}`),
      ...(statement.na !== undefined ? [`not applicable: ${cell(statement.na)}`] : [])
    ]
    const section = statement.id.slice('MQTT-'.length, statement.id.lastIndexOf('-'))
    const sectionTitle = file.sections?.[section]
    const sectionCell = edition.sectionColumn ? ` ${section}${sectionTitle === undefined ? '' : ` ${sectionTitle}`} |` : ''
    lines.push(`| ${statement.id} |${sectionCell} ${statement.side} | ${cell(statement.text)} | ${how.length > 0 ? how.join('<br>') : '**not covered**'} |`)
  }
  lines.push('')
  return lines.join('\n')
}

/** docs/conformance.md: the MQTT 3.1.1 table, then the MQTT 5.0 one. */
export function renderDocument (): string {
  return editions.map(renderTable).join('\n')
}
