// The admin API's view of the whole cluster: asks every live node (the node registry) through
// admin-rpc.ts and merges their answers. A node that does not answer in time is reported as
// unreachable beside a partial answer, never a hang. Each node returns at most one page.
import type { LiveNode } from '../cluster/node-registry.js'
import { RpcError, type AdminRpc } from './admin-rpc.js'
import type { Ban, Bans } from './bans.js'
import type { ClientDetail, ClientQuery, ClientSummary, NodeStats } from './node-admin.js'

export interface ClusterClientQuery extends Omit<ClientQuery, 'take'> {
  /** Only this node's clients. */
  node?: string
  offset: number
  limit: number
}

export interface Unreachable {
  node: string
  reason: string
}

export interface ClientPage {
  total: number
  clients: ClientSummary[]
  /** The cursor of the next page (`after`), null on the last. */
  next: string | null
  unreachable: Unreachable[]
}

export interface ClusterAdminParts {
  rpc: AdminRpc
  liveNodes: () => Promise<LiveNode[]>
  bans: Bans
  /** How long the node list may take (Redis away: commands wait for it) before the call fails. */
  timeoutMs: number
}

export class ClusterAdmin {
  constructor (private readonly parts: ClusterAdminParts) {}

  /** The live nodes' ids; only `node` when given (none if it is not live). */
  async nodeIds (node?: string): Promise<string[]> {
    const ids = (await this.liveNodes()).map(({ id }) => id)
    return node === undefined ? ids : ids.filter((id) => id === node)
  }

  async listClients (query: ClusterClientQuery): Promise<ClientPage> {
    const { node, offset, limit, ...filters } = query
    const take = offset + limit
    const nodes = await this.nodeIds(node)
    const { answers, unreachable } = await this.parts.rpc.fanOut<{ matched: number, clients: ClientSummary[] }>(nodes, 'clients.list', { ...filters, take })
    let total = 0
    const merged: ClientSummary[] = []
    for (const { result } of answers) {
      total += result.matched
      merged.push(...result.clients)
    }
    merged.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
    const clients = merged.slice(offset, take)
    const last = clients.at(-1)
    return { total, clients, next: clients.length === limit && last !== undefined ? last.id : null, unreachable }
  }

  /** The client with this id wherever it is connected, or null. */
  async findClient (id: string): Promise<{ client: ClientDetail | null, unreachable: Unreachable[] }> {
    const { answers, unreachable } = await this.parts.rpc.fanOut<ClientDetail | null>(await this.nodeIds(), 'clients.get', { id })
    return { client: answers.find(({ result }) => result !== null)?.result ?? null, unreachable }
  }

  /** Disconnects `id` wherever it is connected; the nodes it was connected to. */
  async disconnectClient (id: string): Promise<{ nodes: string[], unreachable: Unreachable[] }> {
    const { answers, unreachable } = await this.parts.rpc.fanOut<boolean>(await this.nodeIds(), 'clients.disconnect', { id })
    return { nodes: answers.filter(({ result }) => result).map(({ node }) => node), unreachable }
  }

  /**
   * The filters the connected clients subscribe to, cluster-wide, each with its subscribers
   * (a filter on two nodes counts the clients of both), by filter; `limit` after the first `offset`.
   */
  async subscriptions (prefix: string, offset: number, limit: number): Promise<{ total: number, filters: Array<{ filter: string, subscribers: number }>, unreachable: Unreachable[] }> {
    const { answers, unreachable } = await this.parts.rpc.fanOut<Record<string, number>>(await this.nodeIds(), 'subscriptions.count', { prefix })
    const merged = new Map<string, number>()
    for (const { result } of answers) for (const [filter, count] of Object.entries(result)) merged.set(filter, (merged.get(filter) ?? 0) + count)
    const filters = [...merged].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([filter, subscribers]) => ({ filter, subscribers }))
    return { total: filters.length, filters: filters.slice(offset, offset + limit), unreachable }
  }

  /** Every live node with its stats, by id. */
  async nodes (): Promise<{ nodes: Array<NodeStats & { lastBeat: string }>, unreachable: Unreachable[] }> {
    const live = await this.liveNodes()
    const { answers, unreachable } = await this.parts.rpc.fanOut<NodeStats>(live.map(({ id }) => id), 'node.stats')
    const beats = new Map(live.map(({ id, lastBeat }) => [id, new Date(lastBeat).toISOString()]))
    const nodes = answers.map(({ node, result }) => ({ ...result, lastBeat: beats.get(node) ?? '' }))
    return { nodes: nodes.sort((a, b) => a.id.localeCompare(b.id)), unreachable }
  }

  /** The node registry's live nodes; rejects (RpcError) when it cannot say within the timeout. */
  private async liveNodes (): Promise<LiveNode[]> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new RpcError('registry', `the node list did not come within ${this.parts.timeoutMs} ms (is Redis reachable?)`)), this.parts.timeoutMs)
    })
    try {
      return await Promise.race([this.parts.liveNodes(), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Drains `node` (or lifts its drain); its stats after. */
  async drain (node: string, drain: boolean): Promise<NodeStats> {
    return await this.parts.rpc.call(node, 'node.drain', { drain }) as NodeStats
  }

  /** The bans in effect (this node's copy, reloaded as they change). */
  async bans (): Promise<Ban[]> {
    await this.parts.bans.refresh()
    return this.parts.bans.list().sort((a, b) => a.id.localeCompare(b.id))
  }

  /** Stores `ban` and has every node enforce it now (each disconnects the clients it matches). */
  async ban (ban: Ban): Promise<{ unreachable: Unreachable[] }> {
    await this.parts.bans.add(ban)
    return { unreachable: (await this.parts.rpc.fanOut(await this.nodeIds(), 'bans.reload')).unreachable }
  }

  async lift (id: string): Promise<{ lifted: boolean, unreachable: Unreachable[] }> {
    const lifted = await this.parts.bans.lift(id)
    return { lifted, unreachable: lifted ? (await this.parts.rpc.fanOut(await this.nodeIds(), 'bans.reload')).unreachable : [] }
  }
}
