// History in Redis Streams, for a cluster: one stream per topic, and the offset counter and
// the epoch in a hash beside it. One stream entry holds the messages of a topic published in one
// turn of the event loop (a batch), its ID `<offset of its last message>-0`: one script call,
// one HSET and one XADD per topic and turn, whatever the number of messages (an entry per
// message cost Redis a HINCRBY and an XADD each, and the broker an argument and a reply each).
// A read from an offset is then two XRANGEs (the entries before the last one it needs, and that
// one). The turn's calls of all topics go in one pipeline on one Redis. The stream is trimmed
// by size (MINID: entries that hold none of the newest `size` messages) and by age (its oldest
// entries, at most once a second, and a key expiry when idle); a read leaves out what a trimmed
// stream would not hold, so that `size` and `ttlSeconds` bound what is returned exactly.
// Every key of a topic carries the topic as its hash tag: one Redis Cluster slot per topic.
import { createHash } from 'node:crypto'
import { Cluster, Command } from 'ioredis'
import type { RedisClient } from '../storage/redis-clients.js'
import { RedisKeys } from '../storage/redis-keys.js'
import type { MessageProperties } from '../protocol/message-properties.js'
import { epochSource, epochSourceChars, historyGraceMs, readFrom, type Append, type HistoryMessage, type HistoryStore } from './history-store.js'
import type { HistoryTopicConfig } from './history-topics.js'

// A topic's keys are its own (`history:{<topic>}:…`), tagged on one Redis too: they always were,
// and the tag keeps a topic's name apart from the parts after it whatever colons it holds. The
// connection's ioredis keyPrefix adds redis.keyPrefix.
const keys = new RedisKeys('', true)
const historyConcern = 'history'
const streamKey = (topic: string): string => keys.owned(historyConcern, topic, 's')
const metaKey = (topic: string): string => keys.owned(historyConcern, topic, 'm')
const idempotencyKey = (topic: string, key: string): string => keys.owned(historyConcern, topic, 'i', key)
// The most messages one entry holds (or `size` if fewer): a stream holds fewer than `size` plus
// this many messages.
const maxEntryMessages = 100
// The most batches (topics) one append call carries: a turn with more makes more calls, so that
// one script does not hold Redis for long.
const maxCallBatches = 64
// A flush on one Redis waits while turns keep bringing appends, up to this many appends or
// turns (scheduleFlush): under load the turns are those that read publishers' packets, so the
// wait is bounded by the time to read this many.
const maxFlushMessages = 500
const maxFlushTurns = 8
// Streams whose lengths the metrics sample at a scrape.
const maxSampledStreams = 1000

// A missing hash means the history was lost (or never was): a new epoch, and any stream left
// without its counter is dropped. Returns the epoch, the offset of the newest message and when
// the stream was last trimmed by age.
const ensureEpoch = `
local function ensureEpoch (meta, stream, candidate)
  local fields = redis.call('HMGET', meta, 'epoch', 'offset', 'trimmed')
  if not fields[1] then
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'epoch', candidate, 'offset', 0)
    return candidate, 0, 0
  end
  return fields[1], tonumber(fields[2]), tonumber(fields[3] or 0)
end
`

// A call sent again by ioredis (autoResendUnfulfilledCommands: its connection closed before its
// reply came, and Redis may have run it) must not store its messages twice. Each call has an id,
// `<process><sequence>` (epochSource: epochSourceChars naming the process, then a base-36 counter),
// stored with the batch's place in the call in each entry it appends (field `c`: `<id>/<batch>`,
// a call may hold several batches of one topic); a call sent again says so (its last argument),
// and looks, in each stream, from the newest entry back to its process's previous call, for the
// entry of each batch: found, that batch is answered from it and not stored again. A process's
// calls of one stream run in the order of their ids (one connection, in order), except a
// NOSCRIPT's retry or a Redis Cluster's redirection, sent after the calls behind it: entries of
// later calls are passed over (two such calls both resent can still take the earlier for not run).
// The look back is bounded by the stream (fewer than `size` + 100 messages) and runs only then.
// A call sent once pays only its id in each entry (and the repeats of a batch that had any,
// field `r`), which go with the entry when it is trimmed: nothing to expire, and a stream's
// slot as the key (Redis Cluster).
const appliedEntry = `
local function appliedEntry (stream, call, callBatch)
  local process = string.sub(call, 1, ${epochSourceChars})
  local sequence = tonumber(string.sub(call, ${epochSourceChars + 1}), 36)
  local before = '+'
  while true do
    -- a few entries at a time: each holds up to maxEntryMessages payloads
    local entries = redis.call('XREVRANGE', stream, before, '-', 'COUNT', 8)
    if #entries == 0 then return nil end
    for _, entry in ipairs(entries) do
      local fields = entry[2]
      for i = 1, #fields, 2 do
        if fields[i] == 'c' then
          local id = fields[i + 1]
          if id == callBatch then return entry end
          if string.sub(id, 1, ${epochSourceChars}) == process and tonumber(string.match(id, '^[^/]*', ${epochSourceChars + 1}), 36) < sequence then return nil end
        end
      end
    end
    before = '(' .. entries[#entries][1]
  end
end
`

