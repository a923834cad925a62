// The benchmark's table: each measurement beside its target from issue #4,
// with ✔ / ✘ where there is one. docs/performance.md explains every row.
import type { ThreadCores } from "./processes";
import type { BenchResult, EndToEnd } from "./result";
import { format, mb, mbRange, micros, ms, pct, rate, signed, type Row } from "./format";
import type { RunReport } from "./load-types";
import { firstRequestRows, shareRows } from "./shares";

const ORIGINAL_LOW = 400;
const ORIGINAL_HIGH = 600;


export function printReport(result: BenchResult, batchSizes: number[]): void {
  const rows: Array<Row | string> = [];
  const { machine } = result;
  rows.push(
    `Machine: ${machine.cpus} CPUs, ${machine.cpuModel}, ${machine.memoryGiB.toFixed(0)} GiB; Node ${machine.node}; ` +
      `Node-RED ${machine.nodeRed}; onnxruntime-node ${machine.onnxruntime}; Mosquitto ${machine.mosquitto}; ` +
      `other load before the run ${(machine.busyBefore * 100).toFixed(0)}% of the CPUs (load average ${machine.loadAverage.map((l) => l.toFixed(1)).join(" ")})`,
  );
  if (result.options.cores) {
    rows.push(`Pinned to ${result.options.cores} core${result.options.cores === 1 ? "" : "s"} (taskset -c ${cpuList(result.options.cores)}): the benchmark, Node-RED and Mosquitto all ran on ${result.options.cores === 1 ? "it" : "them"}, as on a small board`);
  }

  const c = result.ceilings;
  if (c) {
    rows.push("1. Ceilings: each step alone, one thread (images/s)");
    rows.push(["request parsing (JSON envelope → PNG bytes)", rate(c.parse)]);
    rows.push(["PNG decode, pure JS (the worker's path)", rate(c.decode)]);
    rows.push(["PNG decode with sharp, one call at a time", rate(c.decodeSharp)]);
    rows.push(["preprocessing (→ 28×28 model input)", rate(c.preprocess)]);
    for (const batch of batchSizes) rows.push([`onnxruntime inference, batch ${batch}`, rate(c.inference[batch])]);
    rows.push(["worker: decode + preprocess + infer, batch 32", rate(c.worker32)]);
    const threads = `${c.wasm.threads} thread${c.wasm.threads === 1 ? "" : "s"}`;
    for (const batch of batchSizes) rows.push([`WebAssembly inference (${threads}), batch ${batch}`, rate(c.wasm.inference[batch])]);
    rows.push([`WebAssembly worker, batch 32`, rate(c.wasm.worker32)]);
  }

  const n = result.nodeAlone;
  if (n) {
    rows.push("2. mnist-infer alone in Node-RED (embedded runtime, no MQTT)");
    rows.push([`throughput (${n.window} in flight, mean batch ${n.meanBatch.toFixed(1)})`, rate(n.throughput)]);
    if (c) {
      const ratio = n.throughput / c.inference[32];
      rows.push(["  ÷ inference ceiling at batch 32 (one thread)", pct(ratio)]);
      rows.push(["  ÷ worker ceiling at batch 32", pct(n.throughput / c.worker32)]);
    }
    rows.push(["error replies", String(n.errors), "0", n.errors === 0]);
    rows.push(["lone request, input → output, p50 / p99", `${ms(n.lone.p50)} / ${ms(n.lone.p99)}`]);
    rows.push(["CPU per result (main thread + worker)", micros(n.cores / n.throughput)]);
    if (n.threads) rows.push(["  by thread: main / busiest others / rest", byThread(n.threads, n.throughput)]);
  }

  const e = result.endToEnd;
  if (e) {
    rows.push(`3. End to end: generator → ${e.broker === "mosquitto" ? "Mosquitto" : "aedes"} → Node-RED (${e.flow}) → generator, QoS 0 requests`);
    rows.push([`throughput, ${e.window} in flight (closed loop)`, `${rate(e.full.throughput)}`, "≥ 5,000 images/s", e.full.throughput >= 5000]);
    const [low, high] = [e.full.throughput / ORIGINAL_HIGH, e.full.throughput / ORIGINAL_LOW];
    rows.push([`  × the original chain (${ORIGINAL_LOW}–${ORIGINAL_HIGH} images/s)`, `${low.toFixed(0)}–${high.toFixed(0)}×`, "≥ 10×", low >= 10]);
    rows.push(["latency at full load, p50 / p99", `${ms(e.full.latency.p50)} / ${ms(e.full.latency.p99)}`]);
    rows.push(["latency at 200 requests/s, p50 / p99", `${ms(e.paced.latency.p50)} / ${ms(e.paced.latency.p99)}`, "p50 ≤ 5 ms", e.paced.latency.p50 <= 5]);
    rows.push(["latency of lone requests (idle), p50 / p99", `${ms(e.lone.latency.p50)} / ${ms(e.lone.latency.p99)}`]);
    rows.push(...firstAndBatch(e));
    const runs = runsOf(e);
    rows.push(integrity(runs));
    rows.push(["error replies (all runs)", errorText(runs)]);
    rows.push(["accuracy of the results (digit = label)", `${((100 * sum(runs, (r) => r.correct)) / Math.max(1, sum(runs, (r) => r.results))).toFixed(1)}%`]);
    rows.push(["mean batch size at full load", e.full.meanBatch.toFixed(1)]);
    const { rss } = e;
    rows.push([
      "Node-RED RSS, mean of first → last 20%",
      `${mb(rss.first.mean)} → ${mb(rss.last.mean)} (${signed(rss.change)})`,
      "flat, ±10%",
      Math.abs(rss.change) <= 0.1,
    ]);
    rows.push(["  range in first / last 20%; peak", `${mbRange(rss.first)} / ${mbRange(rss.last)}; ${mb(Math.max(rss.peakBytes, rss.hwmBytes ?? 0))}`]);
    rows.push([
      "editor p99 (GET / and /settings), idle / load",
      `${ms(e.editor.idle.p99)} / ${ms(e.editor.load.p99)} (${e.editor.load.count} GETs${e.editor.failures ? `, ${e.editor.failures} failed` : ""})`,
      "≤ 100 ms under load",
      e.editor.load.p99 <= 100 && e.editor.failures === 0,
    ]);
    rows.push([
      "CPU cores: Node-RED / broker / generator / others",
      `${e.cores.nodeRed.toFixed(2)} / ${e.cores.broker.toFixed(2)} / ${e.cores.generator.toFixed(2)} / ${e.cores.others.toFixed(2)}`,
    ]);
    rows.push(["CPU per result: Node-RED / broker", `${micros(e.cores.nodeRed / e.full.throughput)} / ${micros(e.cores.broker / e.full.throughput)}`]);
    if (e.threads) rows.push(["  Node-RED by thread: main / busiest others / rest", byThread(e.threads, e.full.throughput)]);
    if (e.threads && e.mainThreadWaiting !== undefined) {
      // The serial stage of one image per envelope: held up by other threads, or by its own work?
      rows.push(["  Node-RED main thread: running / waiting for a core", `${pct(e.threads.main)} / ${pct(e.mainThreadWaiting)} of the time`]);
    }
  }

  const w = result.wasmEndToEnd;
  if (w) {
    rows.push(`5. End to end as in 3, with mnist-infer on the WebAssembly backend`);
    rows.push([`throughput, ${w.window} in flight (closed loop)`, rate(w.full.throughput), "≥ 1,500 images/s", w.full.throughput >= 1500]);
    if (c) rows.push(["  ÷ WebAssembly inference alone, batch 32", pct(w.full.throughput / c.wasm.inference[32])]);
    rows.push([`  × the original chain (${ORIGINAL_LOW}–${ORIGINAL_HIGH} images/s)`, `${(w.full.throughput / ORIGINAL_HIGH).toFixed(1)}–${(w.full.throughput / ORIGINAL_LOW).toFixed(1)}×`]);
    rows.push(["latency at 200 requests/s, p50 / p99", `${ms(w.paced.latency.p50)} / ${ms(w.paced.latency.p99)}`]);
    rows.push(["latency of lone requests (idle), p50 / p99", `${ms(w.lone.latency.p50)} / ${ms(w.lone.latency.p99)}`]);
    rows.push(...firstAndBatch(w));
    const wasmRuns = runsOf(w);
    rows.push(integrity(wasmRuns));
    rows.push(["error replies (all runs)", errorText(wasmRuns)]);
    rows.push(["Node-RED RSS, mean of first → last 20%", `${mb(w.rss.first.mean)} → ${mb(w.rss.last.mean)} (${signed(w.rss.change)})`, "flat, ±10%", Math.abs(w.rss.change) <= 0.1]);
    rows.push(["CPU per result: Node-RED / broker", `${micros(w.cores.nodeRed / w.full.throughput)} / ${micros(w.cores.broker / w.full.throughput)}`]);
    if (e) rows.push(...sideBySide(e, w));
  }

  const s = result.scaling;
  if (s) {
    rows.push(`4. Scaling: Node-RED instances sharing $share/mnist-infer/mnist (${s.flow})`);
    rows.push(["one instance", rate(s.one.throughput)]);
    rows.push([
      "two instances",
      `${rate(s.two.throughput)} (×${(s.two.throughput / s.one.throughput).toFixed(2)})`,
    ]);
    rows.push(["  CPU cores of each instance", s.coresPerInstance.map((x) => x.toFixed(2)).join(" + ")]);
    rows.push(integrity([s.one, s.two]));
  }
  rows.push(...shareRows(result));
  for (const skipped of result.skipped) rows.push(`skipped: ${skipped}`);

  for (const line of format(rows)) console.log(line);
  if (e?.profile?.length) printProfile(e.profile);
}

