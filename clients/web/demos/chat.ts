// Chat demo: rooms with history (retained snapshot + messages), who is online, who is typing.
// ?user=NAME picks the name, ?rooms=a,b the rooms the user's token grants (when the broker
// mints tokens), ?room=NAME the room to open, ?ttl=S the token lifetime.
import { RealtimeError, TypingIndicator, syncState, watchPresence, type PresenceState, type RealtimeClient, type StateSync } from '/sdk/realtime.js'
import { addMessage, chatGrants, historyLength, mergeHistory, roomTopics, type ChatMessage } from './lib/chat-model.js'
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
  sync: StateSync<ChatMessage[], ChatMessage> | null
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
    void send()
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
  current = { name, sync: null, typing: null, stop: [] }
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
    room.sync = await syncState<ChatMessage[], ChatMessage>(client, {
      snapshotTopic: topics.history,
      changesTopic: topics.messages,
      initial: [],
      applyChange: addMessage,
      applySnapshot: mergeHistory,
      onState: (messages) => { if (current === room) renderMessages(messages) }
    })
    room.stop.push(room.sync.stop)
    room.typing = new TypingIndicator(client, topics.typing, { user })
    room.stop.push(await room.typing.watch((typists) => { if (current === room) renderTyping(typists) }))
    setComposerEnabled(true)
  } catch (err) {
    if (!(err instanceof RealtimeError) || err.code === 'closed') throw err
    await Promise.all(room.stop.map((stop) => stop()))
    room.sync = null
    room.typing = null
    const refusal = byId('room-error')
    refusal.textContent = `You cannot read #${name}: ${err.message}`
    refusal.hidden = false
    setComposerEnabled(false)
  }
}

async function send (): Promise<void> {
  const input = byId<HTMLInputElement>('text')
  const text = input.value.trim()
  const room = current
  if (text === '' || room?.sync == null) return
  input.value = ''
  room.typing?.stop()
  const message: ChatMessage = { id: randomId(), user, text, ts: Date.now() }
  pending.set(message.id, message)
  renderMessages(room.sync.state)
  try {
    // The message for everyone in the room now, then the history for whoever joins later.
    await room.sync.publishChange(message)
    await room.sync.publishSnapshot(addMessage(room.sync.state, message))
  } catch (err) {
    showError(banner, `message not sent: ${(err as Error).message}`)
  } finally {
    pending.delete(message.id)
    if (current === room) renderMessages(room.sync.state)
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
