// Broker nodes as real OS processes (the built CLI), for CLI, signal and cluster tests.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { diesWithTest } from './children.js'
import type { Teardown } from './loopback.js'

export const cliPath = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url))

export interface BrokerProcess {
  child: ChildProcess
  mqttPort: number
  httpPort: number
  /** Everything the process printed so far, stdout and stderr. */
  output: () => string
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>
}

/** Starts `realtime-broker start` on free ports and resolves once every listener is up. */
export async function spawnBroker (t: Teardown, args: string[] = [], env: Record<string, string> = {}): Promise<BrokerProcess> {
  const child = diesWithTest(spawn(process.execPath, [cliPath, 'start', ...args], {
    env: { ...process.env, MQTT_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  }))
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  // generous: on a loaded 2-core machine a node on a Redis Cluster once took over 15 s to print
  const deadline = Date.now() + 30_000
  for (;;) {
    const mqtt = /MQTT over TCP listening on mqtt:\/\/[^\s]*:(\d+)/.exec(output)
    const http = /HTTP \(health\) listening on https?:\/\/[^\s]*:(\d+)/.exec(output)
    if (mqtt !== null && http !== null) {
      return { child, mqttPort: Number(mqtt[1]), httpPort: Number(http[1]), output: () => output, exited }
    }
    if (child.exitCode !== null) throw new Error(`broker exited with ${child.exitCode}:\n${output}`)
    if (Date.now() > deadline) throw new Error(`broker did not start in time:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Runs the CLI to completion and returns its exit code and output. */
export function runCli (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    const child = diesWithTest(spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }))
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}
