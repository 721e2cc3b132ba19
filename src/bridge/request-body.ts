// Request bodies: read up to a size limit without buffering more than the limit; JSON checks.
import type { IncomingMessage } from 'node:http'

export class BodyTooLarge extends Error {}

export function readBody (req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > maxBytes) {
      reject(new BodyTooLarge(`body over ${maxBytes} bytes`))
      req.resume()
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBytes) {
        reject(new BodyTooLarge(`body over ${maxBytes} bytes`))
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** Whether the body is declared `application/json`, in UTF-8 (the only charset JSON has, RFC 8259 8.1). */
export function isJsonBody (req: IncomingMessage): boolean {
  const [mediaType = '', ...parameters] = (req.headers['content-type'] ?? '').split(';').map((part) => part.trim().toLowerCase())
  return mediaType === 'application/json' && parameters.every((p) => !p.startsWith('charset=') || /^charset="?utf-8"?$/.test(p))
}

/** Whether a parsed JSON value nests arrays and objects more than `maxDepth` deep (iterative: no stack to overflow). */
export function nestsDeeperThan (value: unknown, maxDepth: number): boolean {
  const isContainer = (item: unknown): item is object => typeof item === 'object' && item !== null
  let level = isContainer(value) ? [value] : []
  for (let depth = 1; level.length > 0; depth++) {
    if (depth > maxDepth) return true
    const next: object[] = []
    for (const container of level) for (const item of Object.values(container)) if (isContainer(item)) next.push(item)
    level = next
  }
  return false
}
