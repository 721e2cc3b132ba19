// Server-Sent Events as a reader sees them, from a fetch response.

export interface ServerSentEvent { id?: string, event?: string, data?: string, comment?: string }

/** Reads Server-Sent Events from a fetch response. */
export async function * events (res: Response): AsyncGenerator<ServerSentEvent> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += decoder.decode(value, { stream: true })
    let end: number
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const event: ServerSentEvent = {}
      for (const line of block.split('\n')) {
        if (line.startsWith(': ')) event.comment = line.slice(2)
        else {
          const [field, ...rest] = line.split(': ')
          if (field === 'id' || field === 'event' || field === 'data') event[field] = rest.join(': ')
        }
      }
      yield event
    }
  }
}
