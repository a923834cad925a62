// Stages 3 to 5 of `npm run bench`: the whole chain through a broker, in
// separate processes, as users run it. All traffic stays on 127.0.0.1.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { BackendSetting } from "../../nodes/mnist-infer/inference/backends";
import { REPO_ROOT, type Broker } from "../broker";
import type { LoadMode, RunReport } from "./load-types";
import { busyBetween, cpuTimes } from "./machine";
import { cpuSecondsOf, EditorWatcher, LoadGenerator, rssOf, Sampler, startNodeRed, threadCores, threadCpuSecondsOf, waitingSecondsOf, type NodeRedInstance } from "./processes";
import { redeployInferNodes } from "./redeploy";
import type { BenchOptions, EndToEnd, FirstRequests, RssReport, Scaling } from "./result";
import type { Reference } from "./samples";
import { distribution } from "./stats";

/** The topics of the shipped flows: requests, results, error replies. */
export const TOPICS = { requestTopic: "mnist", resultTopic: "result", errorTopic: "result/error" };
/** A stretch of time on the CPU profiles' clock (µs). */
type UsWindow = { fromUs: number; toUs: number };
/** Images per batch request, and batch requests in flight: 16 × 32 = 512 images, under the node's queue of 1,000. */
export const BATCH = { images: 32, window: 16 };

/**
 * Stage 3 (and 5): a load generator → the broker → Node-RED running `flow` →
 * the broker → the generator. `backend` runs the flow's mnist-infer nodes on
 * that backend (a copy of the flow with the setting changed). With `profileDir`,
 * also `fullLoadUs` and `batchUs`: when the sustained full-load run and the batch run
 * were measured, on the profiles' clock.
 */
