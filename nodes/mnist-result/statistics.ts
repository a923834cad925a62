// Running statistics over a stream of digit predictions, in bounded memory:
// thousands of results a second may arrive for hours, so nothing here grows
// with the number of results.

/** What the statistics need from one result. */
export interface Observation {
  digit: number;
  confidence?: number;
  /** The model was not sure of this one (mnist-infer's `unsure`). */
  unsure?: boolean;
  label?: number;
  id?: string | number;
  sentAt?: number;
}

export interface DigitScores {
  digit: number;
  /** Labelled results whose label is this digit. */
  support: number;
  precision: number | null;
  recall: number | null;
  f1: number | null;
}

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

export interface Summary {
  count: number;
  legacy: number;
  labelled: number;
  correct: number;
  accuracy: number | null;
  /** Results flagged unsure, their share of all results, and accuracy on the labelled results that were sure. */
  unsure: { count: number; share: number | null; sureLabelled: number; sureCorrect: number; sureAccuracy: number | null };
  last: {
    digit: number;
    confidence: number | null;
    label: number | null;
    correct: boolean | null;
    unsure: boolean;
    id: string | number | null;
    at: string;
  } | null;
  throughput: { recent: number; overall: number; windowSeconds: number };
  predictions: number[];
  perDigit: DigitScores[];
  confusion: number[][];
  latency: LatencySummary;
  errors: { total: number; byCode: Record<string, number> };
  unparseable: number;
  duplicates: number;
  since: string;
  firstResultAt: string | null;
}

export interface StatisticsOptions {
  windowSeconds?: number;
  latencySamples?: number;
  rememberIds?: number;
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
class RecentRate {
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
class RecentIds {
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

export class ResultStatistics {
  private readonly windowSeconds: number;
  private readonly latencySamples: number;
  private readonly rememberIds: number;

  private startedAt = 0;
  private firstAt: number | undefined;
  private count = 0;
  private legacy = 0;
  private labelled = 0;
  private correct = 0;
  private unsure = 0;
  private sureLabelled = 0;
  private sureCorrect = 0;
  private last: Omit<NonNullable<Summary["last"]>, "at"> | null = null;
  private lastAt = 0;
  private predictions: number[] = [];
  private confusion: number[][] = [];
  private errorCodes = new Map<string, number>();
  private errorTotal = 0;
  private unparseable = 0;
  private duplicates = 0;
  private rate!: RecentRate;
  private latency!: LatencyReservoir;
  private ids!: RecentIds;

  constructor(now: number, options: StatisticsOptions = {}) {
    this.windowSeconds = options.windowSeconds ?? 10;
    this.latencySamples = options.latencySamples ?? 4096;
    this.rememberIds = options.rememberIds ?? 10000;
    this.reset(now);
  }

  get results(): number {
    return this.count;
  }

  /** The last result counted. */
  get latest(): Omit<NonNullable<Summary["last"]>, "at"> | null {
    return this.last;
  }

  get accuracy(): number | null {
    return this.labelled > 0 ? this.correct / this.labelled : null;
  }

  reset(now: number): void {
    this.startedAt = now;
    this.firstAt = undefined;
    this.count = this.legacy = this.labelled = this.correct = 0;
    this.unsure = this.sureLabelled = this.sureCorrect = 0;
    this.errorTotal = this.unparseable = this.duplicates = 0;
    this.last = null;
    this.predictions = new Array(10).fill(0);
    this.confusion = Array.from({ length: 10 }, () => new Array(10).fill(0));
    this.errorCodes.clear();
    this.rate = new RecentRate(this.windowSeconds);
    this.latency = new LatencyReservoir(this.latencySamples);
    this.ids = new RecentIds(this.rememberIds);
  }

