// What `npm run bench` measures, as data: written to bench-results/*.json and
// read by the report. Kept apart so the stages and the report import no cycle.
import type { Ceilings } from "./ceilings";
import type { Limits } from "./limits";
import type { RunReport } from "./load-types";
import type { Machine } from "./machine";
import type { NodeAloneReport } from "./node-alone";
import type { ThreadCores } from "./processes";
import type { ThreadProfile } from "./profile";
import type { Distribution } from "./stats";

export interface BenchOptions {
  quick: boolean;
  seconds: number;
  window: number;
  stages: Set<number>;
  profile: boolean;
  flow: string;
  /** Run pinned to this many cores (taskset -c 0..n-1), or undefined for all of them. */
  cores?: number;
}

/** 100 lone requests, one at a time: the first's, the hundredth's and the median latency, ms. */
export interface FirstRequests {
  first: number;
  hundredth: number;
  median: number;
  run: RunReport;
}

export interface EndToEnd {
  broker: string;
  flow: string;
  /** The backend setting mnist-infer ran with ("auto" is the flow as shipped). */
  backend: string;
  window: number;
  /** The first 100 requests after Node-RED started and deployed the flow. */
  firstAfterDeploy: FirstRequests;
  /** The first 100 requests after a redeploy of the mnist-infer nodes alone, at the end of the stage (runs before 5 December lack it). */
  firstAfterRedeploy?: FirstRequests;
  lone: RunReport;
  /** Batch requests (BATCH in end-to-end.ts), closed loop; CPU during that run, in cores. */
  batch: { run: RunReport; cores: { nodeRed: number; broker: number }; threads?: ThreadCores };
  full: RunReport;
  paced: RunReport;
  rss: RssReport;
  editor: { idle: Distribution; load: Distribution; failures: number };
  /** CPU used during the full-load run, in cores; `others` is everything else on the machine. */
  cores: { nodeRed: number; broker: number; generator: number; others: number };
  /** Node-RED's CPU during the full-load run by thread (Linux only). */
  threads?: ThreadCores;
  /** Share of the sustained run Node-RED's main thread spent runnable but waiting for a core (Linux). */
  mainThreadWaiting?: number;
  profile?: ThreadProfile[];
}

/** Node-RED's resident memory during the sustained run, sampled every 250 ms from /proc. */
export interface RssReport {
  /** Largest sample, and VmHWM (the kernel's peak) at the end of the run. */
  peakBytes: number;
  hwmBytes?: number;
  /** Mean, lowest and highest sample of the first and the last 20% of the measured run. */
  first: { mean: number; low: number; high: number };
  last: { mean: number; low: number; high: number };
  /** last.mean / first.mean - 1: the target's "flat" measure. */
  change: number;
  /** [seconds since the run started, MB], one a second, for plotting. */
  series: Array<[number, number]>;
}

export interface Scaling {
  flow: string;
  one: RunReport;
  two: RunReport;
  /** CPU share of each instance during the two-instance run, in cores. */
  coresPerInstance: number[];
}

/** Stage 6 (floor.ts): one measured run of the chain with the stand-in. */
export interface FloorRun {
  run: RunReport;
  /** CPU in cores during the measured run: Node-RED (and its main thread), the broker, the load generator. */
  cores: { nodeRed: number; broker: number; generator: number };
  threads?: ThreadCores;
  /** Their sum per result, in seconds of CPU. */
  cpuPerResult: number;
}

/** Stage 6: the chain with a stand-in that answers without classifying. */
export interface Floor {
  flow: string;
  single: FloorRun;
  batch: FloorRun;
  /** One image per envelope with the flow's Complete node kept (each reply confirmed back to the stand-in). */
  singleConfirmed: FloorRun;
  /** The stand-in's first request after Node-RED's start against its hundredth: Node-RED's own first-time costs. */
  firstAfterStart?: FirstRequests;
}

export interface BenchResult {
  startedAt: string;
  seconds: number;
  options: { quick: boolean; seconds: number; window: number; stages: number[]; flow: string; cores?: number };
  machine: Machine;
  /** What ONNX Runtime alone does with the shipped model: every share is of these. */
  limits?: Limits;
  ceilings?: Omit<Ceilings, "references">;
  nodeAlone?: NodeAloneReport;
  endToEnd?: EndToEnd;
  /** Stage 5: the same end-to-end run with mnist-infer on the WebAssembly backend. */
  wasmEndToEnd?: EndToEnd;
  scaling?: Scaling;
  /** Stage 6: the chain with a stand-in that answers without classifying. */
  floor?: Floor;
  skipped: string[];
}

