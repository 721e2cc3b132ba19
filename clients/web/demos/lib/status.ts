// The connection badge every demo shows, and a banner for errors the SDK reports.
import { RealtimeError, type RealtimeClient, type StateChange } from '/sdk/realtime.js'

export function showConnection (client: RealtimeClient, badge: HTMLElement, banner: HTMLElement): void {
  const render = (change: StateChange): void => {
    badge.className = `connection ${change.state}`
    badge.textContent = describe(change)
    // Tests and styles read the state from the page.
    document.body.dataset.connection = change.state
    // The MQTT version the SDK settled on: 5, or 3.1.1 where the broker refused 5.
    if (change.state === 'online') document.body.dataset.mqtt = client.protocolVersion === 5 ? '5' : '3.1.1'
    badge.title = change.reason ?? (change.state === 'online' ? `MQTT ${document.body.dataset.mqtt}` : '')
  }
  render({ state: client.state, attempt: 0 })
  client.on('state', render)
  client.on('error', (error) => showError(banner, error.message))
}

export function showError (banner: HTMLElement, message: string): void {
  banner.textContent = message
  banner.hidden = false
}

/** For promises the page awaits: a client closed by a refusal already said why, once. */
export function showFailure (banner: HTMLElement, what: string): (err: unknown) => void {
  return (err) => {
    if (err instanceof RealtimeError && err.code === 'closed') return
    showError(banner, `${what}${err instanceof Error ? err.message : String(err)}`)
  }
}

function describe ({ state, attempt, retryInMs }: StateChange): string {
  switch (state) {
    case 'online': return 'online'
    case 'offline': return 'offline: no network'
    case 'closed': return 'disconnected'
    case 'connecting':
    case 'reconnecting': {
      const retry = retryInMs === undefined || retryInMs === 0 ? '' : ` in ${(retryInMs / 1000).toFixed(1)} s`
      return attempt > 0 ? `${state}${retry} (attempt ${attempt})` : `${state}…`
    }
  }
}
