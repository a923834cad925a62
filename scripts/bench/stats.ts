// Small statistics for the benchmark's measurements.
import { performance } from "node:perf_hooks";

export interface Distribution {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles of `values` (milliseconds, or any unit). */
export function distribution(values: ArrayLike<number>): Distribution {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  if (n === 0) return { count: 0, mean: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  const rank = (p: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))];
  return { count: n, mean: sum / n, p50: rank(50), p90: rank(90), p99: rank(99), max: sorted[n - 1] };
}

export function median(values: number[]): number {
  return distribution(values).p50;
}

/** Runs `fn` repeatedly for about `ms` milliseconds after a warm-up; returns calls per second. */
export function rateOf(fn: (i: number) => void, ms: number): number {
  const warmUntil = performance.now() + Math.min(200, ms / 4);
  let i = 0;
  while (performance.now() < warmUntil) fn(i++);
  const start = performance.now();
  const end = start + ms;
  let calls = 0;
  let now = start;
  // Read the clock every 64 calls: calls can take well under a microsecond.
  while (now < end) {
    for (let k = 0; k < 64; k++) fn(i++);
    calls += 64;
    now = performance.now();
  }
  return (calls * 1000) / (now - start);
}

/** Images per second of an async step that handles `perCall` images, run back to back for about `ms`. */
export async function asyncRate(fn: () => Promise<unknown>, perCall: number, ms: number): Promise<number> {
  const warmUntil = performance.now() + Math.min(200, ms / 4);
  while (performance.now() < warmUntil) await fn();
  const start = performance.now();
  let calls = 0;
  while (performance.now() - start < ms) {
    await fn();
    calls++;
  }
  return (calls * perCall * 1000) / (performance.now() - start);
}
