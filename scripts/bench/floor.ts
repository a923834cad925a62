// Stage 6 of `npm run bench` (only when asked for: --stages 3,6): stage 3's
// chain with mnist-infer replaced by a stand-in that answers without decoding or
// classifying (floor-node.ts), and without the Complete node that confirms
// delivery. What the machine spends per result there (Node-RED with its mqtt
// nodes, the broker, the load generator) plus what ONNX Runtime alone spends
// per image bounds what any classifier node can reach on this chain:
//   images/s ≤ cores ÷ (floor CPU per result + inference CPU per image).
// Then once more with the flow's Complete node kept: what confirming each
// delivery costs Node-RED, one image per envelope; that session first sends 100
// lone requests, so the first request after Node-RED's start shows what Node-RED's
// own nodes cost the first time, with no classifier in the way.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT, type Broker } from "../broker";
import { BATCH, brokerCpu, firstHundred, firstHundredText, TOPICS } from "./end-to-end";
import floorNode = require("./floor-node");
import type { LoadMode, RunReport } from "./load-types";
import { cpuSecondsOf, LoadGenerator, startNodeRed, threadCpuSecondsOf, threadCores } from "./processes";
import type { BenchOptions, FirstRequests, Floor, FloorRun } from "./result";
import type { Reference, Sample } from "./samples";

export async function floor(broker: Broker, samples: Sample[], references: Reference[], options: BenchOptions, say: (line: string) => void): Promise<Floor> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-bench-floor-"));
  const answers = path.join(scratch, "answers.json");
  fs.writeFileSync(answers, JSON.stringify(samples.map((s, i) => ({ base64: s.base64, digit: references[i].digit, confidence: references[i].confidence }))));
  const seconds = options.quick ? 5 : 15;
  try {
    const { runs: [single, batch] } = await session(floorFlow(options.flow, scratch, false), broker, answers, references, options, [
      ["floor-single", { kind: "window", window: options.window }, seconds],
      ["floor-batch", { kind: "window", window: BATCH.window, batch: BATCH.images }, seconds],
    ]);
    say(`  floor, one image per envelope: ${summary(single)}`);
    say(`  floor, batches of ${BATCH.images}: ${summary(batch)}`);
    const { runs: [singleConfirmed], firstAfterStart } = await session(
      floorFlow(options.flow, scratch, true),
      broker,
      answers,
      references,
      options,
      [["floor-confirmed", { kind: "window", window: options.window }, seconds]],
      true,
    );
    if (firstAfterStart) say(`  the stand-in after Node-RED's start: ${firstHundredText(firstAfterStart)}`);
    say(`  floor with the Complete node, one image per envelope: ${summary(singleConfirmed)}`);
    return { flow: options.flow, single, batch, singleConfirmed, ...(firstAfterStart ? { firstAfterStart } : {}) };
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** Node-RED on `flow` with the stand-in installed, and the load generator: each run measured in turn (after 100 lone requests, when `firstRequests`). */
async function session(
  flow: string,
  broker: Broker,
  answers: string,
  references: Reference[],
  options: BenchOptions,
  runs: Array<[name: string, mode: LoadMode, seconds: number]>,
  firstRequests = false,
): Promise<{ runs: FloorRun[]; firstAfterStart?: FirstRequests }> {
  const nodeRed = await startNodeRed(flow, broker.url, [], {
    env: { [floorNode.ANSWERS_ENV]: answers },
    prepare: (userDir) => installFloorNode(userDir),
    ready: [/Started flows/, /floor stand-in ready/, /Connected to broker/],
  });
  const generator = await LoadGenerator.start({ url: broker.url, ...TOPICS, references });
  try {
    const firstAfterStart = firstRequests ? await firstHundred(generator, "floor-first") : undefined;
    await generator.run({ name: "floor-warmup", mode: { kind: "window", window: options.window }, warmupMs: 0, durationMs: 3000, drainMs: 5000 });
    const measured: FloorRun[] = [];
    for (const [name, mode, seconds] of runs) {
      const before = { at: Date.now(), nodeRed: cpuSecondsOf(nodeRed.pid), threads: threadCpuSecondsOf(nodeRed.pid), broker: brokerCpu(broker) };
      const run = await generator.run({ name, mode, warmupMs: options.quick ? 3000 : 10_000, durationMs: seconds * 1000, drainMs: 5000 });
      const elapsed = (Date.now() - before.at) / 1000;
      // Cores over the whole run, warm-up included (it runs at the same rate; the drain is idle and adds nothing).
      const cores = { nodeRed: (cpuSecondsOf(nodeRed.pid) - before.nodeRed) / elapsed, broker: (brokerCpu(broker) - before.broker) / elapsed, generator: run.generatorCores };
      const threads = threadCores(nodeRed.pid, before.threads, threadCpuSecondsOf(nodeRed.pid), elapsed);
      measured.push({ run, cores, threads, cpuPerResult: (cores.nodeRed + cores.broker + cores.generator) / run.throughput });
    }
    return { runs: measured, firstAfterStart };
  } finally {
    await generator.stop();
    await nodeRed.stop();
  }
}

/** `flow` with its mnist-infer nodes swapped for the stand-in, and its Complete nodes (delivery confirmation) removed unless `confirmed`. */
function floorFlow(flow: string, folder: string, confirmed: boolean): string {
  const nodes = JSON.parse(fs.readFileSync(path.resolve(REPO_ROOT, flow), "utf8")) as Array<Record<string, unknown>>;
  const kept = nodes.filter((n) => confirmed || n.type !== "complete").map((n) => (n.type === "mnist-infer" ? { id: n.id, type: floorNode.FLOOR_TYPE, z: n.z, x: n.x, y: n.y, wires: n.wires } : n));
  const copy = path.join(folder, `${confirmed ? "confirmed-" : ""}${path.basename(flow)}`);
  fs.writeFileSync(copy, JSON.stringify(kept));
  return copy;
}

/** Node-RED loads a .js/.html pair from <userDir>/nodes; the .js is the compiled floor-node. */
function installFloorNode(userDir: string): void {
  const dir = path.join(userDir, "nodes");
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "floor.js"), `module.exports = require(${JSON.stringify(path.join(__dirname, "floor-node.js"))});\n`);
  fs.writeFileSync(path.join(dir, "floor.html"), `<script type="text/javascript">RED.nodes.registerType("${floorNode.FLOOR_TYPE}", { category: "function", defaults: {}, inputs: 1, outputs: 1, label: "floor" });</script>\n`);
}

/** A run's images/s and CPU per image, and the generator's checks only when one failed (the stand-in must answer every request once, rightly). */
function summary({ run, cpuPerResult }: FloorRun): string {
  const wrong = run.lost + run.duplicated + run.misattributed + Object.values(run.errorReplies).reduce((a, b) => a + b, 0);
  const checks = wrong === 0 ? "" : ` (${run.lost} lost, ${run.duplicated} duplicated, ${run.misattributed} misattributed, ${JSON.stringify(run.errorReplies)} error replies)`;
  return `${Math.round(run.throughput)} images/s, ${(cpuPerResult * 1e6).toFixed(0)} µs of CPU per image${checks}`;
}