// Appends the batches of a turn, each the messages of one topic, one entry per batch, in the
// order given (a topic's full batches before its last). ARGV: the call's id (also its candidate
// epoch), now ms, then per batch: the number of its idempotency keys, size, ttl ms (0 = none),
// idempotency window ms, the number of messages, the batch (encodeBatch), then per idempotency
// key: its message's index and the message's first and end byte in the batch (0-based); last,
// '1' if the call was sent before (else '0'). KEYS: per batch, its topic's meta and stream, then
// the idempotency keys of the batch's messages that carry one, in their order. A message whose
// key was seen within the window is cut out of the batch and not counted.
// Returns per batch {epoch, the offset before the batch's first, then per repeat: its index, the
// offset its key's first message got}; the others' offsets follow one another.
const appendScript = ensureEpoch + appliedEntry + `
local now = tonumber(ARGV[2])
local resent = ARGV[#ARGV] == '1'
local replies = {}
local k = 1
local a = 3
while a < #ARGV do
  local callBatch = ARGV[1] .. '/' .. (#replies + 1)
  local meta = KEYS[k]
  local stream = KEYS[k + 1]
  local keyCount = tonumber(ARGV[a])
  local size = tonumber(ARGV[a + 1])
  local ttl = tonumber(ARGV[a + 2])
  local window = tonumber(ARGV[a + 3])
  local batch = ARGV[a + 5]
  local epoch, latest, trimmed = ensureEpoch(meta, stream, ARGV[1])
  local reply = {epoch, latest}
  local applied = resent and appliedEntry(stream, ARGV[1], callBatch)
  if applied then
    -- answered as when it ran: its messages' offsets end at the entry's ID, its repeats are
    -- those the entry lists (field r: the idempotency keys may have expired since)
    local fields = applied[2]
    reply[2] = tonumber(string.match(applied[1], '^%d+')) - tonumber(fields[2])
    for i = 1, #fields, 2 do
      if fields[i] == 'r' then
        for index, seen in string.gmatch(fields[i + 1], '(%d+):(%d+)') do
          reply[#reply + 1] = tonumber(index)
          reply[#reply + 1] = tonumber(seen)
        end
      end
    end
  else
    local repeats = 0
    local repeated = nil
    local kept = nil
    local from = 1
    for j = 0, keyCount - 1 do
      local at = a + 6 + j * 3
      local index = tonumber(ARGV[at])
      local key = KEYS[k + 2 + j]
      local seen = redis.call('GET', key)
      if seen then
        kept = kept or {}
        kept[#kept + 1] = string.sub(batch, from, tonumber(ARGV[at + 1]))
        from = tonumber(ARGV[at + 2]) + 1
        repeats = repeats + 1
        reply[#reply + 1] = index
        reply[#reply + 1] = tonumber(seen)
        repeated = repeated or {}
        repeated[#repeated + 1] = index .. ':' .. seen
      else
        redis.call('SET', key, latest + 1 + index - repeats, 'PX', window)
      end
    end
    local count = tonumber(ARGV[a + 4]) - repeats
    if count > 0 then
      if kept then
        kept[#kept + 1] = string.sub(batch, from)
        batch = table.concat(kept)
      end
      local last = latest + count
      redis.call('HSET', meta, 'offset', last)
      -- exact MINID: the entries that hold any of the newest (size) messages stay, no more
      local oldest = last - size + 1
      if oldest < 1 then oldest = 1 end
      if repeated then
        redis.call('XADD', stream, 'MINID', oldest .. '-0', last .. '-0', 'n', count, 't', ARGV[2], 'b', batch, 'c', callBatch, 'r', table.concat(repeated, ','))
      else
        redis.call('XADD', stream, 'MINID', oldest .. '-0', last .. '-0', 'n', count, 't', ARGV[2], 'b', batch, 'c', callBatch)
      end
      if ttl > 0 then
        -- expired entries and the idle expiries, at most once a second: a read leaves out what this
        -- has not trimmed yet, and the stream's expiry has that second as margin, so it never comes
        -- before the TTL of a message appended since
        if now - trimmed >= 1000 then
          redis.call('HSET', meta, 'trimmed', now)
          for _ = 1, 16 do
            local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
            if first == nil or tonumber(first[2][4]) >= now - ttl then break end
            redis.call('XTRIM', stream, 'MINID', (tonumber(string.match(first[1], '^%d+')) + 1) .. '-0')
          end
          redis.call('PEXPIRE', stream, ttl + 1000)
          redis.call('PEXPIRE', meta, ttl + ${historyGraceMs})
        end
      else
        -- kept for good, like its stream (a read may have created it with an expiry)
        redis.call('PERSIST', meta)
      end
    end
  end
  replies[#replies + 1] = reply
  k = k + 2 + keyCount
  a = a + 6 + keyCount * 3
end
return replies
`

