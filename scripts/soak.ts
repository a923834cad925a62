// A bounded soak run: flows/mnist-infer.json in a real Node-RED process (the
// `npm start` launcher) on its own Mosquitto, fed requests at a fixed rate for
// a few minutes, reporting memory and latency over time. Not part of npm test.
//
//   npm run build && node dist/scripts/soak.js [--minutes 3] [--rate 50] [--window 30] [--json file]
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { connect, type MqttClient } from "mqtt";
import { startMosquitto, REPO_ROOT } from "./broker";
import { startNodeRed, rssOf, cpuSecondsOf } from "./bench/processes";
import { loadSamples, envelope } from "./bench/samples";
import { distribution, type Distribution } from "./bench/stats";

interface Options {
  minutes: number;
  rate: number;
  windowSeconds: number;
  flow: string;
  json?: string;
}

/** One reporting window of the run. */
interface Window {
  endsAtS: number;
  sent: number;
  answered: number;
  errors: number;
  latencyMs: Distribution;
  nodeRedRssMb: number;
  nodeRedThreads: number;
  nodeRedCpuPercent: number;
  mosquittoRssMb: number;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { minutes: 3, rate: 50, windowSeconds: 30, flow: "flows/mnist-infer.json" };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case "--minutes": options.minutes = Number(value); i++; break;
      case "--rate": options.rate = Number(value); i++; break;
      case "--window": options.windowSeconds = Number(value); i++; break;
      case "--flow": options.flow = value; i++; break;
      case "--json": options.json = value; i++; break;
      default: throw new Error(`unknown argument ${argv[i]} (--minutes, --rate, --window, --flow, --json)`);
    }
  }
  if (!(options.minutes > 0 && options.minutes <= 60)) throw new Error("--minutes must be between 0 and 60: a soak run is bounded");
  if (!(options.rate > 0 && options.rate <= 5000)) throw new Error("--rate must be between 0 and 5000 requests a second");
  return options;
}

