"use strict";
// mnist-infer in a real Node-RED runtime with the shipped model: real
// inference, every accepted input form, the unsure flag, the loading queue,
// counters, faults of its own, and redeploys. Batch requests, bad input and
// model files have files of their own (mnist-infer-*.test.js).
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");
const sharp = require("sharp");
const { helper, load, collect, statusOf, startServer, stopServer, unload } = require("./support/flow");
const { inferNode, catchNode, flow, loadInfer, loadOn, classify, expectDigit, expectError } = require("./support/infer");
const { loadSamples } = require("./support/samples");

const { InferenceService } = require("../dist/nodes/mnist-infer/inference/inference-service.js");

const samples = loadSamples();

/** A sample digit made to look like a photo: dark ink on grey paper, large, uneven light, noise, JPEG. */
async function photoOf(sample) {
  const size = 240;
  const { data } = await sharp(sample.bytes).resize(size - 60, size - 60, { kernel: "cubic" }).extend({ top: 30, bottom: 30, left: 30, right: 30, background: { r: 0, g: 0, b: 0 } }).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const rgb = Buffer.alloc(size * size * 3);
  let seed = 7;
  const noise = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 30;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const paper = 200 + (x / size) * 40 - (y / size) * 20; // light falls off across the page
      const ink = data[y * size + x] / 255;
      const value = Math.max(0, Math.min(255, paper * (1 - 0.8 * ink) + noise()));
      rgb.set([value, value * 0.97, value * 0.9], (y * size + x) * 3);
    }
  }
  return sharp(rgb, { raw: { width: size, height: size, channels: 3 } }).rotate(6, { background: "#d8d0c0" }).jpeg({ quality: 80 }).toBuffer();
}