// KEYS: meta, stream; ARGV: candidate epoch, since ('' = the newest), limit, ttl ms (0 = none).
// Returns the entries that hold the messages after `since` (or the newest `limit`), at most
// `limit` of them: those wholly before the last one asked for, then the one that holds it.
// A topic first seen by a read is forgotten after its TTL and the grace unless a message comes.
const readScript = ensureEpoch + `
local epoch, latest = ensureEpoch(KEYS[1], KEYS[2], ARGV[1])
if latest == 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + ${historyGraceMs})
end
local limit = tonumber(ARGV[3])
local since = latest - limit
if ARGV[2] ~= '' then since = tonumber(ARGV[2]) end
if since < 0 then since = 0 end
local entries = {}
if since + 1 <= since + limit - 1 then entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', (since + limit - 1) .. '-0') end
local last = redis.call('XRANGE', KEYS[2], (since + limit) .. '-0', '+', 'COUNT', 1)[1]
if last then entries[#entries + 1] = last end
return {epoch, latest, entries}
`

type Entry = [Buffer, Buffer[]]
interface Batch {
  config: HistoryTopicConfig
  windowMs: number
  appends: Append[]
  // its call's answer, and how far its appends are settled (settleNext)
  err: Error | null
  reply: AppendReply | undefined
  settled: number
  offset: number
  repeat: number
}
type AppendReply = [string, number, ...number[]]
type AppendCallback = (err: Error | null, replies?: AppendReply[]) => void
interface HistoryCommands {
  historyReadBuffer: (meta: string, stream: string, epoch: string, since: string, limit: number, ttlMs: number) => Promise<[Buffer, number, Entry[]]>
}

/** Properties as stored: JSON, the correlation data in base64. */
function encodeProperties (properties: MessageProperties | undefined): string {
  if (properties === undefined) return ''
  const { correlationData, ...rest } = properties
  return JSON.stringify(correlationData === undefined ? rest : { ...rest, correlationData: correlationData.toString('base64') })
}

function decodeProperties (text: string): MessageProperties | undefined {
  if (text === '') return undefined
  const parsed = JSON.parse(text) as Omit<MessageProperties, 'correlationData'> & { correlationData?: string }
  const { correlationData, ...rest } = parsed
  return correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') }
}

// A batch, the messages one after the other: u8 qos · u32 + bytes properties JSON (0: none) ·
// u32 + bytes payload.
const messageHeaderBytes = 1 + 4 + 4