function threadsOf(pid: number): number {
  try {
    return Number(/Threads:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  } catch {
    return NaN;
  }
}

const mb = (bytes: number | undefined) => (bytes === undefined ? NaN : Math.round(bytes / 1048576));

async function soak(options: Options): Promise<void> {
  const samples = loadSamples();
  const broker = await startMosquitto();
  const nodeRed = await startNodeRed(options.flow, broker.url);
  let client: MqttClient | undefined;
  try {
    client = connect(broker.url, { reconnectPeriod: 0, clientId: `soak-${process.pid}` });
    await new Promise<void>((resolve, reject) => {
      client!.once("connect", () => resolve());
      client!.once("error", reject);
    });
    // mqtt.js leaves Nagle's algorithm on: without this each request would wait
    // ~40 ms for a delayed ACK on the way in, which is the client's cost, not the chain's.
    (client.stream as unknown as { setNoDelay?(on: boolean): void }).setNoDelay?.(true);
    await client.subscribeAsync("result/#", { qos: 1 });

    const sentAt = new Map<string, number>();
    let latencies: number[] = [];
    let answered = 0;
    let errors = 0;
    let duplicates = 0;
    client.on("message", (topic, payload) => {
      const reply = JSON.parse(payload.toString()) as { id?: string; error?: unknown };
      const started = reply.id === undefined ? undefined : sentAt.get(reply.id);
      if (started === undefined) {
        duplicates++;
        return;
      }
      sentAt.delete(reply.id!);
      if (topic === "result") {
        answered++;
        latencies.push(performance.now() - started);
      } else {
        errors++;
      }
    });

    const durationMs = options.minutes * 60_000;
    const windows: Window[] = [];
    let sent = 0;
    let windowSent = 0;
    let windowAnswered = 0;
    let windowErrors = 0;
    let cpuBefore = cpuSecondsOf(nodeRed.pid);
    const began = performance.now();
    let windowStart = began;
    console.log(`soak: ${options.flow} at ${options.rate} requests/s for ${options.minutes} min, a line every ${options.windowSeconds} s (Node-RED pid ${nodeRed.pid}, Mosquitto pid ${broker.pid})`);
    console.log("    t  sent  answered  errors  p50 ms  p90 ms  p99 ms  max ms  Node-RED RSS MB  threads  CPU %  Mosquitto RSS MB");

    const closeWindow = (now: number) => {
      const cpuNow = cpuSecondsOf(nodeRed.pid);
      const window: Window = {
        endsAtS: Math.round((now - began) / 1000),
        sent: windowSent,
        answered: answered - windowAnswered,
        errors: errors - windowErrors,
        latencyMs: distribution(latencies),
        nodeRedRssMb: mb(rssOf(nodeRed.pid)),
        nodeRedThreads: threadsOf(nodeRed.pid),
        nodeRedCpuPercent: Math.round(((cpuNow - cpuBefore) / ((now - windowStart) / 1000)) * 100),
        mosquittoRssMb: broker.pid === undefined ? NaN : mb(rssOf(broker.pid)),
      };
      windows.push(window);
      const l = window.latencyMs;
      console.log(
        `${String(window.endsAtS).padStart(5)}  ${String(window.sent).padStart(4)}  ${String(window.answered).padStart(8)}  ${String(window.errors).padStart(6)}  ` +
          `${l.p50.toFixed(1).padStart(6)}  ${l.p90.toFixed(1).padStart(6)}  ${l.p99.toFixed(1).padStart(6)}  ${l.max.toFixed(1).padStart(6)}  ` +
          `${String(window.nodeRedRssMb).padStart(15)}  ${String(window.nodeRedThreads).padStart(7)}  ${String(window.nodeRedCpuPercent).padStart(5)}  ${String(window.mosquittoRssMb).padStart(16)}`,
      );
      latencies = [];
      windowSent = 0;
      windowAnswered = answered;
      windowErrors = errors;
      cpuBefore = cpuNow;
      windowStart = now;
    };

    // A fixed rate: each tick sends what is due by now, so a late timer does not lower the rate.
    while (performance.now() - began < durationMs) {
      const now = performance.now();
      const due = Math.floor(((now - began) / 1000) * options.rate);
      while (sent < due) {
        const id = `soak-${sent}`;
        const sample = samples[sent % samples.length];
        sentAt.set(id, performance.now());
        client.publish("mnist", envelope(id, sample, Date.now()), { qos: 1 });
        sent++;
        windowSent++;
      }
      if (now - windowStart >= options.windowSeconds * 1000) closeWindow(now);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // Let the last answers arrive, then close the last window.
    const drainUntil = performance.now() + 5000;
    while (sentAt.size > 0 && performance.now() < drainUntil) await new Promise((resolve) => setTimeout(resolve, 50));
    closeWindow(performance.now());

    const all = windows.filter((w) => w.answered > 0);
    const rss = all.map((w) => w.nodeRedRssMb);
    const summary = {
      flow: options.flow,
      rate: options.rate,
      minutes: options.minutes,
      sent,
      answered,
      errors,
      unanswered: sentAt.size,
      duplicates,
      nodeRedRssMb: { first: rss[0], max: Math.max(...rss), last: rss[rss.length - 1] },
      p99MsWorstWindow: Math.max(...all.map((w) => w.latencyMs.p99)),
      node: process.version,
      date: new Date().toISOString(),
    };
    console.log(
      `\n${sent} sent, ${answered} answered, ${errors} error replies, ${sentAt.size} unanswered, ${duplicates} duplicates; ` +
        `Node-RED RSS ${summary.nodeRedRssMb.first} → ${summary.nodeRedRssMb.last} MB (max ${summary.nodeRedRssMb.max}); worst window p99 ${summary.p99MsWorstWindow.toFixed(1)} ms`,
    );
    if (options.json) {
      const file = path.resolve(options.json);
      fs.writeFileSync(file, `${JSON.stringify({ summary, windows }, null, 2)}\n`);
      console.log(`written to ${path.relative(REPO_ROOT, file) || file}`);
    }
  } finally {
    client?.end(true);
    await nodeRed.stop();
    await broker.stop();
  }
}

if (require.main === module) {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
  soak(options).then(
    () => process.exit(0),
    (err: Error) => {
      console.error(`soak failed: ${err.message}`);
      process.exit(1);
    },
  );
}
