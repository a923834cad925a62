// Counters for an endless stream in fixed memory: a latency sample, a
// per-second rate over a short window, and the ids seen last. The statistics of
// mnist-result are built from them.

export interface LatencySummary {
  count: number;
  meanMs: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** True once percentiles come from a sample rather than every latency. */
  sampled: boolean;
}

/** Latencies: exact count, mean and max; percentiles from a uniform reservoir sample (Vitter's algorithm R). */
export class LatencyReservoir {
  private readonly sample: Float64Array;
  private filled = 0;
  private count = 0;
  private sum = 0;
  private max = 0;

  constructor(capacity: number) {
    this.sample = new Float64Array(capacity);
  }

  add(ms: number): void {
    this.count++;
    this.sum += ms;
    if (ms > this.max || this.count === 1) this.max = ms;
    if (this.filled < this.sample.length) {
      this.sample[this.filled++] = ms;
    } else {
      // Keep each of the `count` latencies with equal probability capacity/count.
      const slot = Math.floor(Math.random() * this.count);
      if (slot < this.sample.length) this.sample[slot] = ms;
    }
  }

  summary(): LatencySummary {
    if (this.count === 0) {
      return { count: 0, meanMs: null, p50Ms: null, p95Ms: null, p99Ms: null, maxMs: null, sampled: false };
    }
    const sorted = this.sample.slice(0, this.filled).sort();
    // Nearest-rank percentile: the smallest value with at least p% of values at or below it.
    const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
    return {
      count: this.count,
      meanMs: this.sum / this.count,
      p50Ms: rank(50),
      p95Ms: rank(95),
      p99Ms: rank(99),
      maxMs: this.max,
      sampled: this.count > this.filled,
    };
  }
}

/** Results per second over the last few seconds, counted in one bucket per second. */
export class RecentRate {
  private readonly counts: Uint32Array;
  private readonly seconds: Float64Array;

  constructor(private readonly windowSeconds: number) {
    this.counts = new Uint32Array(windowSeconds);
    this.seconds = new Float64Array(windowSeconds).fill(-1);
  }

  add(now: number): void {
    const second = Math.floor(now / 1000);
    const slot = second % this.windowSeconds;
    if (this.seconds[slot] !== second) {
      this.seconds[slot] = second;
      this.counts[slot] = 0;
    }
    this.counts[slot]++;
  }

  /** `since` is the first result: a stream younger than the window is not diluted by time before it. */
  perSecond(now: number, since: number): number {
    const second = Math.floor(now / 1000);
    let total = 0;
    for (let i = 0; i < this.windowSeconds; i++) {
      if (this.seconds[i] > second - this.windowSeconds && this.seconds[i] <= second) total += this.counts[i];
    }
    // The buckets cover the window's whole seconds and the current, partial one.
    const covered = this.windowSeconds - 1 + (now % 1000) / 1000;
    return total / Math.max(1, Math.min(covered, (now - since) / 1000));
  }
}

/** The last `capacity` ids, to notice a result seen twice (an MQTT redelivery, a sender's retry). */
export class RecentIds {
  private readonly seen = new Set<string>();
  private readonly order: string[] = [];
  private next = 0;

  constructor(private readonly capacity: number) {}

  /** Remembers the id; true if it was already remembered. */
  check(id: string | number): boolean {
    const key = String(id);
    if (this.seen.has(key)) return true;
    if (this.order.length < this.capacity) {
      this.order.push(key);
    } else {
      this.seen.delete(this.order[this.next]);
      this.order[this.next] = key;
      this.next = (this.next + 1) % this.capacity;
    }
    this.seen.add(key);
    return false;
  }
}