/** Every run of an end-to-end stage, for the integrity, error and accuracy rows. */
function runsOf(e: EndToEnd): RunReport[] {
  return [e.firstAfterDeploy.run, e.lone, e.full, e.paced, e.batch.run, ...(e.firstAfterRedeploy ? [e.firstAfterRedeploy.run] : [])];
}

/** The first request after the deploy against the hundredth, and the batch-request run. */
function firstAndBatch(e: EndToEnd): Row[] {
  const b = e.batch.run;
  return [
    ...firstRequestRows(e),
    [`batches of ${b.batch}, ${(b.mode as { window: number }).window} in flight: images/s`, rate(b.throughput)],
    ["  latency of a whole batch reply, p50 / p99", `${ms(b.latency.p50)} / ${ms(b.latency.p99)}`],
    ["  CPU per image: Node-RED / broker", `${micros(e.batch.cores.nodeRed / b.throughput)} / ${micros(e.batch.cores.broker / b.throughput)}`],
    ...(e.batch.threads ? [["  Node-RED by thread: main / busiest others / rest", byThread(e.batch.threads, b.throughput)] as Row] : []),
  ];
}

/** CPU per result by thread (the kernel's counts; a V8 profile overstates threads waiting for a core). */
function byThread(threads: ThreadCores, throughput: number): string {
  const each = (cores: number) => (throughput > 0 ? Math.round((cores / throughput) * 1e6).toString() : "–");
  return `${each(threads.main)} / ${threads.busiest.map(each).join(", ")} / ${each(threads.rest)} µs`;
}

