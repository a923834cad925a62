// `npm run bench`: how fast node-red-contrib-mnist is, from each step alone to
// the whole MQTT chain, on this machine, in about two minutes. Prints a table
// with the targets of issue #4 beside the measurements, and writes everything
// measured to bench-results/bench-<time>.json. All traffic stays on 127.0.0.1.
//
//   1. ceilings: each step of the inference path alone, in this process
//   2. the mnist-infer node alone in an embedded Node-RED runtime (no MQTT)
//   3. end to end: a load-generator process → Mosquitto → Node-RED running
//      flows/mnist-infer.json (started like `npm start`) → Mosquitto → generator
//   4. scaling: one, then two Node-RED instances on flows/mnist-infer-shared.json
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { findMosquitto, REPO_ROOT, startAedes, startMosquitto, type Broker } from "./broker";
import { BATCH_SIZES, measureCeilings, type Ceilings } from "./bench/ceilings";
import { busyBetween, cpuTimes, describeMachine, type Machine } from "./bench/machine";
import { runNodeAlone, type NodeAloneReport } from "./bench/node-alone";
import { cpuSecondsOf, EditorWatcher, LoadGenerator, rssOf, Sampler, startNodeRed, type NodeRedInstance } from "./bench/processes";
import { summariseProfiles, type ThreadProfile } from "./bench/profile";
import { printReport } from "./bench/report";
import { loadSamples, type Reference } from "./bench/samples";
import { distribution, type Distribution } from "./bench/stats";
import type { LoadMode, RunReport } from "./bench/load-generator";

const USAGE = `Usage: npm run bench [-- options]

  --quick            shorter runs (about a minute): for trying things, not for the record
  --seconds <n>      measured length of the sustained full-load run, after 30 s of warm-up
                     (default 60: its first and last 20% each span about a garbage-collection cycle)
  --window <n>       requests in flight in the closed-loop runs (default 300)
  --stages <list>    which stages to run, e.g. 1,3 (default 1,2,3,4)
  --flow <file>      the flow stage 3 runs (default flows/mnist-infer.json); any flow that
                     answers requests on "mnist" with results on "result" and "result/error"
  --profile          run the end-to-end Node-RED with --cpu-prof and say where its time went
                     (slows it down; profiles kept in bench-results/profiles/)
  --help             this text`;

export interface BenchOptions {
  quick: boolean;
  seconds: number;
  window: number;
  stages: Set<number>;
  profile: boolean;
  flow: string;
}

export interface EndToEnd {
  broker: string;
  flow: string;
  window: number;
  lone: RunReport;
  full: RunReport;
  paced: RunReport;
  rss: RssReport;
  editor: { idle: Distribution; load: Distribution; failures: number };
  /** CPU used during the full-load run, in cores; `others` is everything else on the machine. */
  cores: { nodeRed: number; broker: number; generator: number; others: number };
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

export interface BenchResult {
  startedAt: string;
  seconds: number;
  options: { quick: boolean; seconds: number; window: number; stages: number[]; flow: string };
  machine: Machine;
  ceilings?: Omit<Ceilings, "references">;
  nodeAlone?: NodeAloneReport;
  endToEnd?: EndToEnd;
  scaling?: Scaling;
  skipped: string[];
}

export function parseArgs(argv: string[]): BenchOptions | undefined {
  const options: BenchOptions = { quick: false, seconds: 60, window: 300, stages: new Set([1, 2, 3, 4]), profile: false, flow: "flows/mnist-infer.json" };
  let secondsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value\n\n${USAGE}`);
      return next;
    };
    const positive = (text: string) => {
      const n = Number(text);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${arg} needs a whole number of at least 1, got ${text}`);
      return n;
    };
    if (arg === "--help" || arg === "-h") return undefined;
    else if (arg === "--quick") options.quick = true;
    else if (arg === "--profile") options.profile = true;
    else if (arg === "--seconds") (options.seconds = positive(value())), (secondsGiven = true);
    else if (arg === "--window") options.window = positive(value());
    else if (arg === "--flow") options.flow = value();
    else if (arg === "--stages") {
      const stages = value().split(",").map((s) => Number(s.trim()));
      if (stages.some((s) => ![1, 2, 3, 4].includes(s))) throw new Error(`--stages takes numbers 1 to 4, e.g. 1,3`);
      options.stages = new Set(stages);
    } else throw new Error(`unknown option ${arg}\n\n${USAGE}`);
  }
  if (options.quick && !secondsGiven) options.seconds = 8;
  if (options.window >= 1000) throw new Error("--window must stay under mnist-infer's queue of 1,000 requests, or the excess gets queue-full replies");
  return options;
}

