// The end-to-end load generator, run as its own process (forked by the
// benchmark) so its work is not billed to Node-RED. It publishes labelled PNG
// requests in JSON envelopes to the request topic, matches every result and
// error reply to its request by id, and checks each result against what the
// model answers for that image when idle, so a result carrying the wrong id
// (a misattribution) is caught, not only a lost or doubled one.
import { performance } from "node:perf_hooks";
import { connectAsync, type MqttClient } from "mqtt";
import { envelope, loadSamples, type Reference, type Sample } from "./samples";
import { distribution, type Distribution } from "./stats";

/**
 * How requests are sent:
 * - window: closed loop, `window` requests in flight; each answer releases the next.
 * - rate: open loop, `rate` requests per second on a clock, whatever the answers do.
 * - lone: one request at a time with a pause between, so the pipeline is idle for each.
 */
export type LoadMode = { kind: "window"; window: number } | { kind: "rate"; rate: number } | { kind: "lone"; count: number; gapMs: number };

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

export interface RunReport {
  name: string;
  mode: LoadMode;
  /** Wall-clock (Date.now) bounds of the measured part, to line up RSS and editor samples. */
  measuredFrom: number;
  measuredTo: number;
  sent: number;
  /** Results (not error replies) per second during the measured part. */
  throughput: number;
  /** publish → result, ms, for results received during the measured part. */
  latency: Distribution;
  results: number;
  errorReplies: Record<string, number>;
  /** Requests never answered by the end of the drain. */
  lost: number;
  /** Answers beyond the first for one request. */
  duplicated: number;
  /** Results whose id names another request than the one they answer, or no request of this run. */
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

const REQUEST_STATE = { unsent: 0, pending: 1, answered: 2 } as const;

class Generator {
  private client!: MqttClient;
  private setup!: SetupCommand;
  private readonly samples: Sample[] = loadSamples();
  private run?: ActiveRun;
  private runCount = 0;

  async connect(setup: SetupCommand): Promise<void> {
    this.setup = setup;
    this.client = await connectAsync(setup.url, {
      clientId: `mnist-bench-generator-${process.pid}`,
      clean: true,
      reconnectPeriod: 0,
      protocolVersion: 4,
    });
    this.client.on("error", (err) => console.error(`load generator: ${err.message}`));
    this.client.on("message", (topic, payload) => this.run?.onAnswer(topic, payload));
    await this.client.subscribeAsync([setup.resultTopic, setup.errorTopic], { qos: 0 });
  }

  async execute(command: RunCommand): Promise<RunReport> {
    const tag = `${command.name}.${++this.runCount}`;
    const run = new ActiveRun(tag, command, this.samples, this.setup, (payload) => {
      this.client.publish(this.setup.requestTopic, payload, { qos: 0 });
    });
    this.run = run;
    return run.execute();
  }

  async close(): Promise<void> {
    await this.client?.endAsync();
  }
}

class ActiveRun {
  private states = new Uint8Array(1 << 16);
  private sentAt = new Float64Array(1 << 16);
  private sent = 0;
  private outstanding = 0;
  private publishing = true;
  private measuring = false;
  private measuredResults = 0;
  private readonly latencies: number[] = [];
  private readonly report: RunReport;
  private batchSum = 0;
  private onAnswered?: () => void;

