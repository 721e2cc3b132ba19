// The operators' console (/console): the admin API of the whole cluster from any node, and a
// topic explorer on the browser SDK. Signs in with an admin token (kept for the tab's life in
// sessionStorage), or a development token when the broker offers them.
import { connect, type RealtimeClient, type Unsubscribe } from '/sdk/realtime.js'
import { adminApi, ApiError, devAdminToken, devTokensOffered, query, segment, type Call } from './lib/admin-api.js'
import { drawLineChart } from './lib/chart.js'
import { byId, el, timeAgo } from './lib/dom.js'
import { pushWindow, windowS } from './lib/fleet.js'
import { showConnection, showError } from './lib/status.js'

interface NodeRow { id: string, uptimeS: number, connections: number, messagesInPerS: number, messagesOutPerS: number, memory: { rss: number }, redis: Record<string, boolean>, draining: boolean }
interface ClientRow { id: string, user: string | null, node: string, transport: string, address: string | null, protocolVersion: number, subscriptions: number, connectedSince: string }
interface ClientDetail extends Omit<ClientRow, 'subscriptions'> { subscriptions: Array<{ topic: string, qos: number }>, session: { persistent: boolean, expiryIntervalS: number | null, queued: number } }
interface SessionRow { clientId: string, user: string | null, online: boolean, node: string | null, expiresAt: string | null, subscriptions: Array<{ topic: string }>, queued: number }
interface RetainedRow { topic: string, qos: number, bytes: number, preview: string, encoding: string }
interface BanRow { id: string, kind: string, value: string, reason: string, by: string, createdAt: string, expiresAt: string | null }
interface AuditRow { at: string, admin: string, event: string, target?: string, node: string }

const tokenKey = 'realtime-broker.console.token'
const pageSize = 50
const banner = byId('error')
const history = { connections: [] as number[], in: [] as number[], out: [] as number[] }
let call: Call = adminApi('')
let token = ''
let poller: ReturnType<typeof setInterval> | null = null
let explorer: RealtimeClient | null = null
let exploring: Unsubscribe | null = null

// ---- signing in

function signedIn (value: string, user: string): void {
  token = value
  call = adminApi(value)
  sessionStorage.setItem(tokenKey, value)
  byId('who').textContent = user
  byId('sign-in').hidden = true
  byId('app').hidden = false
  byId('sign-out').hidden = false
  banner.hidden = true
  document.body.dataset.signedIn = 'true'
  void refreshOverview()
  poller = setInterval(() => { void refreshOverview() }, 2000)
}

function signOut (reason?: string): void {
  if (poller !== null) clearInterval(poller)
  poller = null
  sessionStorage.removeItem(tokenKey)
  void explorer?.close()
  explorer = null
  byId('app').hidden = true
  byId('sign-out').hidden = true
  byId('sign-in').hidden = false
  byId('who').textContent = ''
  delete document.body.dataset.signedIn
  if (reason !== undefined) showError(banner, reason)
}

/** The token's subject, for the top bar (the broker checks the token; this only reads it). */
function subjectOf (value: string): string {
  try {
    const payload = JSON.parse(atob((value.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: string }
    return payload.sub ?? 'admin'
  } catch {
    return 'admin'
  }
}

async function trySignIn (value: string): Promise<void> {
  try {
    await adminApi(value)('GET', '/nodes')
    signedIn(value, subjectOf(value))
  } catch (err) {
    signOut(err instanceof ApiError && err.status === 403 ? 'This token has no admin role.' : `Sign-in failed: ${(err as Error).message}`)
  }
}

byId<HTMLFormElement>('sign-in-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void trySignIn(byId<HTMLTextAreaElement>('token').value.trim())
})
byId('dev-token').addEventListener('click', () => {
  devAdminToken(byId<HTMLInputElement>('dev-user').value.trim() || 'admin').then(trySignIn, (err: Error) => showError(banner, err.message))
})
byId('sign-out').addEventListener('click', () => signOut())

/** Runs an action of the console; an expired or revoked token signs out, other errors show. */
function act (work: () => Promise<unknown>): void {
  banner.hidden = true
  work().catch((err: unknown) => {
    if (err instanceof ApiError && err.status === 401) return signOut('Your token expired or was refused: sign in again.')
    showError(banner, err instanceof Error ? err.message : String(err))
  })
}

const button = (text: string, onClick: () => void, className = 'small'): HTMLButtonElement => {
  const element = el('button', { className: `button ${className}`, text })
  element.type = 'button'
  element.addEventListener('click', onClick)
  return element
}
const cell = (text: string | number | null, className?: string): HTMLTableCellElement => el('td', { text: text === null ? '–' : String(text), ...(className === undefined ? {} : { className }) })
const actions = (...buttons: HTMLButtonElement[]): HTMLTableCellElement => el('td', { className: 'actions' }, ...buttons)
const emptyRow = (columns: number, text: string): HTMLTableRowElement => {
  const td = el('td', { className: 'muted', text })
  td.colSpan = columns
  return el('tr', {}, td)
}
const fill = (body: HTMLElement, rows: HTMLTableRowElement[], columns: number, empty: string): void => {
  body.replaceChildren(...(rows.length === 0 ? [emptyRow(columns, empty)] : rows))
}
const formValues = (form: HTMLFormElement): Record<string, string> =>
  Object.fromEntries([...new FormData(form)].map(([name, value]) => [name, String(value).trim()]))

// ---- tabs (WAI-ARIA tabs: arrow keys move between them)

const tabs = [...document.querySelectorAll<HTMLButtonElement>('[role="tab"]')]
const loaders: Record<string, () => void> = {}
function select (tab: HTMLButtonElement): void {
  for (const other of tabs) {
    const selected = other === tab
    other.setAttribute('aria-selected', String(selected))
    other.tabIndex = selected ? 0 : -1
    byId(other.getAttribute('aria-controls') ?? '').hidden = !selected
  }
  loaders[tab.getAttribute('aria-controls') ?? '']?.()
}
tabs.forEach((tab, i) => {
  tab.addEventListener('click', () => select(tab))
  tab.addEventListener('keydown', (event) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0
    if (step === 0) return
    const next = tabs[(i + step + tabs.length) % tabs.length] as HTMLButtonElement
    next.focus()
    select(next)
  })
})