async function main(argv: string[]): Promise<void> {
  const options = parseArgs(argv);
  if (!options) return console.log(USAGE);
  const started = Date.now();
  const say = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}`);
  const machine = await describeMachine();
  const result: BenchResult = {
    startedAt: new Date(started).toISOString(),
    seconds: 0,
    options: { quick: options.quick, seconds: options.seconds, window: options.window, stages: [...options.stages].sort(), flow: options.flow },
    machine,
    skipped: [],
  };
  say(`${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, Node-RED ${machine.nodeRed}, Mosquitto ${machine.mosquitto}`);
  if (machine.busyBefore > 0.2) {
    say(`note: ${(machine.busyBefore * 100).toFixed(0)}% of the CPUs were busy with other work before the run; expect lower numbers`);
  }

  const samples = loadSamples();
  const stepMs = options.quick ? 300 : 700;
  say(options.stages.has(1) ? "stage 1: ceilings of each step, in this process" : "what the model answers for each sample, to check results against");
  // The references (what the model answers for each sample) are needed by stages 3 and 4 too.
  const ceilings = await measureCeilings(samples, { ms: options.stages.has(1) ? stepMs : 50, repeats: options.stages.has(1) ? 3 : 1 });
  if (options.stages.has(1)) {
    const { references: _references, ...rest } = ceilings;
    result.ceilings = rest;
  }

  if (options.stages.has(2)) {
    say("stage 2: mnist-infer alone in an embedded Node-RED runtime");
    result.nodeAlone = await runNodeAlone({ maxBatch: 32, window: 512, warmupMs: 2000, durationMs: options.quick ? 3000 : 8000 });
  }

  const needsBroker = options.stages.has(3) || options.stages.has(4);
  const mosquitto = needsBroker && findMosquitto();
  if (needsBroker && !mosquitto) {
    say("Mosquitto is not installed (apt-get install mosquitto): stage 3 runs on the embedded aedes broker, stage 4 is skipped");
  }
  const profileDir = path.join(REPO_ROOT, "bench-results", "profiles", result.startedAt.replace(/[:.]/g, "-"));
  if (options.stages.has(3)) {
    say(`stage 3: end to end through ${mosquitto ? "Mosquitto" : "aedes"} and Node-RED on ${options.flow}`);
    const broker = mosquitto ? await startMosquitto() : await startAedes();
    try {
      result.endToEnd = await endToEnd(broker, ceilings.references, options, say, options.profile ? profileDir : undefined);
      // Node-RED writes its profiles as it exits, which endToEnd waited for.
      if (options.profile) result.endToEnd.profile = summariseProfiles(profileDir);
    } finally {
      await broker.stop();
    }
  }
  if (options.stages.has(4)) {
    if (!mosquitto) result.skipped.push("stage 4: shared subscriptions need Mosquitto (apt-get install mosquitto)");
    else {
      say("stage 4: one, then two Node-RED instances on flows/mnist-infer-shared.json");
      const broker = await startMosquitto();
      try {
        result.scaling = await scaling(broker, ceilings.references, options, say);
      } finally {
        await broker.stop();
      }
    }
  }

  result.seconds = (Date.now() - started) / 1000;
  const file = path.join(REPO_ROOT, "bench-results", `bench-${result.startedAt.replace(/[:.]/g, "-")}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log("");
  printReport(result, BATCH_SIZES);
  console.log(`\nAll measurements: ${path.relative(process.cwd(), file)}  (${result.seconds.toFixed(0)} s)`);
}

const TOPICS = { requestTopic: "mnist", resultTopic: "result", errorTopic: "result/error" };

