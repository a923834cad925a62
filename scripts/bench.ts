// `npm run bench`: how fast node-red-contrib-mnist is, from each step alone to
// the whole MQTT chain, on this machine, in about five minutes (--quick: two).
// Prints a table with the targets beside the measurements, and every figure as
// a share of ONNX Runtime's own limit on this machine, measured in the same run
// (issue #16); writes everything measured to bench-results/bench-<time>.json.
// All traffic stays on 127.0.0.1.
//
//   1. ceilings: each step of the inference path alone, in this process
//   2. the mnist-infer node alone in an embedded Node-RED runtime (no MQTT)
//   3. end to end: a load-generator process → Mosquitto → Node-RED running
//      flows/mnist-infer.json (started like `npm start`) → Mosquitto → generator
//   4. scaling: one, then two Node-RED instances on flows/mnist-infer-shared.json
//   5. stage 3 again with mnist-infer on the WebAssembly backend (onnxruntime-web)
//   6. (only when asked for) the floor: stage 3's chain with a stand-in that
//      answers without classifying, to bound what any classifier node can reach
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DEFAULT_MAX_BATCH } from "../nodes/mnist-infer/inference/service-options";
import { findMosquitto, REPO_ROOT, startAedes, startMosquitto } from "./broker";
import { BATCH_SIZES, measureCeilings } from "./bench/ceilings";
import { BATCH, endToEnd, scaling } from "./bench/end-to-end";
import { writeFlameGraphs } from "./bench/flame-graph";
import { floor } from "./bench/floor";
import { measureLimits } from "./bench/limits";
import { describeMachine } from "./bench/machine";
import { runNodeAlone } from "./bench/node-alone";
import { summariseProfiles } from "./bench/profile";
import { printReport } from "./bench/report";
import type { BenchOptions, BenchResult } from "./bench/result";
import { loadSamples } from "./bench/samples";

const USAGE = `Usage: npm run bench [-- options]

  --quick            shorter runs (about two minutes): every share, but not for the record
  --cores <n>        run pinned to the first n cores (taskset -c 0..n-1), Node-RED and Mosquitto
                     included, as on a small board: --cores 1
  --seconds <n>      measured length of the sustained full-load run, after 30 s of warm-up
                     (default 60: its first and last 20% each span about a garbage-collection cycle)
  --window <n>       requests in flight in the closed-loop runs (default 300)
  --stages <list>    which stages to run, e.g. 1,3 (default 1,2,3,4,5; 6, the floor, only when listed)
  --flow <file>      the flow stage 3 runs (default flows/mnist-infer.json); any flow that
                     answers requests on "mnist" with results on "result" and "result/error"
  --profile          run the end-to-end Node-RED with --cpu-prof and say where its time went
                     (slows it down; profiles kept in bench-results/profiles/)
  --help             this text`;

export function parseArgs(argv: string[]): BenchOptions | undefined {
  const options: BenchOptions = { quick: false, seconds: 60, window: 300, stages: new Set([1, 2, 3, 4, 5]), profile: false, flow: "flows/mnist-infer.json" };
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
    else if (arg === "--cores") {
      options.cores = positive(value());
      if (options.cores > os.cpus().length) throw new Error(`--cores ${options.cores}: this machine has ${os.cpus().length}`);
    }
    else if (arg === "--stages") {
      const stages = value().split(",").map((s) => Number(s.trim()));
      if (stages.some((s) => ![1, 2, 3, 4, 5, 6].includes(s))) throw new Error(`--stages takes numbers 1 to 6, e.g. 1,3`);
      options.stages = new Set(stages);
    } else throw new Error(`unknown option ${arg}\n\n${USAGE}`);
  }
  if (options.quick && !secondsGiven) options.seconds = 10;
  if (options.window >= 1000) throw new Error("--window must stay under mnist-infer's queue of 1,000 requests, or the excess gets queue-full replies");
  return options;
}

/** Set in the re-executed benchmark: it already runs pinned. */
const PINNED = "MNIST_BENCH_PINNED";

/**
 * --cores n: runs this benchmark again under `taskset -c 0..n-1`. The CPU
 * affinity passes to every child (Node-RED, Mosquitto, the load generator, the
 * worker threads), and os.availableParallelism() reports n in all of them, so
 * the WebAssembly backend gets n threads as it would on such a machine.
 */
function pinnedRerun(cores: number, argv: string[]): number {
  const list = cores === 1 ? "0" : `0-${cores - 1}`;
  console.log(`Re-running pinned to ${cores} core${cores === 1 ? "" : "s"}: taskset -c ${list}`);
  const run = spawnSync("taskset", ["-c", list, process.execPath, __filename, ...argv], { stdio: "inherit", env: { ...process.env, [PINNED]: String(cores) } });
  if (run.error) throw new Error(`--cores needs taskset (util-linux): ${run.error.message}`);
  return run.status ?? 1;
}

