// The end-to-end load generator, run as its own process (forked by the
// benchmark) so its work is not billed to Node-RED. It publishes labelled PNG
// requests in JSON envelopes to the request topic, matches every result and
// error reply to its request by id, and checks each result against what the
// model answers for that image when idle, so a result carrying the wrong id
// (a misattribution) is caught, not only a lost or doubled one. In batch mode
// it sends {"id","images":[...],"labels":[...]} and checks every item of the
// one reply the same way, in its slot: order, loss, doubles, misattribution.
import { setTimeout as sleep } from "node:timers/promises";
import { performance } from "node:perf_hooks";
import { connectAsync, type MqttClient } from "mqtt";
import { emptyReport, type Answer, type GeneratorCommand, type RunCommand, type RunReport, type SetupCommand } from "./load-types";
import { batchEnvelope, envelope, loadSamples, type Sample } from "./samples";
import { distribution } from "./stats";

export type { GeneratorCommand, LoadMode, RunCommand, RunReport, SetupCommand } from "./load-types";

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
    await this.warm();
    this.client.on("message", (topic, payload) => this.run?.onAnswer(topic, payload));
    await this.client.subscribeAsync([setup.resultTopic, setup.errorTopic], { qos: 0 });
  }

  /** Request-sized messages through the broker and back first, so the first request after a deploy pays only Node-RED's first-time costs. */
  private async warm(count = 50): Promise<void> {
    const topic = `mnist-bench/warm/${process.pid}`;
    await this.client.subscribeAsync(topic, { qos: 0 });
    let onMessage = (_topic: string) => {};
    await new Promise<void>((resolve) => {
      let echoed = 0;
      onMessage = (t) => void (t === topic && ++echoed === count && resolve());
      this.client.on("message", onMessage);
      setTimeout(resolve, 2000).unref();
      for (let i = 0; i < count; i++) this.client.publish(topic, envelope(`warm-${i}`, this.samples[i], Date.now()), { qos: 0 });
    });
    this.client.off("message", onMessage);
    await this.client.unsubscribeAsync(topic);
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
  private answeredAt = new Float64Array(1 << 16);
  private sent = 0;
  private outstanding = 0;
  private publishing = true;
  private measuring = false;
  private measuredResults = 0;
  private readonly latencies: number[] = [];
  private readonly report: RunReport;
  private batchSum = 0;
  private onAnswered?: () => void;
  /** Images per request. */
  private readonly batch: number;
  private readonly sequence: number[] = [];

  constructor(
    private readonly tag: string,
    private readonly command: RunCommand,
    private readonly samples: Sample[],
    private readonly setup: SetupCommand,
    private readonly publish: (payload: string) => void,
  ) {
    this.report = emptyReport(command.name, command.mode);
    this.batch = this.report.batch;
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
        const seq = this.sent;
        this.send();
        await Promise.race([answered, sleep(2000)]);
        this.sequence.push(this.states[seq] === REQUEST_STATE.answered ? this.answeredAt[seq] - this.sentAt[seq] : NaN);
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
    this.report.lost += this.outstanding * this.batch;
    if (mode.kind === "lone") this.report.sequence = this.sequence;
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
    const id = `${this.tag}-${seq}`;
    this.publish(this.batch > 1 ? batchEnvelope(id, this.samples, seq * this.batch, this.batch, Date.now()) : envelope(id, sample, Date.now()));
  }

  private grow(): void {
    const states = new Uint8Array(this.states.length * 2);
    states.set(this.states);
    const sentAt = new Float64Array(this.sentAt.length * 2);
    sentAt.set(this.sentAt);
    const answeredAt = new Float64Array(this.answeredAt.length * 2);
    answeredAt.set(this.answeredAt);
    this.states = states;
    this.sentAt = sentAt;
    this.answeredAt = answeredAt;
  }

  onAnswer(topic: string, payload: Buffer): void {
    const now = performance.now();
    let answer: Answer & { id?: unknown; results?: unknown };
    try {
      answer = JSON.parse(payload.toString("utf8"));
    } catch {
      return this.misattribute(`an answer on ${topic} is not JSON`);
    }
    const id = typeof answer.id === "string" ? answer.id : "";
    const dash = id.lastIndexOf("-");
    const seq = Number(id.slice(dash + 1));
    if (id.slice(0, dash) !== this.tag) {
      if (dash > 0) this.report.late += this.batch;
      else this.misattribute(`an answer on ${topic} carries no request id (${String(answer.id).slice(0, 40)})`);
      return;
    }
    if (!Number.isInteger(seq) || seq >= this.sent || this.states[seq] === REQUEST_STATE.unsent) {
      return this.misattribute(`an answer names request ${id}, which was never sent`);
    }
    if (this.states[seq] === REQUEST_STATE.answered) {
      this.report.duplicated += this.batch;
      if (this.report.examples.length < 5) this.report.examples.push(`request ${id} was answered twice`);
      return;
    }
    this.states[seq] = REQUEST_STATE.answered;
    this.answeredAt[seq] = now;
    this.outstanding--;

    let answered = 0;
    if (topic === this.setup.errorTopic || answer.error) {
      this.countError(answer.error?.code, this.batch);
    } else if (this.batch === 1) {
      answered = this.check(id, answer, seq);
    } else {
      // A batch reply: one item per image, in the order of the images.
      const items = Array.isArray(answer.results) ? (answer.results as Answer[]) : [];
      if (items.length !== this.batch) this.misattribute(`batch ${id} of ${this.batch} images got ${Array.isArray(answer.results) ? items.length : "no"} results`);
      if (items.length < this.batch) this.report.lost += this.batch - items.length;
      for (let k = 0; k < Math.min(items.length, this.batch); k++) {
        const item = items[k];
        if (item?.error) this.countError(item.error.code, 1);
        else answered += this.check(`${id} item ${k}`, item ?? {}, seq * this.batch + k);
      }
    }
    if (this.measuring && answered > 0) {
      this.measuredResults += answered;
      this.latencies.push(now - this.sentAt[seq]);
    }
    this.onAnswered?.();
  }

  /** One image's result against what the model answers for the image sent in that place; 1 if it is a result. */
  private check(what: string, answer: Answer, image: number): number {
    const index = image % this.samples.length;
    const sample = this.samples[index];
    const reference = this.setup.references[index];
    const sameImage = answer.digit === reference.digit && Math.abs((answer.confidence ?? -1) - reference.confidence) < 1e-3;
    if (answer.label !== sample.label || !sameImage) {
      this.misattribute(
        `request ${what} (${sample.file}, label ${sample.label}, model says ${reference.digit} at ${reference.confidence.toFixed(4)}) ` +
          `got digit ${answer.digit} at ${answer.confidence?.toFixed(4)} with label ${answer.label}`,
      );
    }
    this.report.results++;
    if (answer.digit === sample.label) this.report.correct++;
    this.batchSum += answer.timings?.batchSize ?? 0;
    return 1;
  }

  private countError(code: string | undefined, images: number): void {
    const key = code ?? "unknown";
    this.report.errorReplies[key] = (this.report.errorReplies[key] ?? 0) + images;
  }

  private misattribute(example: string): void {
    this.report.misattributed++;
    if (this.report.examples.length < 5) this.report.examples.push(example);
  }
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
