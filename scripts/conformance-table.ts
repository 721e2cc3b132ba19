// Writes docs/conformance.md: every normative statement of MQTT 3.1.1 and of MQTT 5.0, and the
// conformance test that covers it (or why it does not apply). `--check` only verifies the file is up to date.
// Run with `npm run docs:conformance`.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { renderDocument } from '../test/conformance/coverage.js'

const target = fileURLToPath(new URL('../docs/conformance.md', import.meta.url))
const table = renderDocument()

if (process.argv.includes('--check')) {
  const current = existsSync(target) ? readFileSync(target, 'utf8') : ''
  if (current !== table) {
    console.error('docs/conformance.md is out of date: run npm run docs:conformance')
    process.exit(1)
  }
} else {
  writeFileSync(target, table)
  console.log(`wrote ${target}`)
}
