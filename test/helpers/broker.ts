// Test harness: a real broker in-process on free ports, and real MQTT.js clients over TCP or
// WebSocket. Everything started here is closed by the test's teardown.
import { connect, type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt'
import { pino, type Logger } from 'pino'
import { createBroker, type BrokerHandle } from '../../src/server.js'
import type { ConfigInput } from '../../src/broker/config/config.js'
import type { Teardown } from './loopback.js'

export type Transport = 'tcp' | 'ws'
export const transports: Transport[] = ['tcp', 'ws']

/** A broker on 127.0.0.1 with free ports and anonymous access unless the config says otherwise. */
export async function startBroker (t: Teardown, config: ConfigInput = {}, logger: Logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })): Promise<BrokerHandle> {
  const broker = await createBroker({
    host: '127.0.0.1',
    mqtt: { port: 0 },
    http: { port: 0 },
    ...config,
    auth: { anonymous: true, ...config.auth }
  }, { logger })
  t.teardown(() => broker.close())
  return broker
}

export function brokerUrl (broker: BrokerHandle, transport: Transport): string {
  return transport === 'tcp'
    ? `mqtt://127.0.0.1:${broker.addresses.mqtt.port}`
    : `ws://127.0.0.1:${broker.addresses.http.port}${broker.config.http.websocketPath}`
}

/** An MQTT.js client that is connected (CONNACK received) when the promise resolves. */
export async function connectClient (t: Teardown, broker: BrokerHandle, transport: Transport, options: IClientOptions = {}): Promise<MqttClient> {
  return (await openClient(t, broker, transport, options)).client
}

/**
 * Connects and resolves with the client and its CONNACK. `beforeConnack` runs before any packet
 * arrives, e.g. to collect messages a resumed session delivers right after the CONNACK.
 */
export async function openClient (t: Teardown, broker: BrokerHandle, transport: Transport, options: IClientOptions = {}, beforeConnack?: (client: MqttClient) => void): Promise<{ client: MqttClient, connack: IConnackPacket }> {
  return await openUrl(t, brokerUrl(broker, transport), options, beforeConnack)
}

/** Like openClient, for a broker known by URL (e.g. a broker process). */
export async function openUrl (t: Teardown, url: string, options: IClientOptions = {}, beforeConnack?: (client: MqttClient) => void): Promise<{ client: MqttClient, connack: IConnackPacket }> {
  const client = connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  t.teardown(() => closeClient(client))
  beforeConnack?.(client)
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve)
    client.once('error', reject)
    client.once('close', () => reject(new Error('connection closed before CONNACK')))
  })
  return { client, connack }
}

/** Whether the broker at `url` accepts an MQTT 5 CONNECT (a broker that does not speak MQTT 5 refuses it). */
export async function acceptsMqtt5 (t: Teardown, url: string): Promise<boolean> {
  return await openUrl(t, url, { protocolVersion: 5 }).then(() => true, () => false)
}

/** Resolves with the CONNACK error a refused connection gets (MQTT.js reports its code). */
export async function connectRefused (t: Teardown, url: string, options: IClientOptions = {}): Promise<number> {
  const client = connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  t.teardown(() => closeClient(client))
  return await new Promise<number>((resolve, reject) => {
    client.once('connect', () => reject(new Error('connection was accepted')))
    client.once('error', (err: Error & { code?: number }) => resolve(err.code ?? -1))
    // closed without a CONNACK
    client.once('close', () => resolve(-1))
  })
}

export function closeClient (client: MqttClient, force = true): Promise<void> {
  return new Promise((resolve) => client.end(force, {}, () => resolve()))
}

/** Subscribes and resolves with the granted QoS per filter, 128 (0x80) for a refused one. */
export function subscribeGranted (client: MqttClient, filters: Record<string, { qos: 0 | 1 | 2 }>): Promise<number[]> {
  return new Promise((resolve, reject) => {
    client.subscribe(filters, (err, granted) => {
      // MQTT.js reports a SUBACK with a 0x80 as an error that carries the packet
      const suback = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted
      if (suback !== undefined) resolve(suback)
      else if (err !== null && err !== undefined) reject(err)
      else resolve((granted ?? []).map((g) => g.qos))
    })
  })
}

/** A logger that keeps every line it writes, parsed, for tests that check log lines. */
export function capturingLogger (): { logger: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  return { logger, lines }
}

/** Reads one sample from a Prometheus text exposition (0 when absent). */
export function metricValue (text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const match = /^([a-z_:]+)(?:\{(.*)\})? ([-\d.e+]+|NaN)$/i.exec(line)
    if (match === null || match[1] !== name) continue
    const present = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]))
    if (Object.entries(labels).every(([k, v]) => present[k] === v)) return Number(match[3])
  }
  return 0
}

/** Collects the messages a client receives. */
export function collect (client: MqttClient): Array<{ topic: string, payload: string, packet: IPublishPacket }> {
  const messages: Array<{ topic: string, payload: string, packet: IPublishPacket }> = []
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), packet }))
  return messages
}

/** Waits until `predicate` holds, polling; fails with `what` after `ms`. */
export async function waitFor (predicate: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** `promise`, or a failure saying `what()` (read when it fires) if it has not settled within `ms`. */
export async function within<T> (promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(what())), ms) })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
