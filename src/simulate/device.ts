// How a simulated sensor behaves: temperature and humidity drifting around its own baseline,
// a battery that drains, and now and then an overheating episode. Pure: time and chance are inputs.

export interface Device {
  id: string
  baseline: number
  temperature: number
  humidity: number
  battery: number
  /** ms since the epoch until which it overheats; 0 when it does not. */
  overheatingUntil: number
}

export interface Reading { id: string, ts: number, temperature: number, humidity: number, battery: number }

/** Above this, a device reports status "alert". */
export const alertTemperature = 45

export function createDevice (id: string, random: () => number): Device {
  const baseline = 19 + random() * 8
  return { id, baseline, temperature: baseline, humidity: 35 + random() * 25, battery: 60 + random() * 40, overheatingUntil: 0 }
}

/** Advances one reading; about one reading in 5000 starts a 20 s overheating episode. */
export function readDevice (device: Device, now: number, random: () => number): { device: Device, reading: Reading } {
  const overheatingUntil = device.overheatingUntil > now ? device.overheatingUntil : random() < 0.0002 ? now + 20_000 : 0
  const target = overheatingUntil > now ? device.baseline + 35 : device.baseline
  const temperature = device.temperature + (target - device.temperature) * 0.15 + (random() - 0.5) * 0.6
  const humidity = Math.min(95, Math.max(15, device.humidity + (random() - 0.5) * 1.5))
  const battery = device.battery > 5 ? device.battery - 0.002 : 100 // "recharged"
  const next = { ...device, temperature, humidity, battery, overheatingUntil }
  return { device: next, reading: { id: device.id, ts: now, temperature: round(temperature), humidity: round(humidity), battery: round(battery) } }
}

export function statusOf (device: Device): 'online' | 'alert' {
  return device.temperature > alertTemperature ? 'alert' : 'online'
}

function round (value: number): number {
  return Math.round(value * 10) / 10
}
