// Chat demo: rooms with history (kept by the broker: history.topics), who is online, who is typing.
// ?user=NAME picks the name, ?rooms=a,b the rooms the user's token grants (when the broker
// mints tokens), ?room=NAME the room to open, ?ttl=S the token lifetime.
import { RealtimeError, TypingIndicator, watchPresence, type PresenceState, type RealtimeClient } from '/sdk/realtime.js'
import { addMessage, chatGrants, historyLength, mergeHistory, parseMessage, roomTopics, type ChatMessage } from './lib/chat-model.js'
import { byId, el, timeAgo } from './lib/dom.js'
import { randomId, startSession } from './lib/session.js'
import { showConnection, showError, showFailure } from './lib/status.js'

const params = new URLSearchParams(location.search)
const user = params.get('user') ?? localStorage.getItem('chat-user') ?? `guest-${Math.floor(1000 + Math.random() * 9000)}`
localStorage.setItem('chat-user', user)
const grantedRooms = (params.get('rooms') ?? 'general,random').split(',').filter((room) => room !== '')
const rooms = [...new Set(['general', 'random', 'staff', ...grantedRooms])]
const banner = byId('error')

interface OpenRoom {
  name: string
  /** Subscribed: messages can be sent. */
  open: boolean
  messages: ChatMessage[]
  typing: TypingIndicator | null
  stop: Array<() => Promise<void>>
}

const pending = new Map<string, ChatMessage>()
let current: OpenRoom | null = null
let mode: 'token' | 'anonymous' = 'anonymous'

async function main (): Promise<void> {
  const session = await startSession({ user, grants: chatGrants(user, grantedRooms), ttlS: Number(params.get('ttl') ?? 3600), announcePresence: true })
  mode = session.mode
  const { client } = session
  byId('identity').textContent = mode === 'token' ? `${user} · token for ${grantedRooms.map((r) => `#${r}`).join(', ')}` : `${user} · anonymous`
  showConnection(client, byId('connection'), banner)
  renderRooms(client)
  byId<HTMLFormElement>('composer').addEventListener('submit', (event) => {
    event.preventDefault()
    void send(client)
  })
  byId<HTMLInputElement>('text').addEventListener('input', () => current?.typing?.notify())
  watchPresence(client, renderPeople).catch(showFailure(banner, 'presence: '))
  await openRoom(client, params.get('room') ?? grantedRooms[0] ?? 'general')
}

function renderRooms (client: RealtimeClient): void {
  byId('rooms').replaceChildren(...rooms.map((room) => {
    const locked = mode === 'token' && !grantedRooms.includes(room)
    const button = el('button', { className: room === current?.name ? 'active' : '', text: `#${room}` })
    if (locked) button.append(el('span', { className: 'lock', text: 'no access', title: 'your token does not grant this room' }))
    button.dataset.room = room
    button.addEventListener('click', () => { void openRoom(client, room) })
    return el('li', {}, button)
  }))
}

