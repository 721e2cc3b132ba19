// The telemetry demo's data: each device's status and recent readings, and per-second rates.

export type DeviceStatus = 'online' | 'alert' | 'offline'

export interface Reading { id: string, ts: number, temperature: number, humidity: number, battery: number }

export interface Device {
  id: string
  status: DeviceStatus
  last: Reading | null
  /** One temperature per second, newest last. */
  temperatures: number[]
}

/** Seconds of history the charts show. */
export const windowS = 60

export function isReading (value: unknown): value is Reading {
  if (typeof value !== 'object' || value === null) return false
  const { id, ts, temperature, humidity, battery } = value as Record<string, unknown>
  return typeof id === 'string' && [ts, temperature, humidity, battery].every((n) => typeof n === 'number' && Number.isFinite(n))
}

export function statusOf (value: unknown): DeviceStatus | null {
  const status = (value as { status?: unknown } | null)?.status
  return status === 'online' || status === 'alert' || status === 'offline' ? status : null
}

/** Appends to a fixed-length window, dropping the oldest. */
export function pushWindow (values: number[], value: number): void {
  values.push(value)
  if (values.length > windowS) values.shift()
}