const appendScriptSha = createHash('sha1').update(appendScript).digest('hex')
// EVALSHA and the script's SHA as a call's first arguments, and EVAL and the script instead
const evalshaArgs = `$7\r\nevalsha\r\n$40\r\n${appendScriptSha}\r\n`
const evalArgs = Buffer.from(`$4\r\neval\r\n$${Buffer.byteLength(appendScript)}\r\n${appendScript}\r\n`)
// the sockets whose Redis has run the append script (a new connection's first call sends it
// whole, the others its SHA), as ioredis does for the scripts it defines
const appendScriptLoaded = new WeakSet<object>()

/** The bytes of a RESP bulk string of `bytes` bytes: `$<bytes>\r\n<bytes>\r\n`. */
const bulkBytes = (bytes: number): number => (bytes < 10 ? 4 : bytes < 100 ? 5 : 3 + String(bytes).length) + bytes + 2

/** A batch argument: the messages of `appends` one after the other (the batch format above). */
interface BatchArg {
  appends: readonly Append[]
  properties: string[]
  bytes: number
}

/**
 * One append call, written as Redis reads it (RESP) into one Buffer sized first, its messages
 * copied once, from each payload to its place in the call: no argument array flattened, no
 * batch Buffer copied again, no string per argument joined (ioredis' own command building cost
 * ~75 µs a call, docs/history.md, Cost).
 */
class AppendCall {
  readonly keys: string[] = []
  private readonly args: Array<string | BatchArg> = []
  // bytes of the arguments after the keys
  private size = 0

  key (key: string): void {
    this.keys.push(key)
  }

  arg (arg: string | number): void {
    const text = typeof arg === 'number' ? String(arg) : arg
    this.args.push(text)
    this.size += bulkBytes(Buffer.byteLength(text))
  }

  /** The messages of `appends` as one argument; returns the byte after each message in it. */
  batch (appends: readonly Append[]): number[] {
    const properties: string[] = []
    const ends: number[] = []
    let bytes = 0
    for (const input of appends) {
      const json = encodeProperties(input.properties)
      properties.push(json)
      bytes += messageHeaderBytes + Buffer.byteLength(json) + input.payload.length
      ends.push(bytes)
    }
    this.args.push({ appends, properties, bytes })
    this.size += bulkBytes(bytes)
    return ends
  }

  /** The call: EVALSHA, the script's SHA, the number of keys, the keys, the arguments, and '0': not sent before (AppendCommand sets it). */
  write (): Buffer {
    this.arg('0')
    // the string arguments between two batches go in one string, written at once: a Buffer
    // write per argument cost more than ioredis' command building
    let text = `*${3 + this.keys.length + this.args.length}\r\n${evalshaArgs}${bulk(String(this.keys.length))}`
    for (const key of this.keys) text += bulk(key)
    const call = Buffer.allocUnsafe(Buffer.byteLength(text) + this.size)
    let at = 0
    for (const arg of this.args) {
      if (typeof arg === 'string') {
        text += bulk(arg)
        continue
      }
      text += `$${arg.bytes}\r\n`
      at += call.write(text, at, 'utf8')
      text = '\r\n'
      const { appends, properties } = arg
      for (let i = 0; i < appends.length; i++) {
        const input = appends[i] as Append
        call[at++] = input.qos
        const json = properties[i] as string
        const length = json === '' ? 0 : call.write(json, at + 4, 'utf8')
        at = call.writeUInt32BE(length, at) + length
        at = call.writeUInt32BE(input.payload.length, at)
        at += input.payload.copy(call, at)
      }
    }
    // a miscounted size would send a broken frame (a Buffer write cuts silently): refused here
    if (at + call.write(text, at, 'utf8') !== call.length) throw new Error('history append call: size miscounted')
    return call
  }
}

/** RESP's bulk string of `text`. */
const bulk = (text: string): string => `$${Buffer.byteLength(text)}\r\n${text}\r\n`

/**
 * An append call sent through ioredis as written (AppendCall), queued and answered as its other
 * commands are. `slotKey`, a key of the call, routes it on a Redis Cluster (getSlot reads it from
 * `args`, which are not sent: toWritable sends the call). Answered through its promise: given to
 * ioredis' Command as its callback instead, the same calls ran at 0.58-0.61x of the broker
 * without history against 0.70x (docs/history.md, Cost; why was not found).
 */
class AppendCommand extends Command {
  private socket: object | undefined
  // where the call's last argument is, '1' once written before: ioredis writes a command again, on
  // a new connection, when the one it was written on closed before its reply (autoResendUnfulfilledCommands)
  private readonly resentFlagAt: number

