// The members of shared subscription groups across the cluster (src/broker/shared/ keeps the
// groups and picks a member). As the routed emitter does for routes: each node keeps its own
// members in a Redis set `shared-members:<node>` (one key per node, tagged by it on a Redis
// Cluster: every command touches one slot; a member with a persistent session that went away stays as `<group>\0<client>\0<until>`)
// and announces changes on the channel `shared:changes`; every node keeps the whole table
// and reloads it when its subscriber reconnects. A dead node's members are dropped by every
// node once the survivor that claims its death deletes its set; a node the others retired
// announces its members again. Copies for a member travel through the routed emitter's inboxes.
import type mqemitter from 'mqemitter'
import type { RedisClient } from '../storage/redis-clients.js'
import type { RedisKeys } from '../storage/redis-keys.js'
import type { Logger } from '../observability/logger.js'
import type { MemberId } from '../shared/dispatch-strategy.js'
import type { ShareCluster, ShareView } from '../shared/shared-emitter.js'
import type { NodeRegistry } from './node-registry.js'
import type { RoutedEmitter } from './routed-emitter.js'

type Message = mqemitter.Message
type Callback = (error?: Error) => void

export interface SharedMembersOptions {
  nodeId: string
  /** Commands (SADD, SREM, PUBLISH). */
  commands: RedisClient
  /** Pub/sub subscriber (shared with the routed emitter's route changes). */
  subscriber: RedisClient
  registry: NodeRegistry
  emitter: RoutedEmitter
  /** Names the keys and the channel (ioredis' keyPrefix is not used on these connections). */
  keys: RedisKeys
  logger: Logger
}

interface MemberChange {
  node: string
  /** reset: the node has no members; reload: read the node's whole set again */
  op: 'add' | 'remove' | 'away' | 'reset' | 'reload'
  group?: string
  clientId?: string
  /** away: until when its session may last (ms since the epoch; null: no end) */
  until?: number | null
}

// MQTT strings cannot hold U+0000 [MQTT-1.5.4-2]: it separates a group from a client id
const separator = '\u0000'

export class SharedMembers implements ShareCluster {
  readonly nodeId: string
  private readonly keys: { changes: string, members: (node: string) => string }
  private view: ShareView | null = null
  // this node's away entries, by group and client id: removed once the member is back anywhere
  private readonly awayEntries = new Map<string, string>()

  constructor (private readonly options: SharedMembersOptions) {
    this.nodeId = options.nodeId
    const keys = options.keys
    this.keys = { changes: keys.channel('shared', 'changes'), members: (node) => keys.owned('shared-members', node) }
  }

  async start (view: ShareView): Promise<void> {
    const { commands, subscriber, registry, nodeId } = this.options
    this.view = view
    registry.on('died', (node) => { this.retire(node).catch((err: Error) => this.warn('retiring a dead node\'s members failed', err)) })
    registry.on('retired', () => { this.rejoin().catch((err: Error) => this.warn('announcing the members again failed', err)) })
    subscriber.on('message', (channel: string, text: string) => { if (channel === this.keys.changes) this.apply(JSON.parse(text) as MemberChange) })
    subscriber.on('ready', () => { this.load().catch((err: Error) => this.warn('member reload failed', err)) })
    await subscriber.subscribe(this.keys.changes)
    // a node id that is reused starts with no members of its previous life
    await commands.del(this.keys.members(nodeId))
    await commands.publish(this.keys.changes, JSON.stringify({ node: nodeId, op: 'reset' }))
    await this.load()
  }

  async joined (group: string, clientId: string): Promise<void> {
    await this.announce('add', group, clientId)
  }

  left (group: string, clientId: string): void {
    this.announce('remove', group, clientId).catch((err: Error) => this.warn('member removal failed', err))
  }

  away (group: string, clientId: string, until: number): void {
    const { commands, nodeId } = this.options
    const entry = group + separator + clientId + separator + String(until)
    this.awayEntries.set(group + separator + clientId, entry)
    commands.sadd(this.keys.members(nodeId), entry)
      .then(async () => await commands.publish(this.keys.changes, JSON.stringify({ node: nodeId, op: 'away', group, clientId, until: Number.isFinite(until) ? until : null })))
      .catch((err: Error) => this.warn('away member announce failed', err))
  }

