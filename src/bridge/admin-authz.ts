// The admin API's revocation route: POST /api/v1/admin/authz/revoke {"user", "disconnect"?,
// "unsubscribe"?} drops the user's cached authorization hook answers on every node and, if
// asked, disconnects or unsubscribes the user's clients. Mounted by admin.ts behind its admin check.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { parseRevocation, type Revocation } from '../acl/authorization-hook.js'
import type { Logger } from '../broker/observability/logger.js'
import { sendJson, type Routes } from './http-server.js'
import { BodyTooLarge, isJsonBody, readBody, refuseTooLarge } from './request-body.js'

type AdminHandler = (req: IncomingMessage, res: ServerResponse, url: URL, admin: string) => void
type Guard = (handler: AdminHandler) => (req: IncomingMessage, res: ServerResponse, url: URL) => void

const maxBody = 64 * 1024

export function addRevocationRoute (routes: Routes, prefix: string, guarded: Guard, revoke: (revocation: Revocation) => Promise<void>, audit: Logger): void {
  routes.set(`POST ${prefix}/authz/revoke`, guarded((req, res, _url, admin) => {
    if (!isJsonBody(req)) return sendJson(res, 415, { error: 'expected content-type: application/json' })
    readBody(req, maxBody).then(async (bytes) => {
      let body: unknown
      try {
        body = JSON.parse(bytes.toString('utf8'))
      } catch {
        return sendJson(res, 400, { error: 'expected a JSON body' })
      }
      const revocation = parseRevocation(body)
      if ('error' in revocation) return sendJson(res, 400, { error: revocation.error })
      audit.info({ event: 'admin.authz-revoke', admin, ...revocation }, 'admin revoked a user\'s authorization answers')
      await revoke(revocation).then(
        () => sendJson(res, 202, { revoked: revocation.user, disconnect: revocation.disconnect, unsubscribe: revocation.unsubscribe }),
        (err: Error) => sendJson(res, 503, { error: `the revocation could not be sent: ${err.message}` }))
    }).catch((err: Error) => {
      if (err instanceof BodyTooLarge) refuseTooLarge(res, err)
      else sendJson(res, 400, { error: err.message })
    })
  }))
}