  constructor(
    private readonly tag: string,
    private readonly command: RunCommand,
    private readonly samples: Sample[],
    private readonly setup: SetupCommand,
    private readonly publish: (payload: string) => void,
  ) {
    this.report = {
      name: command.name,
      mode: command.mode,
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

  async execute(): Promise<RunReport> {
    const { mode, warmupMs, durationMs, drainMs } = this.command;
    let cpuBefore = process.cpuUsage();
    let measuredStart = performance.now();
    const startMeasuring = () => {
      this.measuring = true;
      this.report.measuredFrom = Date.now();
      measuredStart = performance.now();
      cpuBefore = process.cpuUsage();
    };
    const stopMeasuring = () => {
      this.measuring = false;
      this.report.measuredTo = Date.now();
      const seconds = (performance.now() - measuredStart) / 1000;
      const cpu = process.cpuUsage(cpuBefore);
      this.report.generatorCores = (cpu.user + cpu.system) / 1e6 / seconds;
      this.report.throughput = this.measuredResults / seconds;
    };

    if (mode.kind === "lone") {
      startMeasuring();
      for (let i = 0; i < mode.count; i++) {
        const answered = new Promise<void>((resolve) => (this.onAnswered = resolve));
        this.send();
        await Promise.race([answered, sleep(2000)]);
        await sleep(mode.gapMs);
      }
      stopMeasuring();
    } else if (mode.kind === "window") {
      this.onAnswered = () => {
        if (this.publishing) this.send();
      };
      for (let i = 0; i < mode.window; i++) this.send();
      await sleep(warmupMs);
      startMeasuring();
      await sleep(durationMs);
      stopMeasuring();
    } else {
      const started = performance.now();
      const stopAt = started + warmupMs + durationMs;
      let measuringStarted = false;
      while (performance.now() < stopAt) {
        const now = performance.now();
        if (!measuringStarted && now >= started + warmupMs) {
          measuringStarted = true;
          startMeasuring();
        }
        const due = Math.floor(((now - started) * mode.rate) / 1000);
        while (this.sent < due) this.send();
        await sleep(1);
      }
      stopMeasuring();
    }
    this.publishing = false;

    const drainUntil = performance.now() + drainMs;
    while (this.outstanding > 0 && performance.now() < drainUntil) await sleep(20);
    this.report.sent = this.sent;
    this.report.lost = this.outstanding;
    this.report.latency = distribution(this.latencies);
    this.report.meanBatch = this.report.results > 0 ? this.batchSum / this.report.results : 0;
    return this.report;
  }

  private send(): void {
    const seq = this.sent++;
    if (seq >= this.states.length) this.grow();
    const sample = this.samples[seq % this.samples.length];
    this.states[seq] = REQUEST_STATE.pending;
    this.outstanding++;
    this.sentAt[seq] = performance.now();
    this.publish(envelope(`${this.tag}-${seq}`, sample, Date.now()));
  }

  private grow(): void {
    const states = new Uint8Array(this.states.length * 2);
    states.set(this.states);
    const sentAt = new Float64Array(this.sentAt.length * 2);
    sentAt.set(this.sentAt);
    this.states = states;
    this.sentAt = sentAt;
  }

  onAnswer(topic: string, payload: Buffer): void {
    const now = performance.now();
    let answer: { id?: unknown; digit?: number; confidence?: number; label?: number; error?: { code?: string }; timings?: { batchSize?: number } };
    try {
      answer = JSON.parse(payload.toString("utf8"));
    } catch {
      return this.misattribute(`an answer on ${topic} is not JSON`);
    }
    const id = typeof answer.id === "string" ? answer.id : "";
    const dash = id.lastIndexOf("-");
    const seq = Number(id.slice(dash + 1));
    if (id.slice(0, dash) !== this.tag) {
      if (dash > 0) this.report.late++;
      else this.misattribute(`an answer on ${topic} carries no request id (${String(answer.id).slice(0, 40)})`);
      return;
    }
    if (!Number.isInteger(seq) || seq >= this.sent || this.states[seq] === REQUEST_STATE.unsent) {
      return this.misattribute(`an answer names request ${id}, which was never sent`);
    }
    if (this.states[seq] === REQUEST_STATE.answered) {
      this.report.duplicated++;
      if (this.report.examples.length < 5) this.report.examples.push(`request ${id} was answered twice`);
      return;
    }
    this.states[seq] = REQUEST_STATE.answered;
    this.outstanding--;

    if (topic === this.setup.errorTopic || answer.error) {
      const code = answer.error?.code ?? "unknown";
      this.report.errorReplies[code] = (this.report.errorReplies[code] ?? 0) + 1;
    } else {
      const index = seq % this.samples.length;
      const sample = this.samples[index];
      const reference = this.setup.references[index];
      const sameImage = answer.digit === reference.digit && Math.abs((answer.confidence ?? -1) - reference.confidence) < 1e-3;
      if (answer.label !== sample.label || !sameImage) {
        this.misattribute(
          `request ${id} (${sample.file}, label ${sample.label}, model says ${reference.digit} at ${reference.confidence.toFixed(4)}) ` +
            `got digit ${answer.digit} at ${answer.confidence?.toFixed(4)} with label ${answer.label}`,
        );
      }
      this.report.results++;
      if (answer.digit === sample.label) this.report.correct++;
      this.batchSum += answer.timings?.batchSize ?? 0;
      if (this.measuring) {
        this.measuredResults++;
        this.latencies.push(now - this.sentAt[seq]);
      }
    }
    this.onAnswered?.();
  }

  private misattribute(example: string): void {
    this.report.misattributed++;
    if (this.report.examples.length < 5) this.report.examples.push(example);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Commands arrive over the IPC channel of child_process.fork; each gets one reply. */
function serve(): void {
  const generator = new Generator();
  const reply = (message: unknown) => process.send?.(message);
  process.on("message", (command: GeneratorCommand) => {
    const handle = async () => {
      switch (command.type) {
        case "setup":
          await generator.connect(command);
          return reply({ type: "ready" });
        case "run":
          return reply({ type: "report", report: await generator.execute(command) });
        case "exit":
          await generator.close();
          process.disconnect?.();
          return;
      }
    };
    handle().catch((err: Error) => reply({ type: "failed", message: err.message }));
  });
  // The benchmark went away: nothing left to do.
  process.on("disconnect", () => process.exit(0));
}

if (require.main === module) serve();