function cpuList(cores: number): string {
  return cores === 1 ? "0" : `0-${cores - 1}`;
}

/** The two backends' end-to-end figures on one line each: images/s, p50 at 200/s, CPU per image. */
function sideBySide(native: EndToEnd, wasm: EndToEnd): Row[] {
  const line = (e: EndToEnd): string =>
    `${rate(e.full.throughput)} (batches ${rate(e.batch.run.throughput)}), p50 ${ms(e.paced.latency.p50)}, ${micros(e.cores.nodeRed / e.full.throughput)} CPU/image`;
  return [
    ["backends side by side: native (stage 3)", line(native)],
    ["                       WebAssembly (stage 5)", line(wasm)],
  ];
}

function integrity(runs: RunReport[]): Row {
  const lost = sum(runs, (r) => r.lost);
  const duplicated = sum(runs, (r) => r.duplicated);
  const misattributed = sum(runs, (r) => r.misattributed);
  const sent = sum(runs, (r) => r.sent);
  return [`lost / duplicated / misattributed, of ${sent.toLocaleString("en-US")}`, `${lost} / ${duplicated} / ${misattributed}`, "0 / 0 / 0", lost + duplicated + misattributed === 0];
}

function errorText(runs: RunReport[]): string {
  const counts: Record<string, number> = {};
  for (const run of runs) for (const [code, count] of Object.entries(run.errorReplies)) counts[code] = (counts[code] ?? 0) + count;
  const entries = Object.entries(counts);
  return entries.length ? entries.map(([code, count]) => `${count} ${code}`).join(", ") : "0";
}

function printProfile(threads: NonNullable<NonNullable<BenchResult["endToEnd"]>["profile"]>): void {
  console.log("\nWhere the end-to-end Node-RED process spent its time (--profile; self time, share of busy time):");
  for (const thread of threads) {
    console.log(`  ${thread.file.split("/").pop()}: ${thread.busySeconds.toFixed(1)} s busy`);
    for (const { owner, share } of thread.owners.slice(0, 8)) console.log(`    ${pct(share).padStart(6)}  ${owner}`);
    console.log("    top functions:");
    for (const { name, share } of thread.functions.slice(0, 8)) console.log(`    ${pct(share).padStart(6)}  ${name}`);
  }
}

const sum = (runs: RunReport[], pick: (r: RunReport) => number) => runs.reduce((total, r) => total + pick(r), 0);