/** A paged list: its form lists from the first page, its "Next page" button appends the next, opening its tab lists. */
function listSection (tab: string, formId: string, moreId: string, list: (more: boolean) => Promise<void>): void {
  byId<HTMLFormElement>(formId).addEventListener('submit', (event) => {
    event.preventDefault()
    act(() => list(false))
  })
  byId(moreId).addEventListener('click', () => act(() => list(true)))
  loaders[tab] = () => act(() => list(false))
}

// ---- overview

async function refreshOverview (): Promise<void> {
  let answer: { nodes: NodeRow[], unreachable: Array<{ node: string }> }
  try {
    answer = await call('GET', '/nodes')
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) signOut('Your token expired or was refused: sign in again.')
    return
  }
  const { nodes } = answer
  const sum = (pick: (node: NodeRow) => number): number => nodes.reduce((total, node) => total + pick(node), 0)
  pushWindow(history.connections, sum((n) => n.connections))
  pushWindow(history.in, sum((n) => n.messagesInPerS))
  pushWindow(history.out, sum((n) => n.messagesOutPerS))
  byId('stat-nodes').textContent = answer.unreachable.length === 0 ? String(nodes.length) : `${nodes.length} (+${answer.unreachable.length} silent)`
  byId('stat-connections').textContent = String(history.connections.at(-1))
  byId('stat-in').textContent = String(history.in.at(-1))
  byId('stat-out').textContent = String(history.out.at(-1))
  if (!byId('overview').hidden) {
    drawLineChart(byId<HTMLCanvasElement>('chart-connections'), [{ values: history.connections, color: '#1f9d55', fill: true }], { min: 0, points: windowS })
    drawLineChart(byId<HTMLCanvasElement>('chart-messages'), [{ values: history.in, color: '#2f6fed' }, { values: history.out, color: '#d98a00' }], { min: 0, points: windowS })
  }
  fill(byId('nodes'), nodes.map((node) => {
    const row = el('tr', {},
      cell(node.id), cell(duration(node.uptimeS)), cell(node.connections), cell(node.messagesInPerS), cell(node.messagesOutPerS),
      cell(`${Math.round(node.memory.rss / 1048576)} MiB`),
      cell(Object.keys(node.redis).length === 0 ? 'none' : Object.values(node.redis).every(Boolean) ? 'up' : 'degraded'),
      cell(node.draining ? 'drained' : 'serving', node.draining ? 'warn' : 'ok'),
      actions(node.draining
        ? button('Undrain', () => act(async () => { await call('DELETE', `/nodes/${segment(node.id)}/drain`); await refreshOverview() }))
        : button('Drain', () => {
          if (confirm(`Drain ${node.id}? Its clients are disconnected and it refuses new ones until undrained.`)) act(async () => { await call('POST', `/nodes/${segment(node.id)}/drain`); await refreshOverview() })
        }, 'small danger')))
    row.dataset.node = node.id
    return row
  }), 9, 'no live node')
}

