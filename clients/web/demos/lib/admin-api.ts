// The console's calls to the admin API (/api/v1/admin), with the signed-in admin's token.

export class ApiError extends Error {
  constructor (readonly status: number, message: string) {
    super(message)
    this.name = 'ApiError'
  }
}

export type Call = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) => Promise<T>

/** A caller of the admin API as the holder of `token`. */
export function adminApi (token: string): Call {
  return async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`/api/v1/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const answer = await response.json().catch(() => ({})) as { error?: string, issues?: Array<{ message: string }> }
    if (!response.ok) throw new ApiError(response.status, [answer.error ?? `${method} ${path}: ${response.status}`, ...(answer.issues ?? []).map((issue) => issue.message)].join(': '))
    return answer as T
  }
}

/** Whether the broker mints development tokens (http.devTokens): its endpoint answers a bad request with 400, not 404. */
export async function devTokensOffered (): Promise<boolean> {
  const response = await fetch('/api/v1/dev/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  return response.status === 400
}

/** A development token for `user` with the admin role. */
export async function devAdminToken (user: string): Promise<string> {
  const response = await fetch('/api/v1/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, roles: ['admin'], ttl: 8 * 3600 })
  })
  if (!response.ok) throw new ApiError(response.status, `the token endpoint answered ${response.status}`)
  return ((await response.json()) as { token: string }).token
}

/** `a/b` as one path segment. */
export const segment = (value: string): string => encodeURIComponent(value)

/** A query string of the defined, non-empty parameters. */
export function query (params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== '') search.set(name, String(value))
  const text = search.toString()
  return text === '' ? '' : `?${text}`
}