export async function endToEnd(
  broker: Broker,
  references: Reference[],
  options: BenchOptions,
  say: (line: string) => void,
  {
    profileDir,
    backend,
    warmupMs = options.quick ? 10_000 : 30_000,
    measuredSeconds = options.seconds,
  }: { profileDir?: string; backend?: BackendSetting; warmupMs?: number; measuredSeconds?: number } = {},
): Promise<EndToEnd & { fullLoadUs?: UsWindow; batchUs?: UsWindow }> {
  const flow = backend ? flowOnBackend(options.flow, backend) : options.flow;
  const nodeArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const nodeRed = await startNodeRed(flow, broker.url, nodeArgs);
  const generator = await LoadGenerator.start({ url: broker.url, ...TOPICS, references });
  try {
    // The first requests after Node-RED started and deployed the flow.
    const firstAfterDeploy = await firstHundred(generator, "first");
    say(`  after the deploy: ${firstHundredText(firstAfterDeploy)}`);
    // Warm up (JIT, the worker, the sockets), then lone requests on an idle pipeline.
    await generator.run({ name: "warmup", mode: { kind: "window", window: options.window }, warmupMs: 0, durationMs: 2000, drainMs: 5000 });
    const idleEditor = new EditorWatcher(nodeRed.editor);
    const lone = await generator.run({ name: "lone", mode: { kind: "lone", count: options.quick ? 30 : 100, gapMs: 10 }, warmupMs: 0, durationMs: 0, drainMs: 2000 });
    const idleProbes = await idleEditor.stop();
    say(`  lone requests: p50 ${lone.latency.p50.toFixed(2)} ms`);

    const mode: LoadMode = { kind: "window", window: options.window };
    const rss = new Sampler(() => rssOf(nodeRed.pid), 250);
    const editor = new EditorWatcher(nodeRed.editor);
    const before = { at: Date.now(), nodeRed: cpuSecondsOf(nodeRed.pid), threads: threadCpuSecondsOf(nodeRed.pid), waiting: waitingSecondsOf(nodeRed.pid), broker: brokerCpu(broker), bench: process.cpuUsage(), machine: cpuTimes() };
    // A long warm-up at full load: Node-RED's memory grows for its first half minute or so
    // (V8 sizing its heap, the first major collections), which is not what "flat" asks about.
    const full = await generator.run({ name: "full", mode, warmupMs, durationMs: measuredSeconds * 1000, drainMs: 5000 });
    const seconds = (Date.now() - before.at) / 1000;
    const fullThreads = threadCores(nodeRed.pid, before.threads, threadCpuSecondsOf(nodeRed.pid), seconds);
    const mainThreadWaiting = (waitingSecondsOf(nodeRed.pid) - before.waiting) / seconds;
    // The generator marks the measured part with Date.now(); moved onto process.hrtime()'s
    // monotonic clock, which `node --cpu-prof` profiles use in every process (to about 1 ms).
    const offsetUs = Number(process.hrtime.bigint() / 1000n) - Date.now() * 1000;
    const onProfileClock = (run: RunReport): UsWindow => ({ fromUs: run.measuredFrom * 1000 + offsetUs, toUs: run.measuredTo * 1000 + offsetUs });
    const fullLoadUs = onProfileClock(full);
    const bench = process.cpuUsage(before.bench);
    const cores = {
      nodeRed: (cpuSecondsOf(nodeRed.pid) - before.nodeRed) / seconds,
      broker: (brokerCpu(broker) - before.broker) / seconds,
      generator: full.generatorCores,
      others: 0,
    };
    // Everything busy on the machine, less what this benchmark's processes used.
    // All the machine's CPUs, not only those this run may use (taskset --cores).
    const machineCores = busyBetween(before.machine, cpuTimes()) * os.cpus().length;
    cores.others = Math.max(0, machineCores - cores.nodeRed - cores.broker - cores.generator - (bench.user + bench.system) / 1e6 / seconds);
    const probes = (await editor.stop()).filter((p) => p.at >= full.measuredFrom && p.at <= full.measuredTo);
    rss.stop();
    const hwm = highWaterMark(nodeRed.pid);
    say(`  full load: ${Math.round(full.throughput)} results/s, p99 ${full.latency.p99.toFixed(1)} ms`);

    const paced = await generator.run({ name: "paced", mode: { kind: "rate", rate: 200 }, warmupMs: 1000, durationMs: options.quick ? 3000 : 8000, drainMs: 2000 });
    say(`  200 requests/s: p50 ${paced.latency.p50.toFixed(2)} ms`);

    // Batch requests of 32 images, closed loop: images/s, every item checked in its slot.
    const batchBefore = { at: Date.now(), nodeRed: cpuSecondsOf(nodeRed.pid), threads: threadCpuSecondsOf(nodeRed.pid), broker: brokerCpu(broker) };
    const batchRun = await generator.run({
      name: "batch",
      mode: { kind: "window", window: BATCH.window, batch: BATCH.images },
      warmupMs: options.quick ? 2000 : 5000,
      durationMs: options.quick ? 5000 : 15_000,
      drainMs: 5000,
    });
    const batchSeconds = (Date.now() - batchBefore.at) / 1000;
    const batch = {
      run: batchRun,
      cores: { nodeRed: (cpuSecondsOf(nodeRed.pid) - batchBefore.nodeRed) / batchSeconds, broker: (brokerCpu(broker) - batchBefore.broker) / batchSeconds },
      threads: threadCores(nodeRed.pid, batchBefore.threads, threadCpuSecondsOf(nodeRed.pid), batchSeconds),
    };
    say(`  batches of ${BATCH.images}: ${Math.round(batchRun.throughput)} images/s`);

    // A redeploy of mnist-infer alone, as after a change to one of its settings. Node-RED's own
    // code is warm by now (unlike after the start above), so this shows what the node's own
    // warm-up leaves for the first request. A flow that cannot be redeployed so (no mnist-infer
    // node, a model that fails to load) loses this row, not the stage.
    const firstAfterRedeploy = await redeployInferNodes(nodeRed).then(
      () => firstHundred(generator, "redeploy"),
      (err: Error) => void say(`  no redeploy measured: ${err.message.split("\n")[0]}`),
    );
    if (firstAfterRedeploy) say(`  after a redeploy of mnist-infer: ${firstHundredText(firstAfterRedeploy)}`);

    return {
      broker: broker.kind,
      flow: options.flow,
      backend: backend ?? "auto",
      window: options.window,
      firstAfterDeploy,
      ...(firstAfterRedeploy ? { firstAfterRedeploy } : {}),
      lone,
      batch,
      full,
      paced,
      rss: rssReport(rss, full, hwm),
      editor: {
        idle: distribution(idleProbes.map((p) => p.ms)),
        load: distribution(probes.map((p) => p.ms)),
        failures: probes.filter((p) => p.status !== 200).length,
      },
      cores,
      threads: fullThreads,
      ...(Number.isFinite(mainThreadWaiting) ? { mainThreadWaiting } : {}),
      ...(profileDir ? { fullLoadUs, batchUs: onProfileClock(batchRun) } : {}),
    };
  } finally {
    await generator.stop();
    await nodeRed.stop();
    if (backend) fs.rmSync(path.dirname(flow), { recursive: true, force: true });
  }
}

/** 100 lone requests, one at a time: is the first answered as fast as the hundredth? */
export async function firstHundred(generator: LoadGenerator, name: string): Promise<FirstRequests> {
  const run = await generator.run({ name, mode: { kind: "lone", count: 100, gapMs: 10 }, warmupMs: 0, durationMs: 0, drainMs: 2000 });
  return { first: run.sequence?.[0] ?? NaN, hundredth: run.sequence?.[99] ?? NaN, median: run.latency.p50, run };
}

export function firstHundredText({ first, hundredth, median }: FirstRequests): string {
  return `first request ${first.toFixed(2)} ms, hundredth ${hundredth.toFixed(2)} ms (median of the 100: ${median.toFixed(2)} ms)`;
}

/** A copy of `flow` (in a temporary folder) whose mnist-infer nodes use `backend`. */
function flowOnBackend(flow: string, backend: BackendSetting): string {
  const nodes = JSON.parse(fs.readFileSync(path.resolve(REPO_ROOT, flow), "utf8")) as Array<Record<string, unknown>>;
  for (const node of nodes) if (node.type === "mnist-infer") node.backend = backend;
  const copy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "mnist-bench-flow-")), path.basename(flow));
  fs.writeFileSync(copy, JSON.stringify(nodes));
  return copy;
}

/** Stage 4: one, then two Node-RED instances sharing one subscription. */
export async function scaling(broker: Broker, references: Reference[], options: BenchOptions, say: (line: string) => void): Promise<Scaling> {
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

/** CPU seconds the broker has used so far. */
export function brokerCpu(broker: Broker): number {
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

