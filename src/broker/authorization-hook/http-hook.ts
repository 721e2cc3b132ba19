// The authorization hook's HTTP side: asks the backend (a signed POST with a timeout), caches
// its answers (acl/authorization-hook.ts), shares one request among identical questions in
// flight, and counts requests, results and latency. A slow backend delays only the client
// whose question waits: Aedes runs each client's hooks in that client's own order.
import { Counter, Histogram, type Registry } from 'prom-client'
import { failureAnswer, HookAnswerCache, parseHookAnswer, type HookAction, type HookAnswer, type HookDecider, type HookQuestion } from '../../acl/authorization-hook.js'
import { ConfigError, type BrokerConfig } from '../config/config.js'
import type { Logger } from '../observability/logger.js'
import { postSigned } from '../webhooks/http-post.js'

type HookConfig = BrokerConfig['authorizationHook']
type HookResult = 'allow' | 'deny' | 'error' | 'timeout'

// answers larger than this are failures (read no further)
const maxAnswerBytes = 64 * 1024

export class HttpHookDecider implements HookDecider {
  private readonly cache: HookAnswerCache
  private readonly inFlight = new Map<string, Promise<HookAnswer>>()
  private readonly asked: ReadonlySet<HookAction>
  private readonly secret: string | undefined
  private readonly requests: Counter
  private readonly cacheHits: Counter
  private readonly cacheHitsOf: Record<HookAction, Counter.Internal>
  private readonly latency: Histogram

  constructor (private readonly config: HookConfig, registry: Registry, private readonly logger: Logger, env: Record<string, string | undefined>) {
    this.cache = new HookAnswerCache(config.maxCacheEntries)
    this.asked = new Set((['connect', 'subscribe', 'publish'] as const).filter((action) => config[action]))
    this.secret = config.secret ?? (config.secretEnv === undefined ? undefined : env[config.secretEnv])
    if (config.secretEnv !== undefined && (this.secret === undefined || this.secret.length < 16)) {
      throw new ConfigError(`config: authorizationHook.secretEnv: expected the environment variable ${config.secretEnv} to hold a signing secret of at least 16 characters`)
    }
    const registers = [registry]
    this.requests = new Counter({ name: 'realtime_broker_authz_hook_requests_total', help: 'Authorization hook requests, by action and result (allow, deny, error, timeout)', labelNames: ['action', 'result'], registers })
    this.cacheHits = new Counter({ name: 'realtime_broker_authz_hook_cache_hits_total', help: 'Authorization questions answered from the cache, by action', labelNames: ['action'], registers })
    // a warm cache answers every message: its counter is looked up by label once, not per answer
    this.cacheHitsOf = { connect: this.cacheHits.labels('connect'), subscribe: this.cacheHits.labels('subscribe'), publish: this.cacheHits.labels('publish') }
    this.latency = new Histogram({ name: 'realtime_broker_authz_hook_duration_seconds', help: 'Authorization hook requests, from send to answer or failure, by action', labelNames: ['action'], registers, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] })
  }

  asks (action: HookAction): boolean {
    return this.asked.has(action)
  }

  decide (question: HookQuestion): HookAnswer | Promise<HookAnswer> {
    // anonymous clients are cached per client id: the backend can only tell them apart by it
    const user = question.user ?? `\u0000${question.clientId}`
    const topic = question.topic ?? ''
    const cached = this.cache.get(user, question.action, topic, Date.now())
    if (cached !== undefined) {
      this.cacheHitsOf[question.action].inc()
      return cached
    }
    const key = `${user}\u0000${question.action}\u0000${topic}`
    let pending = this.inFlight.get(key)
    if (pending === undefined) {
      pending = this.ask(question).then((answer) => {
        this.cache.set(user, question.action, topic, answer, Date.now())
        return answer
      }).finally(() => this.inFlight.delete(key))
      this.inFlight.set(key, pending)
    }
    return pending
  }

  /** Drops a user's cached answers on this node; returns how many. */
  revoke (user: string): number {
    return this.cache.revoke(user)
  }

  private async ask (question: HookQuestion): Promise<HookAnswer> {
    const started = performance.now()
    let result: HookResult
    let answer: HookAnswer
    try {
      const response = await postSigned({ url: this.config.url, body: JSON.stringify(question), secret: this.secret, timeoutMs: this.config.timeoutMs, maxAnswerBytes })
      const ok = response.status >= 200 && response.status < 300
      const parsed = ok && !response.truncated ? parseHookAnswer(JSON.parse(response.body) as unknown, this.config.cacheTtlS) : null
      if (parsed === null) throw new Error(ok ? 'the answer is not {"allow": true|false, "ttl"?: seconds, ...} (at most 64 KiB)' : `HTTP ${response.status}`)
      answer = parsed
      result = parsed.allow ? 'allow' : 'deny'
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError'
      result = timedOut ? 'timeout' : 'error'
      answer = failureAnswer(this.config.onFailure)
      this.logger.warn({ event: 'authz-hook.failed', action: question.action, user: question.user, reason: timedOut ? `no answer within ${this.config.timeoutMs} ms` : (err as Error).message, decided: answer.allow ? 'allow' : 'deny' }, 'authorization hook failed: the failure policy decides')
    }
    this.requests.labels(question.action, result).inc()
    this.latency.labels(question.action).observe((performance.now() - started) / 1000)
    return answer
  }
}