  /** `scriptWhole`: sent with the script whatever the socket ran (a NOSCRIPT's retry: the first call on a socket may have been redirected before the script ran). */
  constructor (readonly call: Buffer, slotKey: string, answered: AppendCallback, private readonly scriptWhole = false) {
    super('evalsha', [appendScriptSha, 1, slotKey], { replyEncoding: 'utf8' })
    this.resentFlagAt = call.length - 3
    this.promise.then((replies) => answered(null, replies as AppendReply[]), (err: Error) => answered(err))
  }

  /** Whether it failed for the script missing on its Redis (flushed): the next call on that socket sends it whole. */
  scriptMissing (err: Error): boolean {
    if (!err.message.includes('NOSCRIPT') || this.socket === undefined) return false
    appendScriptLoaded.delete(this.socket)
    return true
  }

  override toWritable (socket: object): Buffer {
    // written before, maybe run: the script answers a batch it stored from its entry (appliedEntry)
    if (this.socket !== undefined) this.call[this.resentFlagAt] = 0x31
    this.socket = socket
    if (!this.scriptWhole && appendScriptLoaded.has(socket)) return this.call
    appendScriptLoaded.add(socket)
    // EVALSHA and the SHA after the argument count replaced by EVAL and the script
    const countEnd = this.call.indexOf('\n') + 1
    return Buffer.concat([this.call.subarray(0, countEnd), evalArgs, this.call.subarray(countEnd + evalshaArgs.length)])
  }
}

/** The messages of entry `[id, fields]` of `topic`; payloads are views into the entry. */
function decodeEntry (topic: string, [id, fields]: Entry, into: HistoryMessage[]): void {
  const field = (name: string): Buffer | undefined => {
    for (let i = 0; i < fields.length; i += 2) if ((fields[i] as Buffer).toString() === name) return fields[i + 1]
    return undefined
  }
  const last = Number.parseInt(id.toString(), 10)
  const time = Number(field('t')?.toString() ?? 0)
  const batch = field('b')
  if (batch === undefined) {
    // an entry of one message, as releases before batches stored them
    const properties = decodeProperties(field('m')?.toString('utf8') ?? '')
    into.push({ offset: last, topic, payload: field('p') ?? Buffer.alloc(0), qos: Number(field('q')?.toString() ?? 0), time, ...(properties === undefined ? {} : { properties }) })
    return
  }
  let offset = last - Number(field('n')?.toString() ?? 0)
  for (let at = 0; at < batch.length;) {
    const qos = batch.readUInt8(at)
    const propertiesEnd = at + 5 + batch.readUInt32BE(at + 1)
    const properties = decodeProperties(batch.toString('utf8', at + 5, propertiesEnd))
    const payloadEnd = propertiesEnd + 4 + batch.readUInt32BE(propertiesEnd)
    into.push({ offset: ++offset, topic, payload: batch.subarray(propertiesEnd + 4, payloadEnd), qos, time, ...(properties === undefined ? {} : { properties }) })
    at = payloadEnd
  }
}

/** Tells the next of a batch's appends its position, or the store's error, once its call is answered. */
function settleNext (batch: Batch): void {
  const index = batch.settled++
  const append = batch.appends[index] as Append
  const { err, reply } = batch
  if (err !== null || reply === undefined) return append.appended(err ?? new Error('no reply'), '', 0, false)
  if (reply[batch.repeat] === index) {
    batch.repeat += 2
    return append.appended(null, reply[0], reply[batch.repeat - 1] as number, true)
  }
  append.appended(null, reply[0], ++batch.offset, false)
}

