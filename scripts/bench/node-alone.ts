// Stage 2: the mnist-infer node alone in a Node-RED 4 runtime, run as its own
// process (forked by the benchmark). Node-RED is embedded without HTTP, with
// this repository installed in a temporary user folder as `npm start` does it,
// and a flow of mnist-infer → sink (+ Catch → sink). Requests are handed to the
// node as `mqtt in` would (msg.payload = the JSON envelope as a Buffer), with a
// fixed number in flight; the sink counts what comes out. No MQTT, no broker.
import { fork } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { prepareUserDir } from "../user-folder";
import { envelope, loadSamples } from "./samples";
import { threadCores, threadCpuSecondsOf, type ThreadCores } from "./processes";
import { distribution, type Distribution } from "./stats";

export interface NodeAloneOptions {
  maxBatch: number;
  /** Requests in flight (must stay under the node's queue size, 1,000 by default). */
  window: number;
  warmupMs: number;
  durationMs: number;
}

export interface NodeAloneReport {
  maxBatch: number;
  window: number;
  throughput: number;
  meanBatch: number;
  results: number;
  errors: number;
  /** CPU time of the whole process (main thread + inference worker) per second. */
  cores: number;
  /** The same by thread (Linux only): main (Node-RED and the load), the busiest others (the inference workers), the rest. */
  threads?: ThreadCores;
  /** Input to output of lone requests, one at a time on an idle node, ms: batching must add nothing. */
  lone: Distribution;
}

/** Runs the stage in a child process, so its Node-RED runtime and memory go away with it. */
export function runNodeAlone(options: NodeAloneOptions): Promise<NodeAloneReport> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, [JSON.stringify(options)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let report: NodeAloneReport | undefined;
    child.on("message", (message: { report?: NodeAloneReport; error?: string }) => {
      if (message.error) reject(new Error(`node-alone stage: ${message.error}`));
      report = message.report;
    });
    child.on("exit", (code) => (report ? resolve(report) : reject(new Error(`the node-alone stage exited (${code}) without a report`))));
  });
}

/** The sink: a node type of this benchmark, handing every message it receives to the runner. */
const SINK_JS = `module.exports = function (RED) {
  function BenchSink(config) {
    RED.nodes.createNode(this, config);
    this.on("input", (msg, send, done) => { RED.settings.benchSink(msg); done(); });
  }
  RED.nodes.registerType("bench-sink", BenchSink);
};
`;
const SINK_HTML = `<script type="text/javascript">RED.nodes.registerType("bench-sink", { category: "common", defaults: {}, inputs: 1, outputs: 0 });</script>\n`;

interface NodeRedEmbedded {
  init(settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  nodes: { getNode(id: string): { receive(msg: Record<string, unknown>): void } | null };
}

async function main(options: NodeAloneOptions): Promise<NodeAloneReport> {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-bench-node-"));
  try {
    prepareUserDir(userDir);
    fs.mkdirSync(path.join(userDir, "nodes"));
    fs.writeFileSync(path.join(userDir, "nodes", "bench-sink.js"), SINK_JS);
    fs.writeFileSync(path.join(userDir, "nodes", "bench-sink.html"), SINK_HTML);
    // x and y make them flow nodes; without, Node-RED takes them for config nodes.
    const flow = [
      { id: "bench-tab", type: "tab", label: "bench" },
      { id: "bench-infer", type: "mnist-infer", z: "bench-tab", x: 100, y: 40, maxBatch: options.maxBatch, queueSize: 1000, overflow: "reject-newest", wires: [["bench-sink"]] },
      { id: "bench-catch", type: "catch", z: "bench-tab", x: 100, y: 80, scope: ["bench-infer"], uncaught: false, wires: [["bench-sink"]] },
      { id: "bench-sink", type: "bench-sink", z: "bench-tab", x: 300, y: 60, wires: [] },
    ];
    fs.writeFileSync(path.join(userDir, "flows.json"), JSON.stringify(flow));

    let onMessage: (msg: { payload?: { digit?: number; timings?: { batchSize: number } }; error?: unknown }) => void = () => {};
    const RED = require("node-red") as NodeRedEmbedded;
    RED.init({
      userDir,
      flowFile: "flows.json",
      httpAdminRoot: false,
      httpNodeRoot: false,
      disableEditor: true,
      credentialSecret: false,
      telemetry: { enabled: false, updateNotification: false },
      editorTheme: { projects: { enabled: false } },
      logging: { console: { level: "error", metrics: false, audit: false } },
      benchSink: (msg: Parameters<typeof onMessage>[0]) => onMessage(msg),
    });
    await RED.start();
    // The runtime starts the flows after start() resolves.
    let infer = RED.nodes.getNode("bench-infer");
    for (const deadline = Date.now() + 30_000; !infer && Date.now() < deadline; infer = RED.nodes.getNode("bench-infer")) await sleep(20);
    if (!infer) throw new Error("the mnist-infer node did not start within 30 s");

    const samples = loadSamples();
    let sent = 0;
    const send = () => {
      const sample = samples[sent % samples.length];
      infer.receive({ payload: Buffer.from(envelope(`n-${sent}`, sample, Date.now())) });
      sent++;
    };
    // The first answer says the model has loaded (requests wait in the node's queue until then).
    await new Promise<void>((resolve) => {
      onMessage = () => resolve();
      send();
    });

    // Lone requests first, each sent once the previous one is out and the node is idle.
    const loneMs: number[] = [];
    for (let i = 0; i < 200; i++) {
      const started = performance.now();
      await new Promise<void>((resolve) => {
        onMessage = () => resolve();
        send();
      });
      if (i >= 50) loneMs.push(performance.now() - started); // after the JIT has warmed up
      await sleep(2);
    }

    let results = 0;
    let errors = 0;
    let batchSum = 0;
    let running = true;
    onMessage = (msg) => {
      if (msg.error) errors++;
      else {
        results++;
        batchSum += msg.payload?.timings?.batchSize ?? 0;
      }
      if (running) send();
    };
    for (let i = 0; i < options.window; i++) send();
    await sleep(options.warmupMs);
    const before = { results, errors, batchSum, at: performance.now(), cpu: process.cpuUsage(), threads: threadCpuSecondsOf(process.pid) };
    await sleep(options.durationMs);
    const seconds = (performance.now() - before.at) / 1000;
    const cpu = process.cpuUsage(before.cpu);
    const threads = threadCores(process.pid, before.threads, threadCpuSecondsOf(process.pid), seconds);
    running = false;
    const report: NodeAloneReport = {
      maxBatch: options.maxBatch,
      window: options.window,
      throughput: (results - before.results) / seconds,
      meanBatch: results > before.results ? (batchSum - before.batchSum) / (results - before.results) : 0,
      results: results - before.results,
      errors: errors - before.errors,
      cores: (cpu.user + cpu.system) / 1e6 / seconds,
      ...(threads ? { threads } : {}),
      lone: distribution(loneMs),
    };
    await sleep(200); // let the last window drain before the runtime closes the node
    await RED.stop();
    return report;
  } finally {
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  // Exit once the reply is handed over: the runtime may leave timers behind.
  const reply = (message: unknown) => process.send?.(message, () => process.exit(0));
  main(JSON.parse(process.argv[2]) as NodeAloneOptions).then(
    (report) => reply({ report }),
    (err: Error) => reply({ error: err.stack ?? err.message }),
  );
}
