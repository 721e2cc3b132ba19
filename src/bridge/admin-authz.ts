// The admin API's revocation route: POST /api/v1/admin/authz/revoke {"user", "disconnect"?,
// "unsubscribe"?} drops the user's cached authorization hook answers on every node and, if
// asked, disconnects or unsubscribes the user's clients. Mounted by admin.ts behind its admin check.
import { parseRevocation, type Revocation } from '../acl/authorization-hook.js'
import type { AuditTrail } from '../broker/admin/audit-trail.js'
import { jsonBody, type AdminRoute } from './admin-route.js'

const maxBody = 64 * 1024

export function addRevocationRoute (route: AdminRoute, prefix: string, revoke: (revocation: Revocation) => Promise<void>, trail: AuditTrail): void {
  route(`POST ${prefix}/authz/revoke`, async (req, _url, admin) => {
    const revocation = parseRevocation(await jsonBody(req, maxBody))
    if ('error' in revocation) return [400, { error: revocation.error }]
    try {
      await revoke(revocation)
    } catch (err) {
      return [503, { error: `the revocation could not be sent: ${(err as Error).message}` }]
    }
    trail.record({ admin, event: 'admin.authz-revoke', target: revocation.user, detail: { disconnect: revocation.disconnect, unsubscribe: revocation.unsubscribe } })
    return [202, { revoked: revocation.user, disconnect: revocation.disconnect, unsubscribe: revocation.unsubscribe }]
  })
}
