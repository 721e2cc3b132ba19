// Node-to-node requests of the admin API: any node answers for the whole cluster by asking the
// others. Each node listens on a pub/sub channel of its own (`admin:rpc:<node>`) and answers on
// the asking node's (`admin:reply:<node>`); a request not answered within `timeoutMs` fails, so
// a dead or partitioned node costs the caller one timeout, never a hang. Pub/sub channels are
// not keys: they hash to no slot, and reach every shard of a Redis Cluster. Without Redis
// (one node) the only node is this one and calls are plain function calls. Off the message
// path: nothing here runs per message.
import { randomUUID } from 'node:crypto'
import type { RedisClient } from '../storage/redis-clients.js'
import type { RedisKeys } from '../storage/redis-keys.js'
import type { Logger } from '../observability/logger.js'

export type RpcHandler = (params: Record<string, unknown>) => Promise<unknown> | unknown

interface RpcRequest {
  kind: 'request'
  id: string
  from: string
  method: string
  params: Record<string, unknown>
}

interface RpcReply {
  kind: 'reply'
  id: string
  ok: boolean
  result?: unknown
  error?: string
}

/** A request a node refused, with its reason (an unknown method, bad parameters, a failure there). */
export class RpcError extends Error {
  constructor (readonly node: string, message: string) {
    super(message)
    this.name = 'RpcError'
  }
}

export interface AdminRpcOptions {
  nodeId: string
  /** Publishes requests and replies (any connection not in subscriber mode); null: one node. */
  commands: RedisClient | null
  /** A connection of this module's own, put in subscriber mode. */
  subscriber: RedisClient | null
  /** Names the channels; with the key prefix, which ioredis adds to keys, not to channels. */
  keys: RedisKeys
  timeoutMs: number
  logger: Logger
}

/** The answers of a fan-out: by node, and the nodes that did not answer in time or failed. */
export interface FanOut<T> {
  answers: Array<{ node: string, result: T }>
  unreachable: Array<{ node: string, reason: string }>
}

export class AdminRpc {
  private readonly handlers = new Map<string, RpcHandler>()
  private readonly pending = new Map<string, { node: string, resolve: (value: unknown) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }>()
  private readonly channel: (kind: 'rpc' | 'reply', node: string) => string

  constructor (private readonly options: AdminRpcOptions) {
    this.channel = (kind, node) => options.keys.channel('admin', `${kind}:${node}`)
  }

  /** Answers `method` on this node, for this node and the others. */
  handle (method: string, handler: RpcHandler): void {
    this.handlers.set(method, handler)
  }

  async start (): Promise<void> {
    const { subscriber, nodeId } = this.options
    if (subscriber === null) return
    subscriber.on('message', (channel: string, text: string) => this.received(channel, text))
    await subscriber.subscribe(this.channel('rpc', nodeId), this.channel('reply', nodeId))
  }

  /** Calls `method` on `node` (this one directly); rejects after the timeout. */
  call (node: string, method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const { commands, nodeId, timeoutMs } = this.options
    if (node === nodeId || commands === null) {
      if (node !== nodeId) return Promise.reject(new RpcError(node, `no node ${node}`))
      return this.runLocal(method, params).then((reply) => reply.ok ? reply.result : Promise.reject(new RpcError(node, reply.error ?? 'failed')))
    }
    const id = randomUUID()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new RpcError(node, `no answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { node, resolve, reject, timer })
      const request: RpcRequest = { kind: 'request', id, from: nodeId, method, params }
      commands.publish(this.channel('rpc', node), JSON.stringify(request)).catch((err: Error) => {
        clearTimeout(timer)
        this.pending.delete(id)
        reject(new RpcError(node, `request not sent: ${err.message}`))
      })
    })
  }

  /** Calls `method` on every node of `nodes` at once; a node that fails is listed, not fatal. */
  async fanOut<T> (nodes: string[], method: string, params: Record<string, unknown> = {}): Promise<FanOut<T>> {
    const settled = await Promise.allSettled(nodes.map(async (node) => ({ node, result: await this.call(node, method, params) as T })))
    const out: FanOut<T> = { answers: [], unreachable: [] }
    settled.forEach((outcome, i) => {
      if (outcome.status === 'fulfilled') out.answers.push(outcome.value)
      else out.unreachable.push({ node: nodes[i] as string, reason: (outcome.reason as Error).message })
    })
    return out
  }

  async close (): Promise<void> {
    for (const [id, { reject, timer }] of this.pending) {
      clearTimeout(timer)
      reject(new RpcError(this.options.nodeId, 'closing'))
      this.pending.delete(id)
    }
    this.options.subscriber?.disconnect()
  }

  private async runLocal (method: string, params: Record<string, unknown>): Promise<{ ok: boolean, result?: unknown, error?: string }> {
    const handler = this.handlers.get(method)
    if (handler === undefined) return { ok: false, error: `unknown method ${method}` }
    try {
      return { ok: true, result: await handler(params) }
    } catch (err) {
      return { ok: false, error: (err as Error).message }
    }
  }

  private received (channel: string, text: string): void {
    let message: RpcRequest | RpcReply
    try {
      message = JSON.parse(text) as RpcRequest | RpcReply
    } catch {
      this.options.logger.warn({ event: 'admin.rpc-malformed', channel }, 'an admin request or reply is not JSON: ignored')
      return
    }
    if (message.kind === 'reply') {
      const waiting = this.pending.get(message.id)
      if (waiting === undefined) return // answered after its timeout
      this.pending.delete(message.id)
      clearTimeout(waiting.timer)
      if (message.ok) waiting.resolve(message.result)
      else waiting.reject(new RpcError(waiting.node, message.error ?? 'failed'))
      return
    }
    if (message.kind !== 'request' || typeof message.from !== 'string' || typeof message.method !== 'string') return
    void this.runLocal(message.method, message.params ?? {}).then((reply) => {
      const answer: RpcReply = { kind: 'reply', id: message.id, ...reply }
      return this.options.commands?.publish(this.channel('reply', message.from), JSON.stringify(answer))
    }).catch((err: Error) => this.options.logger.warn({ event: 'admin.rpc-reply-failed', to: message.from, reason: err.message }, 'could not answer an admin request'))
  }
}
