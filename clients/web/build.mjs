// Builds the browser SDK and the demo pages into clients/web/dist (served by the broker):
//   sdk/realtime.js    the SDK as one ES module, MQTT.js included
//   types/             the SDK's type declarations, for use from npm
//   *.html, *.css      the demo pages, copied as they are
//   demos/*.js         one script per page; they import the SDK from /sdk/realtime.js
import { execFileSync } from 'node:child_process'
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const here = fileURLToPath(new URL('.', import.meta.url))
const out = join(here, 'dist')
const demos = join(here, 'demos')
const common = { bundle: true, format: 'esm', platform: 'browser', target: 'es2022', minify: true, sourcemap: true, logLevel: 'warning' }

await rm(out, { recursive: true, force: true })
await build({ ...common, entryPoints: [join(here, 'src/index.ts')], outfile: join(out, 'sdk/realtime.js') })
const files = await readdir(demos, { withFileTypes: true })
await build({
  ...common,
  entryPoints: files.filter((f) => f.isFile() && f.name.endsWith('.ts')).map((f) => join(demos, f.name)),
  outdir: join(out, 'demos'),
  // Pages load the SDK the broker serves, as any page using it would.
  external: ['/sdk/realtime.js']
})
for (const file of files.filter((f) => f.isFile() && /\.(html|css|svg)$/.test(f.name))) {
  await copyFile(join(demos, file.name), join(out, file.name))
}
await mkdir(join(out, 'types'), { recursive: true })
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
execFileSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.sdk.json')], { stdio: 'inherit' })