  /** The member is back (here or on another node): this node's away entry for it goes. */
  private back (group: string, clientId: string): void {
    const entry = this.awayEntries.get(group + separator + clientId)
    if (entry === undefined) return
    this.awayEntries.delete(group + separator + clientId)
    this.options.commands.srem(this.keys.members(this.nodeId), entry).catch((err: Error) => this.warn('away member removal failed', err))
  }

  async leave (): Promise<void> {
    const { commands, nodeId } = this.options
    this.awayEntries.clear()
    await commands.del(this.keys.members(nodeId))
    await commands.publish(this.keys.changes, JSON.stringify({ node: nodeId, op: 'reset' }))
  }

  sendTo (node: string, message: Message, done: Callback): void {
    this.options.emitter.sendTo(node, message, done)
  }

  receive (receiver: (message: Message, done: () => void) => void): void {
    this.options.emitter.receiveShared(receiver)
  }

  private async announce (op: 'add' | 'remove', group: string, clientId: string): Promise<void> {
    const { commands, nodeId } = this.options
    const key = this.keys.members(nodeId)
    const entry = group + separator + clientId
    if (op === 'add') this.back(group, clientId)
    await (op === 'add' ? commands.sadd(key, entry) : commands.srem(key, entry))
    await commands.publish(this.keys.changes, JSON.stringify({ node: nodeId, op, group, clientId }))
  }

  private apply (change: MemberChange): void {
    const view = this.view
    if (view === null || change.node === this.nodeId) return
    if (change.op === 'add' && change.group !== undefined && change.clientId !== undefined) this.back(change.group, change.clientId)
    if (change.op === 'reset') {
      view.dropNode(change.node)
    } else if (change.op === 'reload') {
      this.reloadNode(change.node).catch((err: Error) => this.warn('member reload failed', err))
    } else if (change.group !== undefined && change.clientId !== undefined) {
      const member: MemberId = { node: change.node, clientId: change.clientId }
      if (change.op === 'add') view.add(change.group, member)
      else if (change.op === 'away') view.away(change.group, member, change.until ?? Infinity)
      else view.remove(change.group, member)
    }
  }

  /** Reads every live node's members again. */
  private async load (): Promise<void> {
    const nodes = await this.options.registry.live()
    await Promise.all(nodes.filter(({ id }) => id !== this.nodeId).map(async ({ id }) => await this.reloadNode(id)))
  }

  private async reloadNode (node: string): Promise<void> {
    const entries = await this.options.commands.smembers(this.keys.members(node))
    const view = this.view as ShareView
    view.dropNode(node)
    for (const entry of entries) {
      const [group, clientId, until] = entry.split(separator) as [string, string, string | undefined]
      if (until === undefined) view.add(group, { node, clientId })
      else view.away(group, { node, clientId }, Number(until))
    }
  }

  /** A dead node (claimed by this one): its members go, on every node. */
  private async retire (node: string): Promise<void> {
    const { commands, logger } = this.options
    this.view?.dropNode(node)
    await commands.del(this.keys.members(node))
    await commands.publish(this.keys.changes, JSON.stringify({ node, op: 'reset' }))
    logger.warn({ event: 'shared.node-lost', lost: node }, 'a node stopped beating: its shared subscription members are dropped')
  }

  private async rejoin (): Promise<void> {
    const { commands, nodeId } = this.options
    const key = this.keys.members(nodeId)
    const entries = [...(this.view as ShareView).localMembers().map(({ group, clientId }) => group + separator + clientId), ...this.awayEntries.values()]
    const transaction = commands.multi().del(key)
    if (entries.length > 0) transaction.sadd(key, ...entries)
    await transaction.exec()
    await commands.publish(this.keys.changes, JSON.stringify({ node: nodeId, op: 'reload' }))
    await this.load()
  }

  private warn (what: string, err: Error): void {
    this.options.logger.warn({ event: 'shared.members', reason: err.message }, what)
  }
}
