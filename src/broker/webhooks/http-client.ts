// A small HTTP/1.1 client for the broker's own POSTs (webhook batches, authorization hook
// questions): keep-alive connections per origin, each carrying one request at a time, a
// request written as its header block and its body's buffers in one corked write, the answer
// parsed here (Content-Length, chunked, or until the server closes). node:http's
// ClientRequest, Agent and IncomingMessage cost about 0.5 ms of CPU per request on the bench
// machine (perf: their JS ran in V8's baseline tier at 100 requests a second), more than the
// 30 KB of events the request carried.
import { connect as netConnect, isIP, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

export interface HttpAnswer {
  status: number
  /** The first maxAnswerBytes of the body. */
  body: string
  /** Whether the body was longer than maxAnswerBytes (and cut). */
  truncated: boolean
}

/** The request took longer than its timeout (name 'TimeoutError', as AbortSignal.timeout's). */
export class PostTimeout extends Error {
  override readonly name = 'TimeoutError'
}

/** A reused connection failed before any byte of the answer: the request goes out again on a new one. */
class StaleConnection extends Error {}

/** Where requests to one URL go, and the start of their header block, built once. */
export interface HttpTarget {
  secure: boolean
  host: string
  port: number
  /** `POST <path> HTTP/1.1` and the host header, each line ended by CRLF. */
  head: string
  /** The pool key: scheme, host and port. */
  origin: string
}

/** The target of `url` (http: or https:); throws on anything else. */
export function httpTarget (url: string): HttpTarget {
  const parsed = new URL(url)
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`expected an http: or https: URL, got ${parsed.protocol}`)
  const secure = parsed.protocol === 'https:'
  // an IPv6 literal's brackets are the URL's, not the address'
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname
  const port = parsed.port === '' ? (secure ? 443 : 80) : Number(parsed.port)
  return { secure, host, port, head: `POST ${parsed.pathname}${parsed.search} HTTP/1.1\r\nhost: ${parsed.host}\r\n`, origin: `${parsed.protocol}//${parsed.host}` }
}

// an answer's header block larger than this is refused (node:http's default limit)
const maxHeadBytes = 16 * 1024
// a connection idle this long is not reused: servers close idle keep-alive connections
// (node:http after 5 s), and a request written as the server closes would fail
const idleReuseMs = 4000

const crlf = Buffer.from('\r\n')
const headEnd = Buffer.from('\r\n\r\n')

type BodyMode = 'none' | 'length' | 'chunked' | 'close'

/**
 * The parser of one answer, fed what the socket reads: the header block, then the body by
 * Content-Length, chunks, or until the connection closes. 1xx interim answers are skipped.
 */
class AnswerParser {
  status = 0
  reusable = true
  truncated = false
  /** Whether any byte of the answer arrived (a reused connection closed before that can be retried). */
  started = false
  private mode: BodyMode | 'head' | 'chunk-size' | 'chunk-end' | 'trailers' = 'head'
  private remaining = 0
  private pending: Buffer | null = null
  private readonly kept: Buffer[] = []
  private keptBytes = 0

  constructor (private readonly maxAnswerBytes: number) {}

  get body (): string {
    return Buffer.concat(this.kept).toString('utf8')
  }

