// Assertions shared by the conformance tests.
import type { BrokerHandle } from '../../src/server.js'
import type { RawClient } from './raw-client.js'
import { summary } from './raw-client.js'
import type { Tap } from './targets.js'

/** The broker closed the connection and sent nothing at all (no CONNACK either). */
export async function closedSilently (t: Tap, client: RawClient, what: string): Promise<void> {
  const closed = await client.closedWithin()
  t.ok(closed, `${what}: connection closed`)
  t.same(client.received.map(summary), [], `${what}: nothing sent before closing`)
}

/** The broker answered CONNACK `code` with Session Present 0, then closed the connection. */
export async function refusedWith (t: Tap, client: RawClient, code: number, what: string): Promise<void> {
  const connack = await client.expect('connack')
  t.equal(connack.returnCode, code, `${what}: CONNACK return code ${code}`)
  t.equal(connack.sessionPresent, false, `${what}: Session Present 0 [MQTT-3.2.2-4]`)
  t.ok(await client.closedWithin(), `${what}: connection closed after the CONNACK [MQTT-3.2.2-5]`)
  t.same(client.received.map(summary), [], `${what}: nothing after the CONNACK`)
}

/** The broker closed the connection (whatever it sent before). */
export async function closed (t: Tap, client: RawClient, what: string): Promise<void> {
  t.ok(await client.closedWithin(), `${what}: connection closed`)
}

/** Still connected: a PINGREQ is answered. */
export async function stillConnected (t: Tap, client: RawClient, what: string): Promise<void> {
  client.send({ cmd: 'pingreq' })
  const packet = await client.next()
  t.equal(packet.cmd, 'pingresp', `${what}: still connected`)
}

/** Waits (bounded) until the broker has noticed that the client `clientId` is gone. */
export async function brokerDropped (broker: BrokerHandle, clientId: string, ms = 2000): Promise<void> {
  const clients = (broker.aedes as unknown as { clients: Record<string, unknown> }).clients
  const deadline = Date.now() + ms
  while (clients[clientId] !== undefined) {
    if (Date.now() > deadline) throw new Error(`the broker still holds ${clientId}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
