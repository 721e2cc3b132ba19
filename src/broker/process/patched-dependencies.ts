// Refuses to run on dependencies that lack our patches (patches/, docs/aedes-patches.md).
// The published package bundles its patched dependencies, but an install can still end up
// with stock copies (a checkout installed with --ignore-scripts, a package manager that
// ignores bundleDependencies): the broker would then break promises silently, e.g. a SUBACK
// granting QoS 2 under a role's maxQos 1 [MQTT-3.9.3-2]. Checking that every line a patch
// adds is in the installed file costs a few small reads, once per process.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { packageRoot } from './package-root.js'

/** A dependency is missing a patch: the message names it and says how to get it patched. */
export class UnpatchedDependencyError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'UnpatchedDependencyError'
  }
}

interface PatchedFile { path: string, addedLines: string[] }
interface Patch { file: string, name: string, version: string, files: PatchedFile[] }

let verified = false

/** Throws UnpatchedDependencyError unless every patch in patches/ is in effect. */
export function assertDependenciesPatched (): void {
  if (verified) return
  const root = packageRoot()
  const patches = join(root, 'patches')
  // the package ships patches/: without it nothing could be checked
  const problems = existsSync(patches) ? readPatches(patches).flatMap((patch) => problemsOf(patch, root)) : [`${patches} is missing`]
  if (problems.length > 0) {
    throw new UnpatchedDependencyError(`realtime-broker: refusing to start on unpatched dependencies:\n${problems.map((p) => `  ${p}`).join('\n')}\n` +
      'Install the published package (its patched dependencies are bundled) or, in a checkout, run `npm ci` (which runs patch-package).')
  }
  verified = true
}

function readPatches (dir: string): Patch[] {
  return readdirSync(dir).filter((file) => file.endsWith('.patch')).map((file) => {
    // patch-package's file names: name+version.patch, @scope+name+version.patch
    const parts = file.slice(0, -'.patch'.length).split('+')
    const version = parts.pop() ?? ''
    const name = parts.join('/')
    const files: PatchedFile[] = []
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      const header = /^diff --git a\/node_modules\/(?:@[^/]+\/)?[^/]+\/(\S+) /.exec(line)
      if (header !== null) files.push({ path: header[1] as string, addedLines: [] })
      else if (line.startsWith('+') && !line.startsWith('+++') && line.slice(1).trim() !== '') files.at(-1)?.addedLines.push(line.slice(1))
    }
    return { file, name, version, files }
  })
}

function problemsOf (patch: Patch, root: string): string[] {
  const dir = installedDir(patch.name, root)
  if (dir === null) return [`${patch.name} is not installed (patches/${patch.file})`]
  const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }
  if (version !== patch.version) return [`${patch.name}@${version} at ${dir}: patches/${patch.file} is for ${patch.version}`]
  return patch.files.flatMap(({ path, addedLines }) => {
    const target = join(dir, path)
    const text = existsSync(target) ? readFileSync(target, 'utf8') : ''
    return addedLines.every((line) => text.includes(line)) ? [] : [`${patch.name}@${version} at ${dir} is not patched: ${path} lacks patches/${patch.file}`]
  })
}

/** Where Node's resolution from this package finds a dependency: nested first, then hoisted. */
function installedDir (name: string, root: string): string | null {
  for (let dir = root; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name)
    if (existsSync(join(candidate, 'package.json'))) return candidate
    if (dirname(dir) === dir) return null
  }
}
