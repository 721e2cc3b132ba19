// JWT verification with jsonwebtoken: keys selected by `kid`, an explicit algorithm allow-list
// per key (HMAC keys verify only HS*, public keys only their own asymmetric family, `none`
// never), `exp` required by default, `nbf`/`iss`/`aud` checked, bounded clock tolerance.
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import jwt, { type Algorithm, type JwtPayload } from 'jsonwebtoken'

export const hmacAlgorithms = ['HS256', 'HS384', 'HS512'] as const
export const rsaAlgorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const
export const ecAlgorithms = ['ES256', 'ES384', 'ES512'] as const
export const jwtAlgorithms = [...hmacAlgorithms, ...rsaAlgorithms, ...ecAlgorithms] as const
export type JwtAlgorithm = typeof jwtAlgorithms[number]

export interface JwtKeyConfig {
  kid?: string | undefined
  secret?: string | undefined
  secretEnv?: string | undefined
  publicKey?: string | undefined
  publicKeyFile?: string | undefined
  privateKeyFile?: string | undefined
  algorithms?: JwtAlgorithm[] | undefined
}

export interface JwtConfig {
  secret?: string | undefined
  keys: JwtKeyConfig[]
  algorithms: JwtAlgorithm[]
  issuer?: string | undefined
  audience?: string | undefined
  requireExp: boolean
  clockToleranceS: number
}

/** The claims the broker reads from a token. */
export interface TokenClaims {
  sub: string
  /**
   * When this broker stops accepting the token (epoch s): its `exp` plus the clock tolerance,
   * the instant verification uses, so a client accepted within the tolerance is not
   * disconnected at once by its expiry timer.
   */
  exp: number | null
  roles: string[] | null
  acl: { pub: string[], sub: string[] } | null
}

interface VerificationKey {
  kid: string | null
  key: KeyObject
  algorithms: Algorithm[]
}

export type VerifyResult = { ok: true, claims: TokenClaims } | { ok: false, reason: string }

export class JwtVerifier {
  private readonly keys: VerificationKey[]

  constructor (private readonly config: JwtConfig, env: Record<string, string | undefined>) {
    this.keys = buildKeys(config, env)
    if (this.keys.length === 0) throw new Error('auth.jwt: no key configured (set auth.jwt.secret, JWT_SECRET or auth.jwt.keys)')
  }

  verify (token: string): VerifyResult {
    const decoded = jwt.decode(token, { complete: true })
    if (decoded === null || typeof decoded.payload === 'string') return { ok: false, reason: 'malformed token' }
    const kid = decoded.header.kid ?? null
    const candidates = kid === null
      ? this.keys.filter((k) => k.kid === null || this.keys.length === 1)
      : this.keys.filter((k) => k.kid === kid)
    if (candidates.length === 0) return { ok: false, reason: kid === null ? 'token has no kid and no default key is configured' : `unknown key id "${kid}"` }
    const alg = decoded.header.alg
    const key = candidates.find((k) => k.algorithms.includes(alg as Algorithm))
    if (key === undefined) return { ok: false, reason: `algorithm ${alg} is not allowed for this key` }
    let payload: JwtPayload
    try {
      payload = jwt.verify(token, key.key, {
        algorithms: [alg as Algorithm],
        clockTolerance: this.config.clockToleranceS,
        ...(this.config.issuer === undefined ? {} : { issuer: this.config.issuer }),
        ...(this.config.audience === undefined ? {} : { audience: this.config.audience })
      }) as JwtPayload
    } catch (err) {
      return { ok: false, reason: (err as Error).message }
    }
    // jsonwebtoken reads iat only for maxAge: a token "issued" in the future (an issuer clock
    // ahead by more than the tolerance) would otherwise pass when it has no nbf.
    if (typeof payload.iat === 'number' && payload.iat > Math.floor(Date.now() / 1000) + this.config.clockToleranceS) {
      return { ok: false, reason: 'token issued in the future (iat beyond the clock tolerance)' }
    }
    return readClaims(payload, this.config.requireExp, this.config.clockToleranceS)
  }
}

