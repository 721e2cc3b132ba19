// HAProxy with config/examples/haproxy.cfg (docs/cluster.md) in front of broker nodes: TCP for
// MQTT, HTTP upgrade for WebSocket, /readyz health checks. The example names three nodes; with
// fewer, the lines of the missing ones are left out.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { diesWithTest } from './children.js'
import { freePort, type Teardown } from './loopback.js'

const exampleConfig = new URL('../../config/examples/haproxy.cfg', import.meta.url)
const exampleNodes = 3

export interface BalancedNode { mqttPort: number, httpPort: number }
export interface Balancer { mqttPort: number, httpPort: number }

async function portOpen (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Starts HAProxy in front of `nodes` (1 to 3) and resolves once it listens and has health-checked them. */
export async function startHaproxy (t: Teardown, nodes: BalancedNode[]): Promise<Balancer> {
  if (nodes.length < 1 || nodes.length > exampleNodes) throw new Error(`the example balances 1 to ${exampleNodes} nodes, not ${nodes.length}`)
  const mqttPort = await freePort()
  const httpPort = await freePort()
  const env: Record<string, string> = { ...process.env as Record<string, string>, LB_MQTT_PORT: String(mqttPort), LB_HTTP_PORT: String(httpPort) }
  nodes.forEach((node, i) => { env[`NODE${i + 1}_MQTT`] = String(node.mqttPort); env[`NODE${i + 1}_HTTP`] = String(node.httpPort) })
  const absent = Array.from({ length: exampleNodes - nodes.length }, (_, i) => `server node${nodes.length + i + 1} `)
  const config = readFileSync(exampleConfig, 'utf8').split('\n').filter((line) => !absent.some((server) => line.includes(server))).join('\n')
  const configFile = join(mkdtempSync(join(tmpdir(), 'rb-haproxy-')), 'haproxy.cfg')
  writeFileSync(configFile, config)
  const haproxy = diesWithTest(spawn('haproxy', ['-db', '-f', configFile], { env, stdio: 'ignore' }))
  t.teardown(() => { haproxy.kill('SIGKILL') })
  const deadline = Date.now() + 10_000
  while (!(await portOpen(mqttPort)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  await new Promise((resolve) => setTimeout(resolve, 1500)) // first health checks
  return { mqttPort, httpPort }
}
