// What an admin API route is (admin.ts checks the caller and answers; a route only computes
// its answer), shared by the files that add admin routes.
import type { IncomingMessage } from 'node:http'
import { isJsonBody, readBody } from './request-body.js'

/** An answer of the API: a status and a JSON body. */
export type Answer = [number, unknown]
export type Handler = (req: IncomingMessage, url: URL, admin: string) => Promise<Answer> | Answer
/** Adds a route for admins only (`GET /api/v1/admin/...`). */
export type AdminRoute = (key: string, handler: Handler) => void

/** Thrown by a handler: answered 400 with its message. */
export class BadRequest extends Error {}

const maxBodyBytes = 16 * 1024

/** The request's JSON body ({} when empty); BadRequest when it is not JSON. */
export async function jsonBody (req: IncomingMessage, maxBytes = maxBodyBytes): Promise<unknown> {
  if (!isJsonBody(req)) throw new BadRequest('expected content-type: application/json')
  const bytes = await readBody(req, maxBytes)
  return bytes.length === 0 ? {} : parsedJson(bytes)
}

/** `bytes` parsed as JSON; BadRequest when they are not JSON. */
export function parsedJson (bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new BadRequest('body is not JSON')
  }
}
