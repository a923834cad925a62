// Running statistics over a stream of digit predictions, in bounded memory:
// thousands of results a second may arrive for hours, so nothing here grows
// with the number of results (see bounded-counters.ts).
import { LatencyReservoir, RecentIds, RecentRate, type LatencySummary } from "./bounded-counters";

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
  /** Ids of results and of error replies, apart: a retry that succeeds after an error reply is a result, not a repeat. */
  private resultIds!: RecentIds;
  private errorIds!: RecentIds;

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
    this.resultIds = new RecentIds(this.rememberIds);
    this.errorIds = new RecentIds(this.rememberIds);
  }

  /**
   * Counts a result, unless its id was seen recently: that is the same answer
   * again (a QoS 1 redelivery, or a request sent again), counted only as a duplicate.
   * Says whether it was a duplicate and, with `sentAt`, its end-to-end latency.
   */
  record(result: Observation, now: number, legacy = false): { duplicate: boolean; latencyMs?: number } {
    if (result.id !== undefined && this.resultIds.check(result.id)) {
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
    if (id !== undefined && this.errorIds.check(id)) {
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
