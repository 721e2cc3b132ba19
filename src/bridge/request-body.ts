// Request bodies: read up to a size limit without buffering more than the limit; JSON checks.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sendJson } from './http-server.js'

export class BodyTooLarge extends Error {}

/**
 * Reads the body, buffering at most `maxBytes`; over that it rejects with BodyTooLarge and
 * drops the rest as it arrives. The socket is left open: destroying it would lose the 413
 * (refuseTooLarge closes the connection once that is written).
 */
export function readBody (req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): void => {
      req.removeListener('data', collect)
      req.resume()
      reject(new BodyTooLarge(`body over ${maxBytes} bytes`))
    }
    const chunks: Buffer[] = []
    let size = 0
    const collect = (chunk: Buffer): void => {
      size += chunk.length
      if (size > maxBytes) tooLarge()
      else chunks.push(chunk)
    }
    if (Number(req.headers['content-length'] ?? 0) > maxBytes) return tooLarge()
    req.on('data', collect)
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** Answers 413 and closes the connection after it, so that the rest of the body is not read. */
export function refuseTooLarge (res: ServerResponse, error: BodyTooLarge): void {
  res.setHeader('connection', 'close')
  sendJson(res, 413, { error: error.message })
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