async function endToEnd(broker: Broker, references: Reference[], options: BenchOptions, say: (line: string) => void, profileDir?: string): Promise<EndToEnd> {
  const flow = options.flow;
  const nodeArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const nodeRed = await startNodeRed(flow, broker.url, nodeArgs);
  const generator = await LoadGenerator.start({ url: broker.url, ...TOPICS, references });
  try {
    // Warm up (JIT, the worker, the sockets), then lone requests on an idle pipeline.
    await generator.run({ name: "warmup", mode: { kind: "window", window: options.window }, warmupMs: 0, durationMs: 2000, drainMs: 5000 });
    const idleEditor = new EditorWatcher(nodeRed.editor);
    const lone = await generator.run({ name: "lone", mode: { kind: "lone", count: options.quick ? 30 : 100, gapMs: 10 }, warmupMs: 0, durationMs: 0, drainMs: 2000 });
    const idleProbes = await idleEditor.stop();
    say(`  lone requests: p50 ${lone.latency.p50.toFixed(2)} ms`);

    const mode: LoadMode = { kind: "window", window: options.window };
    const rss = new Sampler(() => rssOf(nodeRed.pid), 250);
    const editor = new EditorWatcher(nodeRed.editor);
    const before = { at: Date.now(), nodeRed: cpuSecondsOf(nodeRed.pid), broker: brokerCpu(broker), bench: process.cpuUsage(), machine: cpuTimes() };
    // A long warm-up at full load: Node-RED's memory grows for its first half minute or so
    // (V8 sizing its heap, the first major collections), which is not what "flat" asks about.
    const full = await generator.run({ name: "full", mode, warmupMs: options.quick ? 3000 : 30_000, durationMs: options.seconds * 1000, drainMs: 5000 });
    const seconds = (Date.now() - before.at) / 1000;
    const bench = process.cpuUsage(before.bench);
    const cores = {
      nodeRed: (cpuSecondsOf(nodeRed.pid) - before.nodeRed) / seconds,
      broker: (brokerCpu(broker) - before.broker) / seconds,
      generator: full.generatorCores,
      others: 0,
    };
    // Everything busy on the machine, less what this benchmark's processes used.
    const machineCores = busyBetween(before.machine, cpuTimes()) * (os.availableParallelism?.() ?? os.cpus().length);
    cores.others = Math.max(0, machineCores - cores.nodeRed - cores.broker - cores.generator - (bench.user + bench.system) / 1e6 / seconds);
    const probes = (await editor.stop()).filter((p) => p.at >= full.measuredFrom && p.at <= full.measuredTo);
    rss.stop();
    const hwm = highWaterMark(nodeRed.pid);
    say(`  full load: ${Math.round(full.throughput)} results/s, p99 ${full.latency.p99.toFixed(1)} ms`);

    const paced = await generator.run({ name: "paced", mode: { kind: "rate", rate: 200 }, warmupMs: 1000, durationMs: options.quick ? 3000 : 8000, drainMs: 2000 });
    say(`  200 requests/s: p50 ${paced.latency.p50.toFixed(2)} ms`);

    return {
      broker: broker.kind,
      flow,
      window: options.window,
      lone,
      full,
      paced,
      rss: rssReport(rss, full, hwm),
      editor: {
        idle: distribution(idleProbes.map((p) => p.ms)),
        load: distribution(probes.map((p) => p.ms)),
        failures: probes.filter((p) => p.status !== 200).length,
      },
      cores,
    };
  } finally {
    await generator.stop();
    await nodeRed.stop();
  }
}

async function scaling(broker: Broker, references: Reference[], options: BenchOptions, say: (line: string) => void): Promise<Scaling> {
  const flow = "flows/mnist-infer-shared.json";
  const instances: NodeRedInstance[] = [];
  const generator = await LoadGenerator.start({ url: broker.url, ...TOPICS, references });
  const durationMs = (options.quick ? 4 : 8) * 1000;
  const mode: LoadMode = { kind: "window", window: options.window };
  try {
    instances.push(await startNodeRed(flow, broker.url));
    const one = await generator.run({ name: "shared1", mode, warmupMs: 2000, durationMs, drainMs: 5000 });
    say(`  one instance: ${Math.round(one.throughput)} results/s`);
    instances.push(await startNodeRed(flow, broker.url));
    const before = instances.map((i) => cpuSecondsOf(i.pid));
    const at = Date.now();
    const two = await generator.run({ name: "shared2", mode, warmupMs: 2000, durationMs, drainMs: 5000 });
    const seconds = (Date.now() - at) / 1000;
    say(`  two instances: ${Math.round(two.throughput)} results/s`);
    return { flow, one, two, coresPerInstance: instances.map((i, k) => (cpuSecondsOf(i.pid) - before[k]) / seconds) };
  } finally {
    await generator.stop();
    await Promise.all(instances.map((i) => i.stop()));
  }
}

function rssReport(rss: Sampler<number>, run: RunReport, hwmBytes: number | undefined): RssReport {
  const measured = rss.samples.filter((s) => s.at >= run.measuredFrom && s.at <= run.measuredTo);
  const fifth = Math.max(1, Math.floor(measured.length / 5));
  const window = (samples: typeof measured) => {
    const values = samples.map((s) => s.value);
    return { mean: values.reduce((a, b) => a + b, 0) / values.length, low: Math.min(...values), high: Math.max(...values) };
  };
  const first = window(measured.slice(0, fifth));
  const last = window(measured.slice(-fifth));
  const start = rss.samples[0]?.at ?? 0;
  const series: Array<[number, number]> = rss.samples
    .filter((_, i) => i % 4 === 0)
    .map((s) => [Math.round((s.at - start) / 100) / 10, Math.round(s.value / 2 ** 20)]);
  return { peakBytes: Math.max(...rss.samples.map((s) => s.value)), hwmBytes, first, last, change: last.mean / first.mean - 1, series };
}

function brokerCpu(broker: Broker): number {
  const pid = (broker as { pid?: number }).pid;
  return pid ? cpuSecondsOf(pid) : process.cpuUsage().user / 1e6; // aedes runs in this process
}

function highWaterMark(pid: number): number | undefined {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

if (require.main === module) {
  // Ctrl-C: exit through process.exit so broker.ts's exit hook stops Mosquitto;
  // the Node-RED children get the same Ctrl-C from the terminal.
  process.once("SIGINT", () => process.exit(130));
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}