/** History in Redis, on `redis` (the broker's own connection, key prefix applied). */
export function redisHistoryStore (redis: RedisClient): HistoryStore {
  // the append call goes as written (AppendCall); keys as stored, with the connection's prefix
  const prefix = redis.options.keyPrefix ?? ''
  redis.defineCommand('historyRead', { numberOfKeys: 2, lua: readScript })
  const commands = redis as unknown as HistoryCommands
  const newEpoch = epochSource()
  // appends of this turn, per topic, sent as one script call per topic at the end of the turn; a
  // new Map per flush, not a cleared one: V8 leaves a cleared (or grown) table's entries in place
  // and links it to its successor, so an old-generation table kept every flushed batch, and the
  // messages it holds, alive through the young generation's collections
  let batches = new Map<string, Batch>()
  // batches that reached maxEntryMessages, in the order they filled, sent before the others
  const full: Array<[string, Batch]> = []
  // one Redis: the turn's batches of every topic go in one script call (or a few, of at most
  // maxCallBatches), answered in one reply and settled together, so that the turn's messages are
  // delivered in one turn (one write to each subscriber); a script's keys must stay on one Redis
  // Cluster slot, so there each topic's batches go to its node in a call of their own
  const cluster = redis instanceof Cluster
  // One Redis: while a call is unanswered the next turns' appends wait for its reply and then go
  // together in one call, instead of a call per turn: each call costs Redis a script run and,
  // where Redis shares the broker's CPU, a round of context switches; and the reply's turn,
  // whose settled publishes free their publishers' next packets, appends those in the same call.
  // An idle store's appends leave once the turns stop bringing more (below). On a Cluster each
  // topic's calls go as before: a node failing over must not hold back the others' topics.
  let unanswered = 0
  let flushScheduled = false
  // One Redis: the batch of each message of the flush to come, in the order the messages came,
  // so that they are settled in that order across topics once the flush's calls are answered
  // (a publisher's PUBACKs in the order of its PUBLISHes, [MQTT-4.6.0-2]); on a Cluster each
  // call settles its topic's messages in their order
  let arrivals: Batch[] = []
  // One Redis: a flush waits one more turn while the last one brought appends (publishers' packets
  // still being read), up to maxFlushTurns turns and maxFlushMessages appends, and leaves at the
  // first turn that brings none: a call per ~250 messages instead of ~130 in the fan-in
  // benchmark, and each call costs the broker ~75 µs in ioredis alone and Redis a script run and
  // its context switches on the broker's CPU (docs/history.md, Cost). The first check is at the
  // end of the turn that scheduled the flush: a lone append leaves then, appends of a burst a
  // turn after their last.
  let waiting = 0
  let waitingAtCheck = 0
  let turnsWaited = 0
  const scheduleFlush = (): void => {
    if (flushScheduled || unanswered > 0) return
    flushScheduled = true
    waitingAtCheck = waiting
    setImmediate(flush)
  }
  const flush = (): void => {
    if (!cluster && waiting > waitingAtCheck && waiting < maxFlushMessages && turnsWaited < maxFlushTurns) {
      waitingAtCheck = waiting
      turnsWaited++
      setImmediate(flush)
      return
    }
    flushScheduled = false
    waiting = 0
    turnsWaited = 0
    const now = String(Date.now())
    let call = new AppendCall()
    let batchesOfCall: Batch[] = []
    const arrivalsOfFlush = arrivals
    arrivals = []
    let callsOfFlush = 0
    const answer = (answered: Batch[]) => (err: Error | null, replies?: AppendReply[]): void => {
      answered.forEach((batch, i) => {
        batch.err = err
        batch.reply = replies?.[i]
        batch.offset = batch.reply?.[1] ?? 0
      })
      if (cluster) {
        for (const batch of answered) for (let i = 0; i < batch.appends.length; i++) settleNext(batch)
        return
      }
      if (--callsOfFlush === 0) for (const batch of arrivalsOfFlush) settleNext(batch)
      if (--unanswered === 0 && (batches.size > 0 || full.length > 0)) scheduleFlush()
    }
    const send = (): void => {
      const done = answer(batchesOfCall)
      const slotKey = call.keys[0] as string
      const command = new AppendCommand(call.write(), slotKey, (err, replies) => {
        // the script flushed from Redis: sent again, whole (it did not run)
        if (err !== null && command.scriptMissing(err)) void redis.sendCommand(new AppendCommand(command.call, slotKey, done, true))
        else done(err, replies)
      })
      void redis.sendCommand(command)
      // counted once sent (its callback never runs before): a call that throws holds nothing back
      if (!cluster) unanswered++
      callsOfFlush++
      call = new AppendCall()
      batchesOfCall = []
    }
    let topicOfCall: string | undefined
    for (const [topic, batchOfTopic] of [...full, ...batches]) {
      const { config, windowMs, appends } = batchOfTopic
      if (batchesOfCall.length > 0 && (cluster ? topic !== topicOfCall : batchesOfCall.length === maxCallBatches)) send()
      if (batchesOfCall.length === 0) {
        // the call's id (appliedEntry), and the epoch of a topic whose history is new
        call.arg(newEpoch())
        call.arg(now)
      }
      topicOfCall = topic
      call.key(prefix + metaKey(topic))
      call.key(prefix + streamKey(topic))
      const keyed: number[] = []
      appends.forEach((input, i) => {
        if (windowMs === 0 || input.idempotencyKey === undefined) return
        call.key(prefix + idempotencyKey(topic, input.idempotencyKey))
        keyed.push(i)
      })
      call.arg(keyed.length)
      call.arg(config.size)
      call.arg(config.ttlSeconds * 1000)
      call.arg(windowMs)
      call.arg(appends.length)
      const ends = call.batch(appends)
      for (const i of keyed) {
        call.arg(i)
        call.arg(i === 0 ? 0 : ends[i - 1] as number)
        call.arg(ends[i] as number)
      }
      batchesOfCall.push(batchOfTopic)
    }
    if (batchesOfCall.length > 0) send()
    full.length = 0
    batches = new Map()
  }
  return {
    append: (input, config, windowMs) => {
      let batch = batches.get(input.topic)
      if (batch === undefined) {
        batch = { config, windowMs, appends: [], err: null, reply: undefined, settled: 0, offset: 0, repeat: 2 }
        batches.set(input.topic, batch)
      }
      batch.appends.push(input)
      waiting++
      if (!cluster) arrivals.push(batch)
      scheduleFlush()
      if (batch.appends.length === Math.min(maxEntryMessages, config.size)) {
        full.push([input.topic, batch])
        batches.delete(input.topic)
      }
    },
    read: async (request, config) => {
      const [epoch, latest, entries] = await commands.historyReadBuffer(metaKey(request.topic), streamKey(request.topic), newEpoch(), request.since === undefined ? '' : String(request.since), request.limit, config.ttlSeconds * 1000)
      // what a trimmed stream holds: the newest `size` messages, none older than the TTL
      const cut = config.ttlSeconds === 0 ? -Infinity : request.now - config.ttlSeconds * 1000
      const since = Math.max(request.since ?? latest - request.limit, latest - config.size)
      const messages: HistoryMessage[] = []
      for (const entry of entries) decodeEntry(request.topic, entry, messages)
      const held = messages.filter((message) => message.offset > since && message.time >= cut)
      // the script returned the entries of at most `limit` messages from the right place: readFrom judges recovery
      return readFrom(held, request, epoch.toString(), latest)
    },
    lengths: async () => {
      // every master of a Cluster holds some streams; SCAN matches keys as stored, with the
      // connection's key prefix, which one Redis's connection adds again (a Cluster's node
      // connections do not)
      const servers = cluster ? redis.nodes('master') : [redis]
      const lengths: number[] = []
      for (const server of servers) {
        if (lengths.length >= maxSampledStreams) break
        const strip = cluster ? 0 : prefix.length
        let cursor = '0'
        do {
          const [next, found] = await server.scan(cursor, 'MATCH', `${prefix}${historyConcern}:{*}:s`, 'COUNT', 500)
          cursor = next
          if (found.length === 0) continue
          // messages held: the latest offset, less the offset before the oldest entry's first
          const pipeline = server.pipeline()
          for (const key of found) pipeline.hget(`${key.slice(strip, -1)}m`, 'offset').xrange(key.slice(strip), '-', '+', 'COUNT', 1)
          const replies = (await pipeline.exec()) ?? []
          for (let i = 0; i < replies.length; i += 2) {
            const [metaErr, latest] = replies[i] as [Error | null, string | null]
            const [streamErr, oldest] = replies[i + 1] as [Error | null, Array<[string, string[]]>]
            const entry = oldest?.[0]
            if (metaErr !== null || streamErr !== null || latest === null || entry === undefined) continue
            const count = entry[1][0] === 'n' ? Number(entry[1][1]) : 1
            lengths.push(Number(latest) - Number.parseInt(entry[0], 10) + count)
          }
        } while (cursor !== '0' && lengths.length < maxSampledStreams)
      }
      return lengths
    }
  }
}