describe("mnist-infer", () => {
  before(startServer);
  after(stopServer);
  afterEach(unload);

  it("runs on WebAssembly when asked, and says so in its status and every result", async () => {
    const node = await loadOn("wasm");
    const status = await statusOf("n-infer", (s) => s.fill === "green");
    assert.equal(status.text, "mnist-infer.status.ready-on");
    const result = await expectDigit(node, { payload: samples[7].bytes }, samples[7].label);
    assert.equal(result.payload.model.backend, "wasm");
    assert.equal(result.payload.model.backendReason, undefined, "no reason to give when the user chose it");
  });

  it("on auto, runs natively where onnxruntime-node loads, and says why", async () => {
    const node = await loadInfer();
    const result = await expectDigit(node, { payload: samples[7].bytes }, samples[7].label);
    assert.equal(result.payload.model.backend, "native");
    assert.match(result.payload.model.backendReason, /onnxruntime-node loaded on linux\//);
  });

  it("says whether each result is unsure: the model card's threshold, the node's, or the request's", async () => {
    const card = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "models", "mnist-cnn.json"), "utf8"));
    let node = await loadInfer();
    const plain = await expectDigit(node, { payload: samples[2].bytes }, samples[2].label);
    assert.equal(plain.payload.threshold, card.unsureBelow ?? 0.5, "the model card's unsureBelow by default");
    assert.equal(plain.payload.unsure, plain.payload.confidence < plain.payload.threshold);
    const strict = await expectDigit(node, { payload: samples[2].bytes, threshold: 1 }, samples[2].label);
    assert.deepEqual([strict.payload.unsure, strict.payload.threshold], [true, 1], "msg.threshold overrides");
    const enveloped = await expectDigit(node, { payload: { image: samples[2].bytes.toString("base64"), threshold: "0" } }, samples[2].label);
    assert.deepEqual([enveloped.payload.unsure, enveloped.payload.threshold], [false, 0], "so does the envelope's");
    await expectError(node, { payload: samples[2].bytes, threshold: 1.5 }, "bad-threshold", /from 0 to 1/);
    await unload();
    node = await loadInfer({ threshold: "1" });
    const fromNode = await expectDigit(node, { payload: samples[2].bytes }, samples[2].label);
    assert.deepEqual([fromNode.payload.unsure, fromNode.payload.threshold], [true, 1], "the node's setting beats the card");
    await statusOf("n-infer", (s) => s.text === "mnist-infer.status.unsure");
  });

  it("loads with defaults and becomes ready", async () => {
    await load([inferNode], [{ id: "n-infer", type: "mnist-infer" }]);
    const node = helper.getNode("n-infer");
    assert.equal(node.type, "mnist-infer");
    await statusOf("n-infer", (s) => s.fill === "green");
  });

  it("rehearses its path as soon as the model is ready (the first request then does not pay for compiling it): nothing sent, shown or counted", async () => {
    const rehearsals = [];
    const original = InferenceService.prototype.rehearse;
    InferenceService.prototype.rehearse = function (input) {
      const prediction = original.call(this, input);
      rehearsals.push(prediction);
      return prediction;
    };
    try {
      await loadInfer();
      const sent = [];
      for (const id of ["n-out", "n-errors"]) helper.getNode(id).on("input", (msg) => sent.push(msg));
      await statusOf("n-infer", (s) => s.fill === "green");
      assert.equal(rehearsals.length, 1, "one rehearsal, started when the model became ready");
      const prediction = await rehearsals[0];
      assert.equal(prediction.digit, 1, "the drawn stroke reads as a 1");
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(sent, [], "the rehearsal's answer is not sent");
      const stats = (await helper.request().get("/mnist-infer/n-infer/stats").expect(200)).body;
      assert.deepEqual([stats.accepted, stats.completed, stats.failed, stats.batches, stats.backlog], [0, 0, 0, 0, 0]);
      const shown = helper._NodePrototype.status.getCalls().filter((call) => call.thisValue === helper.getNode("n-infer")).at(-1)?.args[0];
      assert.match(shown.text, /ready/, "the status still says ready, not the rehearsal's digit");
    } finally {
      InferenceService.prototype.rehearse = original;
    }
  });

  it("classifies the shipped held-out PNGs with at least 98% accuracy, each answered once", async () => {
    const node = await loadInfer();
    const results = collect("n-out", samples.length, 60000);
    samples.forEach((s, i) => node.receive({ payload: s.bytes, id: `s${i}`, label: s.label }));
    const msgs = await results;
    const ids = new Set(msgs.map((m) => m.payload.id));
    assert.equal(ids.size, samples.length, "every request answered exactly once");
    let correct = 0;
    for (const m of msgs) {
      const r = m.payload;
      const sample = samples[Number(String(r.id).slice(1))];
      assert.equal(r.label, sample.label, "the result carries its own request's label");
      assert.equal(r.correct, r.digit === r.label);
      assert.equal(r.probabilities.length, 10);
      assert.ok(Math.abs(r.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-4);
      assert.equal(r.confidence, Math.max(...r.probabilities));
      // Rounded, not a float32's 17 digits of noise: 8 decimals, times to 0.0001 ms.
      for (const p of r.probabilities) assert.equal(p, Math.round(p * 1e8) / 1e8, `probability ${p}`);
      for (const key of ["preprocessMs", "queueMs", "inferenceMs"]) assert.equal(r.timings[key], Math.round(r.timings[key] * 1e4) / 1e4, `${key} ${r.timings[key]}`);
      assert.match(r.model.sha256, /^[0-9a-f]{64}$/);
      assert.ok(r.timings.inferenceMs >= 0 && r.timings.batchSize >= 1);
      if (r.correct) correct++;
    }
    const accuracy = correct / samples.length;
    console.log(`held-out accuracy through the node: ${(accuracy * 100).toFixed(2)}% (${correct}/${samples.length})`);
    assert.ok(accuracy >= 0.98, `accuracy ${accuracy}`);
    assert.ok(msgs.some((m) => m.payload.timings.batchSize > 1), "a burst is run in batches");
  });

  it("accepts the JSON envelope as object, JSON text and JSON bytes", async () => {
    const node = await loadInfer();
    const s = samples[0];
    const envelope = { id: "e1", label: s.label, image: s.bytes.toString("base64"), sentAt: 1700000000000 };
    for (const payload of [envelope, JSON.stringify(envelope), Buffer.from(JSON.stringify(envelope))]) {
      const m = await expectDigit(node, { payload }, s.label);
      assert.equal(m.payload.id, "e1");
      assert.equal(m.id, "e1");
      assert.equal(m.payload.label, s.label);
      assert.equal(m.payload.correct, true);
      assert.equal(m.payload.sentAt, 1700000000000);
    }
  });

  it("accepts base64 text, a data: URL, pixel arrays in 0–1 and 0–255, and {data,width,height}", async () => {
    const node = await loadInfer();
    const s = samples[1];
    const { data } = await sharp(s.bytes).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    const bytes255 = Array.from(data);
    await expectDigit(node, { payload: s.bytes.toString("base64") }, s.label);
    await expectDigit(node, { payload: `data:image/png;base64,${s.bytes.toString("base64")}` }, s.label);
    await expectDigit(node, { payload: bytes255 }, s.label);
    await expectDigit(node, { payload: bytes255.map((v) => v / 255) }, s.label);
    await expectDigit(node, { payload: { data: bytes255, width: 28, height: 28 } }, s.label);
    await expectDigit(node, { payload: { id: 3, image: bytes255 } }, s.label);
  });

  it("reads JPEG, WebP, GIF and TIFF through sharp, and a property other than payload", async () => {
    const node = await loadInfer({ property: "image", output: "prediction" });
    const s = samples[2];
    for (const format of ["jpeg", "webp", "gif", "tiff"]) {
      const bytes = await sharp(s.bytes).resize(112, 112).toFormat(format).toBuffer();
      const outcome = await classify(node, { image: bytes, payload: "untouched" });
      assert.ok(outcome.ok, `${format}: ${outcome.error && outcome.error.error.message}`);
      assert.equal(outcome.ok.prediction.digit, s.label, format);
      assert.equal(outcome.ok.payload, "untouched");
    }
  });

  it("recognises photo-like digits: dark ink on uneven light paper, rotated, JPEG", async () => {
    const node = await loadInfer();
    const picks = samples.slice(0, 40);
    let correct = 0;
    for (const s of picks) {
      const outcome = await classify(node, { payload: await photoOf(s) });
      assert.ok(outcome.ok, outcome.error && outcome.error.error.message);
      assert.equal(outcome.ok.payload.inverted, true, "a light background is detected and inverted");
      if (outcome.ok.payload.digit === s.label) correct++;
    }
    console.log(`photo-like digits recognised: ${correct}/${picks.length}`);
    assert.ok(correct / picks.length >= 0.9, `${correct}/${picks.length}`);
  });

  it("takes id and label from msg.id / msg.label when the image carries none", async () => {
    const node = await loadInfer();
    const s = samples[3];
    const wrong = (s.label + 1) % 10;
    const m = await expectDigit(node, { payload: s.bytes, id: 42, label: String(wrong) }, s.label);
    assert.equal(m.payload.id, 42);
    assert.equal(m.payload.label, wrong);
    assert.equal(m.payload.correct, false);
  });

  it("addresses its answers for mqtt out when Reply topic is set: the request's MQTT 5 response topic, else the setting; never retained", async () => {
    process.env.MNIST_TEST_REPLY_TOPIC = "answers/here";
    try {
      const node = await loadInfer({ replyTopic: "${MNIST_TEST_REPLY_TOPIC}" });
      const s = samples[5];
      const plain = await expectDigit(node, { payload: s.bytes, topic: "mnist", retain: true }, s.label);
      assert.equal(plain.topic, "answers/here", "the environment variable in the setting is read");
      assert.equal(plain.retain, false);
      assert.equal(plain.contentType, "application/json");
      const asked = await expectDigit(node, { payload: s.bytes, topic: "mnist", responseTopic: "replies/me" }, s.label);
      assert.equal(asked.topic, "replies/me");
      assert.equal("responseTopic" in asked, false, "mqtt out would hand a response topic on to the reply");
      const batch = await classify(node, { payload: { id: "b1", images: [s.bytes.toString("base64")] }, topic: "mnist" });
      assert.equal(batch.ok.payload.results[0].digit, s.label);
      assert.equal(batch.ok.topic, "answers/here");
      // An error reply is the Catch node's flow's to address: its message keeps the request's topic.
      const refused = await expectError(node, { payload: s.bytes, threshold: 1.5, topic: "mnist" }, "bad-threshold");
      assert.equal(refused.topic, "mnist");
    } finally {
      delete process.env.MNIST_TEST_REPLY_TOPIC;
    }
    // Blank (the default): the message keeps what the request had.
    await unload();
    const node = await loadInfer();
    const kept = await expectDigit(node, { payload: samples[5].bytes, topic: "mnist", retain: true, responseTopic: "replies/me" }, samples[5].label);
    assert.equal(kept.topic, "mnist");
    assert.equal(kept.retain, true);
    assert.equal(kept.responseTopic, "replies/me");
    assert.equal(kept.contentType, undefined);
  });

  it("outputs the 28×28 image the model saw when asked", async () => {
    const node = await loadInfer({ preview: true });
    const m = await expectDigit(node, { payload: samples[4].bytes }, samples[4].label);
    const meta = await sharp(m.preview).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ["png", 28, 28, 1]);
  });

  it("queues messages that arrive while the model loads, and answers them all", async () => {
    const node = await loadInfer();
    const pending = collect("n-out", 20);
    samples.slice(0, 20).forEach((s, i) => node.receive({ payload: s.bytes, id: i }));
    const msgs = await pending;
    assert.deepEqual(msgs.map((m) => m.payload.id).sort((a, b) => a - b), [...Array(20).keys()]);
  });

  it("rejects new requests with queue-full when the queue is full", async () => {
    const node = await loadInfer({ queueSize: 5 });
    const outcomes = Promise.all([collect("n-out", 5), collect("n-errors", 5)]);
    samples.slice(0, 10).forEach((s, i) => node.receive({ payload: s.bytes, id: i }));
    const [ok, errors] = await outcomes;
    assert.deepEqual(ok.map((m) => m.id).sort(), [0, 1, 2, 3, 4]);
    assert.ok(errors.every((m) => m.error.code === "queue-full"));
  });

  it("counts what it classified, refused and ignored, for the edit dialog (GET /mnist-infer/:id/stats)", async () => {
    const node = await loadInfer({ queueSize: 5 });
    const outcomes = Promise.all([collect("n-out", 5), collect("n-errors", 6)]);
    samples.slice(0, 10).forEach((s, i) => node.receive({ payload: s.bytes, id: i }));
    node.receive({ payload: "/etc/passwd" });
    await outcomes;
    // The broker delivering a request again: same id, same bytes, over MQTT at QoS 1.
    const answers = [];
    helper.getNode("n-out").on("input", (msg) => answers.push(msg));
    node.receive({ payload: samples[0].bytes, id: "r0", qos: 1 });
    node.receive({ payload: samples[0].bytes, id: "r0", qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(answers.map((m) => m.id), ["r0", "r0"], "the repeat is answered too");
    assert.deepEqual(answers[1].payload, answers[0].payload, "with the first one's answer, not a second classification");
    const res = await helper.request().get("/mnist-infer/n-infer/stats").expect(200);
    assert.equal(res.body.completed, 6);
    assert.equal(res.body.rejected, 5);
    assert.equal(res.body.badInput, 1);
    assert.equal(res.body.repeatsAnswered, 1);
    assert.equal(res.body.backlog, 0);
    assert.equal(res.body.delivery, null, "confirm delivery is off");
    assert.ok(!Number.isNaN(Date.parse(res.body.since)));
    // A node the dialog shows before its first deploy: not an error, just not deployed.
    const missing = await helper.request().get("/mnist-infer/no-such-node/stats").expect(200);
    assert.deepEqual(missing.body, { deployed: false });
  });

  it("reports a missing model clearly and fails requests instead of hanging", async () => {
    await loadInfer({ model: "models/no-such-model.onnx" });
    const status = await statusOf("n-infer", "red");
    assert.equal(status.text, "mnist-infer.status.model-failed");
    const node = helper.getNode("n-infer");
    await expectError(node, { payload: samples[0].bytes }, "model", /not found/);
  });

  it("classifies a retry after an error reply again: a request refused for a full queue and sent again gets its answer", async () => {
    const node = await loadInfer({ queueSize: 1 });
    await statusOf("n-infer", (s) => s.fill === "green");
    const requests = samples.slice(0, 6).map((s, i) => ({ payload: s.bytes, id: `q${i}`, qos: 1 }));
    const outcomes = new Map();
    const all = new Promise((resolve) => {
      const note = (kind) => (msg) => outcomes.set(msg.id, kind === "ok" ? "ok" : msg.error.code) && outcomes.size === requests.length && resolve();
      helper.getNode("n-out").on("input", note("ok"));
      helper.getNode("n-errors").on("input", note("error"));
    });
    requests.forEach((msg) => node.receive({ ...msg }));
    await all;
    helper.getNode("n-out").removeAllListeners("input");
    helper.getNode("n-errors").removeAllListeners("input");
    const refused = requests.filter((msg) => outcomes.get(msg.id) === "queue-full");
    assert.ok(refused.length > 0, "a queue of 1 refuses some of 6 requests sent at once");
    for (const msg of refused) {
      const retry = await classify(node, { ...msg });
      assert.ok(retry.ok, `the retry of ${msg.id} is answered, not met with silence or the old error`);
      assert.equal(retry.ok.id, msg.id);
    }
  });

  it("answers a request it failed on through a fault of its own with code internal, logged with its stack, not counted as bad input", async () => {
    const node = await loadInfer();
    const logged = [];
    const originalError = node.error.bind(node);
    node.error = (text, msg) => (msg === undefined && logged.push(String(text)), originalError(text, msg));
    // A message a function node could build: reading its image throws a TypeError inside mnist-infer
    // (once: the Catch node's copy of the message reads it again).
    let armed = true;
    const trap = { get image() { if (armed) { armed = false; throw new TypeError("cannot read the trap"); } return "gone"; } };
    const err = await expectError(node, { payload: trap, id: "t1" }, "internal", /fault of its own, not of the request \(cannot read the trap\)/);
    assert.equal(err.id, "t1", "the reply still carries the request's id");
    assert.ok(logged.some((line) => /TypeError: cannot read the trap\n\s+at /.test(line)), "the stack is in the log");
    await expectDigit(node, { payload: samples[0].bytes }, samples[0].label);
    const stats = (await helper.request().get("/mnist-infer/n-infer/stats").expect(200)).body;
    assert.deepEqual([stats.faults, stats.badInput], [1, 0]);
  });

  it("leaves what it holds when it stops to the node that takes its place: every request answered once", async () => {
    const flowOf = () => flow({ queueSize: 1000 });
    await load([inferNode, catchNode], flowOf());
    let node = helper.getNode("n-infer");
    await statusOf("n-infer", (s) => s.fill === "green");
    const answered = new Map();
    const listen = () => helper.getNode("n-out").on("input", (msg) => answered.set(msg.id, (answered.get(msg.id) ?? 0) + 1));
    listen();
    samples.slice(0, 200).forEach((s, i) => node.receive({ payload: s.bytes, id: `h${i}` }));
    await unload(); // a redeploy: stopped with most of the 200 still queued
    await load([inferNode, catchNode], flowOf());
    node = helper.getNode("n-infer");
    listen();
    const deadline = Date.now() + 30000;
    while (answered.size < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(answered.size, 200, `${answered.size} of 200 answered across the redeploy`);
    assert.ok([...answered.values()].every((n) => n === 1), "each once");
  });

  it("releases its worker on every redeploy", async () => {
    for (let i = 0; i < 10; i++) {
      const node = await loadInfer();
      await expectDigit(node, { payload: samples[i].bytes }, samples[i].label);
      await unload();
    }
    assert.equal(InferenceService.liveWorkers, 0, "no worker thread outlives its node");
  });
});