async function openRoom (client: RealtimeClient, name: string): Promise<void> {
  const previous = current
  current = { name, open: false, messages: [], typing: null, stop: [] }
  const room = current
  previous?.typing?.stop()
  await Promise.all(previous?.stop.map((stop) => stop()) ?? [])
  renderRooms(client)
  byId('room-title').textContent = `#${name}`
  byId('room-note').textContent = `${roomTopics(name).messages} · QoS 1 · last ${historyLength} kept`
  byId('room-error').hidden = true
  byId('typing').textContent = ''
  renderMessages([])
  history.replaceState(null, '', `?${new URLSearchParams({ ...Object.fromEntries(params), room: name })}`)
  const topics = roomTopics(name)
  try {
    const show = (messages: ChatMessage[]): void => {
      room.messages = messages
      if (current === room) renderMessages(messages)
    }
    // subscribe, then read: a message sent in between comes both ways and is shown once (by id)
    room.stop.push(await client.subscribe(topics.messages, (message) => show(addMessage(room.messages, message))))
    const load = async (): Promise<void> => {
      try {
        const read = await client.history(topics.messages, { limit: historyLength })
        show(mergeHistory(room.messages, read.messages.map((m) => parseMessage(m.payload))))
      } catch (err) {
        // a broker that keeps no history for the room: live messages only
        byId('room-note').textContent = `${topics.messages} · QoS 1 · no history (${(err as Error).message})`
      }
    }
    // a reconnect the SDK could not fill in (too long away): read the room again
    const offRecovery = client.on('recovery', (event) => { if (event.topic === topics.messages && !event.recovered) void load() })
    room.stop.push(async () => offRecovery())
    await load()
    room.open = true
    room.typing = new TypingIndicator(client, topics.typing, { user })
    room.stop.push(await room.typing.watch((typists) => { if (current === room) renderTyping(typists) }))
    setComposerEnabled(true)
  } catch (err) {
    if (!(err instanceof RealtimeError) || err.code === 'closed') throw err
    await Promise.all(room.stop.map((stop) => stop()))
    room.typing = null
    const refusal = byId('room-error')
    refusal.textContent = `You cannot read #${name}: ${err.message}`
    refusal.hidden = false
    setComposerEnabled(false)
  }
}

async function send (client: RealtimeClient): Promise<void> {
  const input = byId<HTMLInputElement>('text')
  const text = input.value.trim()
  const room = current
  if (text === '' || room === null || !room.open) return
  input.value = ''
  room.typing?.stop()
  const message: ChatMessage = { id: randomId(), user, text, ts: Date.now() }
  pending.set(message.id, message)
  renderMessages(room.messages)
  try {
    // The broker keeps it in the room's history; its id as the idempotency key: a resend after
    // a lost acknowledgement is stored once
    await client.publish(roomTopics(room.name).messages, message, { properties: { userProperties: { 'idempotency-key': message.id } } })
  } catch (err) {
    showError(banner, `message not sent: ${(err as Error).message}`)
  } finally {
    pending.delete(message.id)
    if (current === room) renderMessages(room.messages)
  }
}

function renderMessages (messages: ChatMessage[]): void {
  const list = byId('messages')
  const shown = [...messages, ...[...pending.values()].filter((p) => !messages.some((m) => m.id === p.id))]
  list.replaceChildren(...shown.map((message) => {
    const classes = ['message', message.user === user ? 'mine' : '', pending.has(message.id) && !messages.includes(message) ? 'pending' : '']
    const item = el('li', { className: classes.join(' ').trim() },
      el('header', {}, el('span', { className: 'author', text: message.user }), el('time', { text: new Date(message.ts).toLocaleTimeString() })),
      el('p', { text: message.text }))
    item.dataset.id = message.id
    return item
  }))
  list.scrollTop = list.scrollHeight
}

function renderTyping (typists: string[]): void {
  const names = typists.length > 2 ? `${typists.length} people` : typists.join(' and ')
  byId('typing').textContent = typists.length === 0 ? '' : `${names} ${typists.length === 1 ? 'is' : 'are'} typing…`
}

function renderPeople (people: PresenceState[]): void {
  const online = people.filter((p) => p.online)
  byId('online-count').textContent = `${online.length} online`
  byId('people').replaceChildren(...people.map((person) => {
    const note = person.online
      ? person.connections > 1 ? `${person.connections} connections` : ''
      : person.lastSeen !== null ? timeAgo(person.lastSeen) : 'offline'
    const item = el('li', { className: person.online ? 'online' : '' },
      el('span', { text: person.user === user ? `${person.user} (you)` : person.user }),
      el('span', { className: 'note', text: note }))
    item.dataset.user = person.user
    return item
  }))
}

function setComposerEnabled (enabled: boolean): void {
  byId<HTMLInputElement>('text').disabled = !enabled
  byId<HTMLButtonElement>('send').disabled = !enabled
}

main().catch(showFailure(banner, ''))