async function main(argv: string[]): Promise<void> {
  const options = parseArgs(argv);
  if (!options) return console.log(USAGE);
  if (options.cores && process.env[PINNED] !== String(options.cores)) process.exit(pinnedRerun(options.cores, argv));
  const started = Date.now();
  const say = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}`);
  const machine = await describeMachine();
  const result: BenchResult = {
    startedAt: new Date(started).toISOString(),
    seconds: 0,
    options: { quick: options.quick, seconds: options.seconds, window: options.window, stages: [...options.stages].sort(), flow: options.flow, cores: options.cores },
    machine,
    skipped: [],
  };
  if (options.cores) say(`pinned to ${options.cores} of the machine's ${os.cpus().length} cores (taskset)`);
  say(`${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, Node-RED ${machine.nodeRed}, Mosquitto ${machine.mosquitto}`);
  if (machine.busyBefore > 0.2) {
    say(`note: ${(machine.busyBefore * 100).toFixed(0)}% of the CPUs were busy with other work before the run; expect lower numbers`);
  }

  const samples = loadSamples();
  const stepMs = options.quick ? 300 : 700;
  say("limits: onnxruntime-node (batch 64, default threads) and onnxruntime-web (batch 32 and 64) alone");
  result.limits = await measureLimits(samples, { ms: stepMs, repeats: 3, pinnedCores: options.cores });
  say(options.stages.has(1) ? "stage 1: ceilings of each step, in this process" : "what the model answers for each sample, to check results against");
  // The references (what the model answers for each sample) are needed by stages 3 and 4 too.
  const ceilings = await measureCeilings(samples, { ms: options.stages.has(1) ? stepMs : 50, repeats: options.stages.has(1) ? 3 : 1 });
  if (options.stages.has(1)) {
    const { references: _references, ...rest } = ceilings;
    result.ceilings = rest;
  }

  if (options.stages.has(2)) {
    say("stage 2: mnist-infer alone in an embedded Node-RED runtime");
    result.nodeAlone = await runNodeAlone({ maxBatch: DEFAULT_MAX_BATCH, window: 512, warmupMs: 2000, durationMs: options.quick ? 3000 : 8000 });
  }

  // The limit again between the stages, so a slow moment at the start or the end does not set it (the highest counts).
  const limitsBetween = async () => {
    say("limits again, between stages");
    (result.limits!.between ??= []).push(await measureLimits(samples, { ms: stepMs, repeats: 3, pinnedCores: options.cores }));
  };
  if (options.stages.has(2)) await limitsBetween();

  const needsBroker = [3, 4, 5, 6].some((stage) => options.stages.has(stage));
  const mosquitto = needsBroker && findMosquitto();
  if (needsBroker && !mosquitto) {
    say("Mosquitto is not installed (apt-get install mosquitto): stage 3 runs on the embedded aedes broker, stage 4 is skipped");
  }
  const profileDir = path.join(REPO_ROOT, "bench-results", "profiles", result.startedAt.replace(/[:.]/g, "-"));
  if (options.stages.has(3)) {
    say(`stage 3: end to end through ${mosquitto ? "Mosquitto" : "aedes"} and Node-RED on ${options.flow}`);
    const broker = mosquitto ? await startMosquitto() : await startAedes();
    try {
      const { fullLoadUs, batchUs, ...run } = await endToEnd(broker, ceilings.references, options, say, { profileDir: options.profile ? profileDir : undefined });
      result.endToEnd = run;
      // Node-RED writes its profiles as it exits, which endToEnd waited for.
      if (options.profile) {
        result.endToEnd.profile = summariseProfiles(profileDir);
        for (const svg of writeFlameGraphs(profileDir, `Node-RED end to end on ${options.flow} (bench stage 3, --profile)`)) say(`flame graph: ${path.relative(process.cwd(), svg)}`);
        // The same profiles over the measured part of the sustained run and of the batch run alone (issue #16).
        const runs = [
          { label: "one image per envelope", window: fullLoadUs, suffix: ".single-image" },
          { label: `batches of ${BATCH.images}`, window: batchUs, suffix: ".batch" },
        ];
        for (const { label, window, suffix } of runs) {
          const title = (thread: number) => `${label}, sustained load: ${thread === 0 ? "Node-RED main thread" : `inference worker ${thread}`}`;
          for (const svg of writeFlameGraphs(profileDir, title, { window, suffix })) say(`flame graph: ${path.relative(process.cwd(), svg)}`);
        }
      }
    } finally {
      await broker.stop();
    }
  }
  if (options.stages.has(3)) await limitsBetween();
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

  if (options.stages.has(5)) {
    say(`stage 5: end to end as stage 3, with mnist-infer on the WebAssembly backend`);
    const broker = mosquitto ? await startMosquitto() : await startAedes();
    try {
      // The same warm-up as stage 3's (at WebAssembly's lower rate the heap takes as long to
      // settle) and two thirds of its measured time, so the whole run stays under six minutes.
      const seconds = Math.max(options.quick ? 8 : 10, Math.round((options.seconds * 2) / 3));
      result.wasmEndToEnd = await endToEnd(broker, ceilings.references, options, say, { backend: "wasm", measuredSeconds: seconds });
    } finally {
      await broker.stop();
    }
  }

  if (options.stages.has(6)) {
    say("stage 6: the floor, stage 3's chain with a stand-in that answers without classifying");
    const broker = mosquitto ? await startMosquitto() : await startAedes();
    try {
      result.floor = await floor(broker, samples, ceilings.references, options, say);
    } finally {
      await broker.stop();
    }
  }

  say("limits again, at the end of the run");
  result.limits.again = await measureLimits(samples, { ms: stepMs, repeats: 3, pinnedCores: options.cores });
  result.seconds = (Date.now() - started) / 1000;
  const file = path.join(REPO_ROOT, "bench-results", `bench-${result.startedAt.replace(/[:.]/g, "-")}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log("");
  printReport(result, BATCH_SIZES);
  console.log(`\nAll measurements: ${path.relative(process.cwd(), file)}  (${result.seconds.toFixed(0)} s)`);
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
