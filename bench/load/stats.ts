// Percentiles of recorded latencies (all samples kept: a few seconds at a fixed rate is small).

/** Nearest-rank percentile of the first `count` samples; sorts them in place. */
export function percentiles (samples: Float64Array, count: number, ranks: number[]): number[] {
  const sorted = samples.subarray(0, count).sort()
  return ranks.map((p) => count === 0 ? NaN : sorted[Math.min(count - 1, Math.ceil((p / 100) * count) - 1)] as number)
}
