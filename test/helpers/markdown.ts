// Code blocks of the Markdown docs, so tests run the commands and snippets exactly as written.
import { readFileSync } from 'node:fs'

export interface CodeBlock {
  /** The fence's language: sh, js, ts, yaml, ... ('' when none). */
  lang: string
  code: string
  /** The section the block is in (the nearest heading above it). */
  heading: string
  /** The reason given by a `<!-- not run: reason -->` comment right above the block, or null. */
  notRun: string | null
  /** 1-based line of the opening fence. */
  line: number
}

export function codeBlocks (file: string): CodeBlock[] {
  const lines = readFileSync(file, 'utf8').split('\n')
  const blocks: CodeBlock[] = []
  let heading = ''
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    const headingMatch = /^#+\s+(.*)$/.exec(line)
    if (headingMatch !== null) heading = headingMatch[1] as string
    const fence = /^(\s*)```(\S*)\s*$/.exec(line)
    if (fence === null) continue
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i] as string); i++) body.push((lines[i] as string).slice((fence[1] as string).length))
    let above = start - 1
    while (above >= 0 && (lines[above] as string).trim() === '') above--
    const notRun = /^<!--\s*not run:\s*(.*?)\s*-->$/.exec((lines[above] ?? '').trim())
    blocks.push({ lang: fence[2] as string, code: `${body.join('\n')}\n`, heading, notRun: notRun === null ? null : notRun[1] as string, line: start + 1 })
  }
  return blocks
}
