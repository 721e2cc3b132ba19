// Every connection is an open file: a node's connections stop at its open-files soft limit
// (RLIMIT_NOFILE; often 1024 by default). A process may raise its soft limit up to its hard
// limit without privileges. Node does so itself when it starts (node.cc, PlatformInit); a
// runtime that did not (an embedder's), or a limit lowered since, is raised here through
// util-linux's prlimit(1), which calls prlimit(2) on this process: Node has no setrlimit, and
// a native addon for one system call is not worth its build. The hard limit is the operator's
// (systemd LimitNOFILE, limits.conf): docs/operations.md.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { Logger } from '../observability/logger.js'

/** Open-files limits of a process; Infinity for "unlimited". */
export interface OpenFilesLimit {
  soft: number
  hard: number
}

/** The open-files limits of process `pid` (this one by default), or null where /proc has none (not Linux). */
export function openFilesLimit (pid: number | 'self' = 'self'): OpenFilesLimit | null {
  let limits: string
  try {
    limits = readFileSync(`/proc/${pid}/limits`, 'utf8')
  } catch {
    return null
  }
  // "Max open files            1024                 20000                files"
  const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits)
  if (match === null) return null
  const figure = (text: string | undefined): number => text === 'unlimited' ? Infinity : Number(text)
  return { soft: figure(match[1]), hard: figure(match[2]) }
}

/** Raises the soft open-files limit of process `pid` to its hard limit; throws if prlimit(1) cannot. */
export function raiseOpenFilesLimit (pid: number, hard: number): void {
  // "soft:" sets the soft limit only
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${hard === Infinity ? 'unlimited' : hard}:`], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5_000 })
}

/** Raises this process's soft open-files limit to its hard limit if it is lower, and logs both figures. */
export function reportOpenFilesLimit (logger: Logger): OpenFilesLimit | null {
  const before = openFilesLimit()
  if (before === null) return null
  let after = before
  if (before.soft < before.hard) {
    try {
      raiseOpenFilesLimit(process.pid, before.hard)
      after = openFilesLimit() ?? before
    } catch (err) {
      logger.warn({ event: 'process.open-files-not-raised', soft: before.soft, hard: before.hard, reason: (err as Error).message.split('\n')[0] }, 'could not raise the open-files soft limit to the hard limit (is util-linux prlimit installed?); connections stop at the soft limit')
    }
  }
  // "unlimited" reads as null in JSON
  const figure = (n: number): number | string => n === Infinity ? 'unlimited' : n
  logger.info({
    event: 'process.open-files',
    soft: figure(after.soft),
    hard: figure(after.hard),
    ...(after.soft === before.soft ? {} : { raisedFrom: figure(before.soft) })
  }, `open-files limit ${figure(after.soft)} (hard limit ${figure(after.hard)}): at most about that many connections in this process`)
  return after
}
