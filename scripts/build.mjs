// npm run build (and prestart, pretest): builds the broker (dist/) and the browser SDK
// (clients/web/dist/), each only when a source is newer than its last complete build, so
// that starting an already built tree costs a few file stats instead of two compilers.
// The broker's build is itself incremental (tsc -b): after a change, only what it affects
// is compiled again.
import { execFileSync } from 'node:child_process'
import { readdirSync, rmSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')

const parts = [
  {
    name: 'broker',
    inputs: ['src', 'bench', 'tsconfig.json', 'package-lock.json'],
    // written by tsc last, and removed below when a build fails
    stamp: 'dist/tsconfig.tsbuildinfo',
    build: () => execFileSync(process.execPath, [tsc, '-b', 'tsconfig.json'], { cwd: root, stdio: 'inherit' })
  },
  {
    name: 'browser SDK',
    // the SDK imports the topic grammar from src/acl/
    inputs: ['clients/web/src', 'clients/web/demos', 'clients/web/build.mjs', 'clients/web/tsconfig.json', 'clients/web/tsconfig.sdk.json', 'src/acl/topic-grammar.ts', 'package-lock.json'],
    // the type declarations are the build's last step
    stamp: 'clients/web/dist/types/clients/web/src/index.d.ts',
    build: () => execFileSync(process.execPath, [join(root, 'clients/web/build.mjs')], { cwd: root, stdio: 'inherit' })
  }
]

/** The newest modification time under `path` (a file or a folder), 0 if it does not exist. */
function newestChange (path) {
  let stats
  try {
    stats = statSync(path)
  } catch {
    return 0
  }
  if (!stats.isDirectory()) return stats.mtimeMs
  let newest = stats.mtimeMs // a file removed or renamed changes its folder
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestChange(join(path, entry)))
  return newest
}

for (const part of parts) {
  const built = newestChange(join(root, part.stamp))
  if (built > 0 && part.inputs.every((input) => newestChange(join(root, input)) < built)) continue
  try {
    part.build()
  } catch {
    // without its stamp, a failed build is tried again next time rather than taken as done
    rmSync(join(root, part.stamp), { force: true })
    console.error(`build of the ${part.name} failed`)
    process.exit(1)
  }
}