function duration (seconds: number): string {
  if (seconds < 120) return `${seconds} s`
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`
  return `${Math.round(seconds / 86_400)} d`
}

// ---- clients

let clientCursor: string | null = null
async function listClients (more = false): Promise<void> {
  const filters = formValues(byId<HTMLFormElement>('client-search'))
  const page = await call<{ total: number, clients: ClientRow[], next: string | null, unreachable: Array<{ node: string }> }>('GET', `/clients${query({ ...filters, limit: pageSize, after: more ? clientCursor ?? undefined : undefined })}`)
  clientCursor = page.next
  byId('client-more').hidden = page.next === null
  byId('client-count').textContent = `(${page.total}${page.unreachable.length > 0 ? `; not answering: ${page.unreachable.map((u) => u.node).join(', ')}` : ''})`
  const rows = page.clients.map((client) => {
    const row = el('tr', {},
      cell(client.id, 'mono'), cell(client.user), cell(client.node), cell(client.transport), cell(client.address),
      cell(client.protocolVersion === 5 ? '5' : '3.1.1'), cell(client.subscriptions), cell(timeAgo(Date.parse(client.connectedSince))),
      actions(
        button('Inspect', () => act(() => inspectClient(client.id))),
        button('Disconnect', () => act(async () => { await call('DELETE', `/clients/${segment(client.id)}`); await listClients() }), 'small danger'),
        button(client.user === null ? 'Ban id' : 'Ban user', () => {
          const ban = client.user === null ? { clientId: client.id } : { user: client.user }
          const reason = prompt(`Ban ${client.user === null ? `client ${client.id}` : `user ${client.user}`}: reason?`, '')
          if (reason !== null) act(async () => { await call('POST', '/bans', { ...ban, reason }); await listClients() })
        }, 'small danger')))
    row.dataset.client = client.id
    return row
  })
  const body = byId('client-rows')
  if (more) body.append(...rows)
  else fill(body, rows, 9, 'no client matches')
}

async function inspectClient (id: string): Promise<void> {
  const client = await call<ClientDetail>('GET', `/clients/${segment(id)}`)
  const detail = byId('client-detail')
  const list = el('ul', { className: 'plain' }, ...client.subscriptions.map((s) => el('li', { className: 'mono', text: `${s.topic} (QoS ${s.qos})` })))
  detail.replaceChildren(
    el('h2', { text: `Client ${client.id}` }),
    el('dl', {},
      el('dt', { text: 'User' }), el('dd', { text: client.user ?? 'anonymous' }),
      el('dt', { text: 'Node' }), el('dd', { text: client.node }),
      el('dt', { text: 'Address' }), el('dd', { text: `${client.address ?? '–'} over ${client.transport}` }),
      el('dt', { text: 'Session' }), el('dd', { text: client.session.persistent ? `persistent, ${client.session.queued} queued${client.session.expiryIntervalS === null ? '' : `, expires ${client.session.expiryIntervalS} s after disconnect`}` : 'clean' })),
    el('h3', { text: `Subscriptions (${client.subscriptions.length})` }), list)
  detail.hidden = false
  detail.focus()
}

listSection('clients', 'client-search', 'client-more', listClients)

// ---- sessions

let sessionCursor: string | null = null
async function listSessions (more = false): Promise<void> {
  const { state } = formValues(byId<HTMLFormElement>('session-filter'))
  const page = await call<{ sessions: SessionRow[], next: string | null }>('GET', `/sessions${query({ state, limit: pageSize, cursor: more ? sessionCursor ?? undefined : undefined })}`)
  sessionCursor = page.next
  byId('session-more').hidden = page.next === null
  const rows = page.sessions.map((session) => {
    const row = el('tr', {},
      cell(session.clientId, 'mono'), cell(session.user), cell(session.online ? `online on ${session.node ?? '?'}` : 'offline', session.online ? 'ok' : ''),
      cell(session.subscriptions.map((s) => s.topic).join(', ') || '–', 'mono'), cell(session.queued),
      cell(session.expiresAt === null ? '–' : new Date(session.expiresAt).toLocaleString()),
      actions(button('Delete', () => {
        if (confirm(`Delete the session of ${session.clientId} with its ${session.queued} queued messages?`)) act(async () => { await call('DELETE', `/sessions/${segment(session.clientId)}`); await listSessions() })
      }, 'small danger')))
    row.dataset.session = session.clientId
    return row
  })
  const body = byId('session-rows')
  if (more) body.append(...rows)
  else fill(body, rows, 7, 'no persistent session')
}
listSection('sessions', 'session-filter', 'session-more', listSessions)

// ---- retained messages

let retainedOffset = 0
async function listRetained (more = false): Promise<void> {
  const { filter } = formValues(byId<HTMLFormElement>('retained-filter'))
  retainedOffset = more ? retainedOffset + pageSize : 0
  const page = await call<{ messages: RetainedRow[], more: boolean }>('GET', `/retained${query({ filter, offset: retainedOffset, limit: pageSize })}`)
  byId('retained-more').hidden = !page.more
  const rows = page.messages.map((message) => {
    const row = el('tr', {},
      cell(message.topic, 'mono'), cell(message.qos), cell(message.bytes),
      cell(message.encoding === 'base64' ? `(binary) ${message.preview}` : message.preview, 'payload'),
      actions(button('Delete', () => {
        if (confirm(`Delete the retained message of ${message.topic}?`)) act(async () => { await call('DELETE', `/retained/${segment(message.topic)}`); await listRetained() })
      }, 'small danger')))
    row.dataset.topic = message.topic
    return row
  })
  const body = byId('retained-rows')
  if (more) body.append(...rows)
  else fill(body, rows, 5, 'no retained message matches')
}
listSection('retained', 'retained-filter', 'retained-more', listRetained)

// ---- bans

async function listBans (): Promise<void> {
  const { bans } = await call<{ bans: BanRow[] }>('GET', '/bans')
  fill(byId('ban-rows'), bans.map((ban) => {
    const row = el('tr', {},
      cell(`${ban.kind} ${ban.value}`, 'mono'), cell(ban.reason || '–'), cell(ban.by), cell(new Date(ban.createdAt).toLocaleString()),
      cell(ban.expiresAt === null ? 'until lifted' : new Date(ban.expiresAt).toLocaleString()),
      actions(button('Lift', () => act(async () => { await call('DELETE', `/bans/${segment(ban.id)}`); await listBans() }))))
    row.dataset.ban = ban.id
    return row
  }), 6, 'no ban in force')
}
byId<HTMLFormElement>('ban-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const form = event.currentTarget as HTMLFormElement
  const { kind = 'user', value = '', reason = '', duration: seconds } = formValues(form)
  act(async () => {
    await call('POST', '/bans', { [kind]: value, reason, ...(seconds === undefined || seconds === '' ? {} : { durationS: Number(seconds) }) })
    form.reset()
    await listBans()
  })
})
loaders.bans = () => act(listBans)

// ---- topics: a live subscription through the SDK, as the signed-in user's ACL allows

const messages = byId('explore-messages')
let received = 0
function explorerClient (): RealtimeClient {
  if (explorer === null) {
    explorer = connect({ token })
    showConnection(explorer, byId('connection'), banner)
  }
  return explorer
}
byId<HTMLFormElement>('explore-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const { filter = '#' } = formValues(event.currentTarget as HTMLFormElement)
  act(async () => {
    await exploring?.()
    exploring = null
    messages.replaceChildren()
    received = 0
    byId('explore-state').textContent = `subscribing to ${filter}…`
    exploring = await explorerClient().subscribe(filter, (payload, { topic, retained, qos }) => {
      received++
      byId('explore-count').textContent = `(${received})`
      const text = new TextDecoder().decode(payload)
      messages.prepend(el('li', {}, el('span', { className: 'mono topic', text: topic }), el('span', { className: 'muted', text: ` QoS ${qos}${retained ? ', retained' : ''} · ${new Date().toLocaleTimeString()}` }), el('pre', { text })))
      while (messages.childElementCount > 200) messages.lastElementChild?.remove()
    }, { raw: true })
    byId('explore-state').textContent = `subscribed to ${filter}`
  })
})
byId<HTMLFormElement>('publish-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const form = event.currentTarget as HTMLFormElement
  const { topic = '', payload = '' } = formValues(form)
  const retain = (form.elements.namedItem('retain') as HTMLInputElement).checked
  act(async () => { await explorerClient().publish(topic, payload, { raw: true, retain }) })
})
loaders.topics = () => act(async () => {
  explorerClient()
  const { filters } = await call<{ filters: Array<{ filter: string, subscribers: number }> }>('GET', `/subscriptions${query({ limit: 200 })}`)
  fill(byId('filter-rows'), filters.map((f) => el('tr', {}, cell(f.filter, 'mono'), cell(f.subscribers))), 2, 'no subscription')
})

// ---- audit

loaders.audit = () => act(async () => {
  const { entries } = await call<{ entries: AuditRow[] }>('GET', `/audit${query({ limit: 200 })}`)
  fill(byId('audit-rows'), entries.map((entry) => el('tr', {}, cell(new Date(entry.at).toLocaleString()), cell(entry.admin), cell(entry.event.replace(/^admin\./, '')), cell(entry.target ?? '–', 'mono'), cell(entry.node))), 5, 'no admin action yet')
})
loaders.overview = () => { void refreshOverview() }

// ---- start

devTokensOffered().then((offered) => { byId('dev-sign-in').hidden = !offered }, () => {})
const saved = sessionStorage.getItem(tokenKey)
if (saved !== null) void trySignIn(saved)