  /** Consumes `data`; true once the answer is complete (an error is thrown for a malformed one). */
  feed (data: Buffer): boolean {
    this.started = true
    let input = this.pending === null ? data : Buffer.concat([this.pending, data])
    this.pending = null
    for (;;) {
      switch (this.mode) {
        case 'head': {
          const end = input.indexOf(headEnd)
          if (end === -1) return this.wait(input, maxHeadBytes, 'answer header block')
          this.parseHead(input.toString('latin1', 0, end))
          input = input.subarray(end + 4)
          break
        }
        case 'chunk-size': {
          const end = input.indexOf(crlf)
          if (end === -1) return this.wait(input, 1024, 'chunk size line')
          const size = Number.parseInt(input.toString('latin1', 0, end).split(';')[0] as string, 16)
          if (!Number.isInteger(size) || size < 0) throw new Error('malformed chunk size')
          input = input.subarray(end + 2)
          this.remaining = size
          this.mode = size === 0 ? 'trailers' : 'chunked'
          break
        }
        case 'length':
        case 'chunked': {
          const taken = Math.min(this.remaining, input.length)
          this.keep(input.subarray(0, taken))
          this.remaining -= taken
          input = input.subarray(taken)
          if (this.remaining > 0) return false
          if (this.mode === 'length') return this.done(input)
          this.mode = 'chunk-end'
          break
        }
        case 'chunk-end':
          if (input.length < 2) return this.wait(input, 2, 'chunk end')
          if (input[0] !== 0x0d || input[1] !== 0x0a) throw new Error('malformed chunk end')
          input = input.subarray(2)
          this.mode = 'chunk-size'
          break
        case 'trailers': {
          const end = input.indexOf(crlf)
          if (end === -1) return this.wait(input, maxHeadBytes, 'trailers')
          input = input.subarray(end + 2)
          // the empty line ends the trailers, and the answer
          if (end === 0) return this.done(input)
          break
        }
        case 'close':
          this.keep(input)
          return false
        case 'none':
          return this.done(input)
      }
    }
  }

  /** The connection closed: complete only when the body runs until the close. */
  closed (): boolean {
    return this.mode === 'close'
  }

  private parseHead (head: string): void {
    const lines = head.split('\r\n')
    const statusLine = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '')
    if (statusLine === null) throw new Error('malformed answer status line')
    const status = Number(statusLine[2])
    let length: number | null = null
    let chunked = false
    let keepAlive = statusLine[1] === '1'
    for (let at = 1; at < lines.length; at++) {
      const line = lines[at] as string
      const colon = line.indexOf(':')
      if (colon <= 0) throw new Error('malformed answer header line')
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim().toLowerCase()
      if (name === 'content-length') {
        if (!/^\d+$/.test(value) || (length !== null && length !== Number(value))) throw new Error('malformed content-length')
        length = Number(value)
      } else if (name === 'transfer-encoding') {
        chunked = value.split(',').at(-1)?.trim() === 'chunked'
      } else if (name === 'connection') {
        const options = value.split(',').map((option) => option.trim())
        if (options.includes('close')) keepAlive = false
        else if (options.includes('keep-alive')) keepAlive = true
      }
    }
    // an interim answer (100 Continue, 103 Early Hints): the final one follows
    if (status >= 100 && status < 200 && status !== 101) return
    this.status = status
    this.reusable = keepAlive
    // 101: not asked for; the connection speaks another protocol now
    if (status === 101) this.reusable = false
    if (status === 204 || status === 304 || status === 101) this.mode = 'none'
    else if (chunked) this.mode = 'chunk-size'
    else if (length !== null) {
      this.remaining = length
      this.mode = length === 0 ? 'none' : 'length'
    } else {
      // no length: the body is what comes until the server closes
      this.mode = 'close'
      this.reusable = false
    }
  }

  private keep (data: Buffer): void {
    if (data.length === 0) return
    const room = this.maxAnswerBytes - this.keptBytes
    if (data.length > room) this.truncated = true
    if (room <= 0) return
    // copied: the socket's buffers are not kept past this read
    const kept = Buffer.from(data.subarray(0, room))
    this.kept.push(kept)
    this.keptBytes += kept.length
  }

  private wait (input: Buffer, limit: number, what: string): false {
    if (input.length > limit) throw new Error(`${what} over ${limit} bytes`)
    this.pending = Buffer.from(input)
    return false
  }

  private done (rest: Buffer): true {
    // bytes after the answer (a second answer to one request): the connection is not reused
    if (rest.length > 0) this.reusable = false
    return true
  }
}

interface IdleConnection {
  socket: Socket
  since: number
  /** Drops it from the pool: closed by the server, failed, or sent bytes nobody asked for. */
  forget: () => void
}

export interface HttpClientOptions {
  /** Certificates trusted for https: (tests), besides the system's. */
  ca?: string | Buffer
}

/** Keep-alive connections per origin, reused one request at a time. */
export class HttpClient {
  private readonly idle = new Map<string, IdleConnection[]>()