  /** Counts one result; says whether its id was seen before and, with `sentAt`, its end-to-end latency. */
  /**
   * Counts a result, unless its id was seen recently: that is the same answer
   * again (a QoS 1 redelivery, or a request sent again), counted only as a duplicate.
   */
  record(result: Observation, now: number, legacy = false): { duplicate: boolean; latencyMs?: number } {
    if (result.id !== undefined && this.ids.check(result.id)) {
      this.duplicates++;
      return { duplicate: true };
    }
    this.count++;
    if (legacy) this.legacy++;
    if (this.firstAt === undefined) this.firstAt = now;
    this.rate.add(now);
    this.predictions[result.digit]++;
    const unsure = result.unsure === true;
    if (unsure) this.unsure++;
    let correct: boolean | null = null;
    if (result.label !== undefined) {
      correct = result.label === result.digit;
      this.labelled++;
      if (correct) this.correct++;
      if (!unsure) {
        this.sureLabelled++;
        if (correct) this.sureCorrect++;
      }
      this.confusion[result.label][result.digit]++;
    }
    let latencyMs: number | undefined;
    if (result.sentAt !== undefined) {
      // Sender and receiver clocks may differ slightly; a negative latency means "about zero".
      latencyMs = Math.max(0, now - result.sentAt);
      this.latency.add(latencyMs);
    }
    this.last = {
      digit: result.digit,
      confidence: result.confidence ?? null,
      label: result.label ?? null,
      correct,
      unsure,
      id: result.id ?? null,
    };
    this.lastAt = now;
    return latencyMs === undefined ? { duplicate: false } : { duplicate: false, latencyMs };
  }

  /** Counts an error reply; false if its id was seen recently (the same reply again). */
  recordError(code: string, id?: string | number): boolean {
    if (id !== undefined && this.ids.check(id)) {
      this.duplicates++;
      return false;
    }
    this.errorTotal++;
    this.errorCodes.set(code, (this.errorCodes.get(code) ?? 0) + 1);
    return true;
  }

  recordUnparseable(): void {
    this.unparseable++;
  }

  summary(now: number): Summary {
    const perDigit: DigitScores[] = [];
    for (let d = 0; d < 10; d++) {
      const hits = this.confusion[d][d];
      const support = this.confusion[d].reduce((a, b) => a + b, 0); // row: labelled d
      const predicted = this.confusion.reduce((a, row) => a + row[d], 0); // column: predicted d, among labelled
      const precision = predicted > 0 ? hits / predicted : null;
      const recall = support > 0 ? hits / support : null;
      // With hits = 0 one of precision/recall may be undefined (null) while the other is 0: F1 is then 0.
      const p = precision ?? 0;
      const r = recall ?? 0;
      const f1 = p + r > 0 ? (2 * p * r) / (p + r) : support + predicted > 0 ? 0 : null;
      perDigit.push({ digit: d, support, precision, recall, f1 });
    }
    const first = this.firstAt;
    return {
      count: this.count,
      legacy: this.legacy,
      labelled: this.labelled,
      correct: this.correct,
      accuracy: this.accuracy,
      unsure: {
        count: this.unsure,
        share: this.count > 0 ? this.unsure / this.count : null,
        sureLabelled: this.sureLabelled,
        sureCorrect: this.sureCorrect,
        sureAccuracy: this.sureLabelled > 0 ? this.sureCorrect / this.sureLabelled : null,
      },
      last: this.last && { ...this.last, at: new Date(this.lastAt).toISOString() },
      throughput: {
        recent: first === undefined ? 0 : this.rate.perSecond(now, first),
        overall: first === undefined ? 0 : this.count / Math.max(1, (now - first) / 1000),
        windowSeconds: this.windowSeconds,
      },
      predictions: [...this.predictions],
      perDigit,
      confusion: this.confusion.map((row) => [...row]),
      latency: this.latency.summary(),
      errors: { total: this.errorTotal, byCode: Object.fromEntries(this.errorCodes) },
      unparseable: this.unparseable,
      duplicates: this.duplicates,
      since: new Date(this.startedAt).toISOString(),
      firstResultAt: first === undefined ? null : new Date(first).toISOString(),
    };
  }
}
