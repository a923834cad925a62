"use strict";
// flows/mnist-infer.json under load, in a real Node-RED process on a real
// Mosquitto: thousands of labelled requests, each with its own id, must each
// get exactly one answer, and each result must be the one for that request's
// image (the original chain mixed up its temp files under a burst). Nothing
// here asserts how fast; `npm run bench` measures that.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startTestBroker } = require("./support/broker");
const { connect } = require("./support/mqtt-client");
const { startNodeRed } = require("./support/node-red-process");
const { loadSamples } = require("./support/samples");
const { Classifier } = require("../dist/nodes/mnist-infer/inference/classifier.js");
const { decodePng } = require("../dist/nodes/mnist-infer/image/png.js");
const { preprocess } = require("../dist/nodes/mnist-infer/image/preprocess.js");
const { lookAgainWhereUnsure } = require("../dist/nodes/mnist-infer/inference/second-look.js");
const { modelThreshold } = require("../dist/nodes/mnist-infer/inference/unsure-below.js");
const { BUNDLED_MODEL } = require("../dist/nodes/shared/package-paths.js");

const samples = loadSamples();

/**
 * What mnist-infer answers for each sample on its own (the model's first answer, or its second
 * look when that is below the card's threshold): the ground truth a result is checked against.
 */
async function references() {
  const classifier = await Classifier.create(BUNDLED_MODEL);
  const threshold = modelThreshold(classifier.info);
  try {
    const out = [];
    for (const sample of samples) {
      const pixels = preprocess(decodePng(sample.bytes)).pixels;
      const answers = await classifier.predict(pixels, 1);
      await lookAgainWhereUnsure((input, count) => classifier.predict(input, count), pixels, answers, [threshold], classifier.info.maxBatch);
      const [p] = answers;
      const digit = p.indexOf(Math.max(...p));
      out.push({ digit, confidence: p[digit] });
    }
    return out;
  } finally {
    await classifier.release();
  }
}

/**
 * Sends requests `${run}-${i}` for sample i % 500 and checks every answer:
 * known id, first answer for it, and (for a result) the label, sentAt, digit
 * and confidence of that very request's image.
 */
class Run {
  constructor(client, name, refs) {
    this.client = client;
    this.name = name;
    this.refs = refs;
    this.sent = 0;
    this.answers = new Map(); // index → "result" | error code
    this.problems = [];
    this.waiters = [];
    this.onAnswer = () => {};
    this.listener = (topic, payload) => this.receive(topic, payload);
    client.on("message", this.listener);
  }

  send(qos) {
    const i = this.sent++;
    const sample = samples[i % samples.length];
    const request = { id: `${this.name}-${i}`, label: sample.label, sentAt: 1e12 + i, image: sample.bytes.toString("base64") };
    this.client.publish("mnist", JSON.stringify(request), { qos });
  }

  receive(topic, payload) {
    let answer;
    try {
      answer = JSON.parse(payload);
    } catch {
      return this.problems.push(`an answer on ${topic} is not JSON: ${String(payload).slice(0, 60)}`);
    }
    if (typeof answer.id !== "string" || !answer.id.startsWith(`${this.name}-`)) {
      return this.problems.push(`an answer on ${topic} names no request of this run: ${JSON.stringify(answer.id)}`);
    }
    const i = Number(answer.id.slice(this.name.length + 1));
    if (!Number.isInteger(i) || i >= this.sent) return this.problems.push(`${answer.id} answers a request that was never sent`);
    if (this.answers.has(i)) return this.problems.push(`${answer.id} was answered twice`);
    if (topic === "result/error") {
      this.answers.set(i, answer.error && answer.error.code);
    } else {
      this.answers.set(i, "result");
      const sample = samples[i % samples.length];
      const ref = this.refs[i % samples.length];
      if (answer.label !== sample.label || answer.sentAt !== 1e12 + i || answer.digit !== ref.digit || Math.abs(answer.confidence - ref.confidence) > 1e-3) {
        this.problems.push(
          `${answer.id} (${sample.file}, label ${sample.label}, digit ${ref.digit} at ${ref.confidence.toFixed(4)}) got ` +
            `label ${answer.label}, sentAt ${answer.sentAt}, digit ${answer.digit} at ${answer.confidence}`,
        );
      }
    }
    this.onAnswer();
    if (this.answers.size === this.sent) this.waiters.splice(0).forEach((resolve) => resolve());
  }

  /** Resolves when every request sent has an answer, then waits `graceMs` more for duplicates. */
  async settled(timeoutMs, graceMs = 500) {
    if (this.answers.size < this.sent) {
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${this.sent - this.answers.size} of ${this.sent} requests unanswered after ${timeoutMs} ms; ${this.summary()}`)), timeoutMs);
      });
      await Promise.race([new Promise((resolve) => this.waiters.push(resolve)), timeout]).finally(() => clearTimeout(timer));
    }
    await new Promise((resolve) => setTimeout(resolve, graceMs));
    this.client.off("message", this.listener);
  }

  /** Answers by kind, e.g. { result: 3900, "queue-full": 100 }. */
  counts() {
    const counts = {};
    for (const kind of this.answers.values()) counts[kind] = (counts[kind] || 0) + 1;
    return counts;
  }

  summary() {
    return `answers ${JSON.stringify(this.counts())}; problems: ${this.problems.slice(0, 5).join("; ") || "none"}`;
  }
}

describe("mnist-infer.json under load, through Mosquitto", { timeout: 90000 }, () => {
  let broker;
  let nodeRed;
  let client;
  let refs;

  before(async () => {
    broker = await startTestBroker();
    [nodeRed, refs] = await Promise.all([
      startNodeRed({ flow: "flows/mnist-infer.json", mqttUrl: broker.url, env: { MQTT_CLIENT_ID: `mnist-load-test-${process.pid}` } }),
      references(),
    ]);
    client = await connect(broker.url);
    await client.subscribeAsync(["result", "result/error"], { qos: 1 });
  });
  after(async () => {
    await client?.endAsync();
    await nodeRed?.stop();
    await broker?.stop();
  });

  it("answers 4,000 QoS 0 requests sent with 200 in flight exactly once each, each with its own image's result", async (t) => {
    const run = new Run(client, "loop", refs);
    const total = 4000;
    // Closed loop: every answer lets the next request go, so the queue never overflows.
    run.onAnswer = () => {
      if (run.sent < total) run.send(0);
    };
    for (let i = 0; i < 200; i++) run.send(0);
    await run.settled(30000);
    t.diagnostic(run.summary());
    assert.deepEqual(run.problems, []);
    assert.equal(run.sent, total);
    assert.deepEqual(run.counts(), { result: total }, run.summary());
  });

  it("answers a burst of 3,000 requests beyond the queue's 1,000 exactly once each: a result, or queue-full with the id", async (t) => {
    const run = new Run(client, "burst", refs);
    const total = 3000;
    // QoS 1, so the broker holds what Node-RED has not read yet instead of dropping it.
    for (let i = 0; i < total; i++) run.send(1);
    await run.settled(30000);
    t.diagnostic(run.summary());
    assert.deepEqual(run.problems, []);
    const counts = run.counts();
    assert.equal(run.answers.size, total, run.summary());
    assert.deepEqual(Object.keys(counts).filter((kind) => kind !== "result" && kind !== "queue-full"), [], run.summary());
    assert.ok(counts.result >= 1000, `at least a queue's worth of results (${run.summary()})`);
  });
});
