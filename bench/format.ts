// Numbers as the report prints them.

/** 20000 → "20,000". */
export function count (n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: 0 })
}

/** A metric value with `digits` decimals; thousands separated. */
export function decimal (n: number, digits: number): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

/** 83123 ms → "1m23s". */
export function duration (ms: number): string {
  const s = Math.floor(ms / 1000)
  return s < 60 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
}