  constructor (private readonly options: HttpClientOptions = {}) {}

  /**
   * Sends `head` (the header block, ended by an empty line) and `body` to `target`; resolves
   * with the answer, rejects on a network error, a malformed answer or the timeout. A request
   * on a reused connection that closes before any byte of the answer is sent once more on a
   * new one (the server closed it as idle meanwhile).
   */
  async request (target: HttpTarget, head: string, body: readonly Buffer[], timeoutMs: number, maxAnswerBytes: number): Promise<HttpAnswer> {
    const deadline = performance.now() + timeoutMs
    const reused = this.takeIdle(target.origin)
    if (reused !== null) {
      try {
        return await this.exchange(target, reused, true, head, body, timeoutMs, maxAnswerBytes)
      } catch (err) {
        if (!(err instanceof StaleConnection)) throw err
      }
    }
    return await this.exchange(target, this.open(target), false, head, body, Math.max(0, deadline - performance.now()), maxAnswerBytes)
  }

  /** Closes the idle connections. */
  close (): void {
    for (const list of this.idle.values()) for (const { socket } of list) socket.destroy()
    this.idle.clear()
  }

  /** A pooled connection, taken out of the pool (its idle listeners removed), or null. */
  private takeIdle (origin: string): Socket | null {
    const list = this.idle.get(origin)
    const now = performance.now()
    while (list !== undefined && list.length > 0) {
      const { socket, since, forget } = list.pop() as IdleConnection
      socket.off('close', forget).off('error', forget).off('data', forget)
      if (now - since < idleReuseMs && !socket.destroyed && socket.readyState === 'open') return socket.ref()
      socket.destroy()
    }
    return null
  }

  private open (target: HttpTarget): Socket {
    const socket = target.secure
      ? tlsConnect({ host: target.host, port: target.port, ...(isIP(target.host) === 0 ? { servername: target.host } : {}), ...(this.options.ca === undefined ? {} : { ca: this.options.ca }) })
      : netConnect({ host: target.host, port: target.port })
    socket.setNoDelay(true)
    return socket
  }

  private release (origin: string, socket: Socket): void {
    let list = this.idle.get(origin)
    if (list === undefined) this.idle.set(origin, list = [])
    const pool = list
    const forget = (): void => {
      const at = pool.indexOf(entry)
      if (at !== -1) pool.splice(at, 1)
      socket.destroy()
    }
    const entry: IdleConnection = { socket, since: performance.now(), forget }
    pool.push(entry)
    // an idle connection holds no process open
    socket.unref().once('close', forget).once('error', forget).once('data', forget)
  }

  private exchange (target: HttpTarget, socket: Socket, reused: boolean, head: string, body: readonly Buffer[], timeoutMs: number, maxAnswerBytes: number): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const parser = new AnswerParser(maxAnswerBytes)
      const finish = (err: Error | null): void => {
        clearTimeout(timer)
        socket.off('data', onData).off('error', onError).off('close', onClose)
        if (err !== null) {
          socket.destroy()
          reject(reused && !parser.started && !(err instanceof PostTimeout) ? new StaleConnection(err.message) : err)
          return
        }
        const answer = { status: parser.status, body: parser.body, truncated: parser.truncated }
        // an answer before the whole body left: the rest would go out after the caller gave its
        // buffers back (the outboxes reuse them), so that connection ends here
        if (parser.reusable && socket.writableLength === 0) this.release(target.origin, socket)
        else socket.destroy()
        resolve(answer)
      }
      const onData = (data: Buffer): void => {
        let complete: boolean
        try {
          complete = parser.feed(data)
        } catch (err) {
          finish(err as Error)
          return
        }
        if (complete) finish(null)
      }
      const onError = (err: Error): void => finish(err)
      const onClose = (): void => finish(parser.closed() ? null : new Error('the connection closed before the answer was complete'))
      const timer = setTimeout(() => finish(new PostTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs)
      socket.on('data', onData).on('error', onError).on('close', onClose)
      socket.cork()
      socket.write(head, 'latin1')
      for (const part of body) socket.write(part)
      socket.uncork()
    })
  }
}