function readClaims (payload: JwtPayload, requireExp: boolean, clockToleranceS: number): VerifyResult {
  if (typeof payload.sub !== 'string' || payload.sub === '') return { ok: false, reason: 'token has no subject (sub)' }
  if (typeof payload.exp !== 'number' && requireExp) return { ok: false, reason: 'token has no expiry (exp)' }
  const roles = payload.roles as unknown
  if (roles !== undefined && !isStringArray(roles)) return { ok: false, reason: 'claim "roles" must be an array of strings' }
  const acl = payload.acl as unknown
  let grants: TokenClaims['acl'] = null
  if (acl !== undefined) {
    const { pub = [], sub = [] } = (typeof acl === 'object' && acl !== null ? acl : { pub: null }) as { pub?: unknown, sub?: unknown }
    if (!isStringArray(pub) || !isStringArray(sub)) return { ok: false, reason: 'claim "acl" must be {pub: string[], sub: string[]}' }
    grants = { pub, sub }
  }
  return { ok: true, claims: { sub: payload.sub, exp: typeof payload.exp === 'number' ? payload.exp + clockToleranceS : null, roles: roles ?? null, acl: grants } }
}

function isStringArray (value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string')
}

function buildKeys (config: JwtConfig, env: Record<string, string | undefined>): VerificationKey[] {
  const entries: JwtKeyConfig[] = [...(config.secret === undefined ? [] : [{ secret: config.secret }]), ...config.keys]
  return entries.map((entry, index) => {
    const where = entry.kid === undefined ? `auth.jwt.keys[${index}]` : `auth.jwt key "${entry.kid}"`
    const secret = entry.secret ?? (entry.secretEnv === undefined ? undefined : env[entry.secretEnv])
    let key: KeyObject
    let family: readonly JwtAlgorithm[]
    if (secret !== undefined) {
      key = createSecretKey(Buffer.from(secret, 'utf8'))
      family = hmacAlgorithms
    } else {
      const pem = entry.publicKey ?? (entry.publicKeyFile === undefined ? undefined : readFileSync(entry.publicKeyFile, 'utf8'))
      if (pem === undefined) throw new Error(`${where}: needs secret, secretEnv (set), publicKey or publicKeyFile`)
      key = createPublicKey(pem)
      family = key.asymmetricKeyType === 'ec' ? ecAlgorithms : rsaAlgorithms
    }
    const wanted = entry.algorithms ?? config.algorithms
    const algorithms = family.filter((alg) => wanted.includes(alg) && config.algorithms.includes(alg))
    if (algorithms.length === 0) throw new Error(`${where}: none of the allowed algorithms (${wanted.join(', ')}) fits a ${secret !== undefined ? 'HMAC secret' : `${key.asymmetricKeyType ?? ''} public key`}`)
    return { kid: entry.kid ?? null, key, algorithms: algorithms as Algorithm[] }
  })
}

export interface SignOptions {
  user: string
  ttlS: number
  pub?: string[]
  sub?: string[]
  roles?: string[]
}

/** Signs a development/test token with the first configured signing key. */
export function signToken (config: JwtConfig, env: Record<string, string | undefined>, options: SignOptions): string {
  const entries: JwtKeyConfig[] = [...(config.secret === undefined ? [] : [{ secret: config.secret }]), ...config.keys]
  for (const entry of entries) {
    const secret = entry.secret ?? (entry.secretEnv === undefined ? undefined : env[entry.secretEnv])
    const privateKey = secret === undefined && entry.privateKeyFile !== undefined ? readFileSync(entry.privateKeyFile, 'utf8') : undefined
    if (secret === undefined && privateKey === undefined) continue
    const family: readonly JwtAlgorithm[] = secret !== undefined ? hmacAlgorithms : [...rsaAlgorithms, ...ecAlgorithms]
    const algorithm = (entry.algorithms ?? config.algorithms).find((alg) => family.includes(alg) && config.algorithms.includes(alg))
    if (algorithm === undefined) continue
    const payload: Record<string, unknown> = {}
    if (options.pub !== undefined || options.sub !== undefined) payload.acl = { pub: options.pub ?? [], sub: options.sub ?? [] }
    if (options.roles !== undefined) payload.roles = options.roles
    return jwt.sign(payload, secret ?? (privateKey as string), {
      algorithm,
      subject: options.user,
      expiresIn: options.ttlS,
      ...(entry.kid === undefined ? {} : { keyid: entry.kid }),
      ...(config.issuer === undefined ? {} : { issuer: config.issuer }),
      ...(config.audience === undefined ? {} : { audience: config.audience })
    })
  }
  throw new Error('no signing key: configure auth.jwt.secret (or JWT_SECRET), or a key with secret/secretEnv or privateKeyFile')
}
