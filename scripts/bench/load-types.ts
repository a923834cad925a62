// What the benchmark and its load generator say to each other over IPC, and
// what a run reports. Kept apart from load-generator.ts so that file holds
// only the generator.
import type { Reference } from "./samples";
import { distribution, type Distribution } from "./stats";

/**
 * How requests are sent:
 * - window: closed loop, `window` requests in flight; each answer releases the next.
 * - rate: open loop, `rate` requests per second on a clock, whatever the answers do.
 * - lone: one request at a time with a pause between, so the pipeline is idle for each.
 * `batch` (window only) sends batch requests of that many images, `{"id","images","labels"}`,
 * instead of one image per envelope; `window` then counts requests, not images.
 */
export type LoadMode =
  | { kind: "window"; window: number; batch?: number }
  | { kind: "rate"; rate: number }
  | { kind: "lone"; count: number; gapMs: number };

export interface RunCommand {
  type: "run";
  name: string;
  mode: LoadMode;
  /** Sent and checked, but not measured. */
  warmupMs: number;
  /** The measured part of the run (ignored for lone). */
  durationMs: number;
  /** How long to wait for outstanding answers after the last request. */
  drainMs: number;
}

export interface SetupCommand {
  type: "setup";
  url: string;
  requestTopic: string;
  resultTopic: string;
  errorTopic: string;
  references: Reference[];
}

export type GeneratorCommand = SetupCommand | RunCommand | { type: "exit" };

/** Counts are of images (a batch request of 32 counts 32), except `sent` and the latencies, which are of requests. */
export interface RunReport {
  name: string;
  mode: LoadMode;
  /** Images per request: 1, or the batch size. */
  batch: number;
  /** Wall-clock (Date.now) bounds of the measured part, to line up RSS and editor samples. */
  measuredFrom: number;
  measuredTo: number;
  /** Requests sent. */
  sent: number;
  /** Results (not error replies) per second during the measured part: images/s. */
  throughput: number;
  /** publish → reply, ms, for replies received during the measured part (a batch: its whole reply). */
  latency: Distribution;
  /** Lone runs: each request's latency in the order sent (the first is the first after a deploy). */
  sequence?: number[];
  results: number;
  errorReplies: Record<string, number>;
  /** Images never answered by the end of the drain (a batch reply short of items counts the missing ones). */
  lost: number;
  /** Answers beyond the first for one image. */
  duplicated: number;
  /** Results whose id names another request than the one they answer, or no request of this run,
   *  or a batch item that is not the answer for the image in its slot. */
  misattributed: number;
  /** Results for requests of an earlier run (answered after that run gave up on them). */
  late: number;
  /** Results whose digit equals the request's label. */
  correct: number;
  meanBatch: number;
  /** CPU time of this generator process during the measured part, in cores. */
  generatorCores: number;
  examples: string[];
}

export function emptyReport(name: string, mode: LoadMode): RunReport {
  return {
    name,
    mode,
    batch: mode.kind === "window" ? (mode.batch ?? 1) : 1,
    measuredFrom: 0,
    measuredTo: 0,
    sent: 0,
    throughput: 0,
    latency: distribution([]),
    results: 0,
    errorReplies: {},
    lost: 0,
    duplicated: 0,
    misattributed: 0,
    late: 0,
    correct: 0,
    meanBatch: 0,
    generatorCores: 0,
    examples: [],
  };
}

/** One image's answer, alone or as an item of a batch reply. */
export interface Answer {
  digit?: number;
  confidence?: number;
  label?: number;
  error?: { code?: string };
  timings?: { batchSize?: number };
}
