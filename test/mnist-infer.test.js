"use strict";
// mnist-infer in a real Node-RED runtime with the shipped model: real
// inference, every accepted input form, every kind of bad input, the loading
// queue, and redeploys.
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const sharp = require("sharp");
const { helper, load, collect, statusOf, startServer, stopServer, unload } = require("./support/flow");
const { loadSamples } = require("./support/samples");

const inferNode = require("../dist/nodes/mnist-infer/mnist-infer.js");
const catchNode = require("@node-red/nodes/core/common/25-catch.js");
const { InferenceService } = require("../dist/nodes/mnist-infer/inference/inference-service.js");

const samples = loadSamples();

/** infer → out, and a Catch node on the tab → errors. */
function flow(inferConfig = {}) {
  return [
    { id: "t1", type: "tab", label: "test" },
    { id: "n-infer", type: "mnist-infer", z: "t1", wires: [["n-out"]], ...inferConfig },
    { id: "n-out", type: "helper", z: "t1" },
    { id: "n-catch", type: "catch", z: "t1", scope: null, uncaught: false, wires: [["n-errors"]] },
    { id: "n-errors", type: "helper", z: "t1" },
  ];
}

async function loadInfer(config) {
  await load([inferNode, catchNode], flow(config));
  return helper.getNode("n-infer");
}

const loadOn = (backend, config) => loadInfer({ backend, ...config });

/** Sends one message and resolves with the result message or the caught error message. */
function classify(node, msg, timeoutMs = 20000) {
  const out = helper.getNode("n-out");
  const errors = helper.getNode("n-errors");
  return new Promise((resolve, reject) => {
    const finish = (outcome) => {
      clearTimeout(timer);
      out.removeListener("input", onResult);
      errors.removeListener("input", onError);
      outcome instanceof Error ? reject(outcome) : resolve(outcome);
    };
    const onResult = (m) => finish({ ok: m });
    const onError = (m) => finish({ error: m });
    const timer = setTimeout(() => finish(new Error(`no result or error within ${timeoutMs} ms`)), timeoutMs);
    out.on("input", onResult);
    errors.on("input", onError);
    node.receive(msg);
  });
}

async function expectDigit(node, msg, digit) {
  const outcome = await classify(node, msg);
  assert.ok(outcome.ok, `expected a result, got error: ${outcome.error && outcome.error.error.message}`);
  assert.equal(outcome.ok.payload.digit, digit);
  return outcome.ok;
}

async function expectError(node, msg, code, pattern) {
  const outcome = await classify(node, msg);
  assert.ok(outcome.error, `expected an error, got digit ${outcome.ok && outcome.ok.payload.digit}`);
  assert.equal(outcome.error.error.code, code, outcome.error.error.message);
  if (pattern) assert.match(outcome.error.error.message, pattern);
  assert.equal(outcome.error.error.source.id, "n-infer");
  return outcome.error;
}

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

  describe("batch requests {id, images: [...]}", () => {
    const b64 = (s) => s.bytes.toString("base64");

    it("answers with one reply whose results are in the order of the images, as single requests would be", async () => {
      const node = await loadInfer();
      const batch = samples.slice(0, 40);
      const { ok } = await classify(node, { payload: { id: "b1", images: batch.map(b64), labels: batch.map((s) => s.label) } });
      assert.equal(ok.payload.id, "b1");
      assert.equal(ok.payload.results.length, 40);
      assert.equal(ok.payload.model.name, "mnist-cnn", "the model is said once, for the whole batch");
      for (const [i, sample] of batch.entries()) {
        const single = await classify(node, { payload: sample.bytes });
        const item = ok.payload.results[i];
        assert.equal(item.digit, single.ok.payload.digit, `image ${i}: the same digit as alone`);
        assert.ok(Math.abs(item.confidence - single.ok.payload.confidence) < 1e-5);
        assert.equal(item.label, sample.label);
        assert.equal(item.correct, item.digit === sample.label);
        assert.equal(typeof item.unsure, "boolean");
      }
    });

    it("answers an image that fails in its own slot, and still classifies the rest", async () => {
      const node = await loadInfer();
      const images = [b64(samples[0]), "***not base64***", new Array(100).fill(0), b64(samples[1]), Buffer.from("not an image").toString("base64")];
      const { ok } = await classify(node, { payload: JSON.stringify({ id: "b2", images }) });
      const codes = ok.payload.results.map((r) => (r.error ? r.error.code : r.digit));
      assert.deepEqual(codes, [samples[0].label, "bad-base64", "bad-pixels", samples[1].label, "unsupported"]);
      assert.match(ok.payload.results[2].error.message, /784 values/);
      const stats = (await helper.request().get("/mnist-infer/n-infer/stats").expect(200)).body;
      assert.equal(stats.badInput, 3, "each bad image counts as bad input");
    });

    it("refuses a batch over its limit, an empty one, one that is not an array, and labels that do not match", async () => {
      const node = await loadInfer({ maxBatchImages: 3 });
      const four = samples.slice(0, 4).map(b64);
      await expectError(node, { payload: { id: "b3", images: four } }, "too-large", /4 images, over the limit of 3/);
      await expectError(node, { payload: { images: [] } }, "empty");
      await expectError(node, { payload: { images: "abc" } }, "bad-envelope", /must be an array/);
      await expectError(node, { payload: { images: four.slice(0, 2), labels: [1] } }, "bad-label", /one label .* per image/);
      const { ok } = await classify(node, { payload: { images: four.slice(0, 3) } });
      assert.equal(ok.payload.results.length, 3, "three is within the limit");
    });

    it("puts each image through the queue: over its size, the images that do not fit are refused in their slots", async () => {
      const node = await loadInfer({ queueSize: 5 });
      const { ok } = await classify(node, { payload: { id: "b4", images: samples.slice(0, 12).map(b64) } });
      const refused = ok.payload.results.filter((r) => r.error?.code === "queue-full").length;
      const answered = ok.payload.results.filter((r) => typeof r.digit === "number").length;
      assert.ok(refused > 0 && answered >= 5, `${answered} answered, ${refused} refused`);
      assert.equal(refused + answered, 12);
      const stats = (await helper.request().get("/mnist-infer/n-infer/stats").expect(200)).body;
      assert.deepEqual([stats.rejected, stats.completed, stats.backlog, stats.backlogBytes], [refused, answered, 0, 0], "queue accounting");
    });
  });

  it("classifies ink that touches the image's edge (it was once resampled past the edge into a blank input)", async () => {
    const { preprocess } = require("../dist/nodes/mnist-infer/image/preprocess.js");
    for (const [w, h] of [[5, 5], [5, 6], [5, 11], [5, 23], [37, 90], [120, 61]]) {
      const data = new Uint8Array(w * h);
      for (let y = Math.floor(h / 3); y < h; y++) for (let x = Math.floor(w / 3); x < w; x++) data[y * w + x] = 255;
      const { pixels } = preprocess({ data, width: w, height: h, channels: 1 });
      assert.ok(!pixels.some(Number.isNaN), `${w}×${h}: no NaN`);
      assert.ok(pixels.some((v) => v > 0.5), `${w}×${h}: the ink is there`);
    }
  });

  it("preprocesses into a slot of a batch tensor exactly as into an array of its own, leaving the other slots alone", () => {
    const { preprocess, SIDE } = require("../dist/nodes/mnist-infer/image/preprocess.js");
    const { decodePng } = require("../dist/nodes/mnist-infer/image/png.js");
    const n = SIDE * SIDE;
    const batch = new Float32Array(3 * n).fill(0.25); // what an earlier image left behind
    // MNIST digits (mostly a copy, little shifting) and a bar on a larger image (fitted into 20 px: most of the field is background).
    const bar = { data: new Uint8Array(37 * 90), width: 37, height: 90, channels: 1 };
    for (let y = 10; y < 80; y++) for (let x = 15; x < 22; x++) bar.data[y * 37 + x] = 255;
    for (const image of [...samples.slice(0, 5).map(({ bytes }) => () => decodePng(bytes)), () => bar]) {
      const alone = preprocess(image());
      const slotted = preprocess(image(), batch, n);
      assert.deepEqual(Array.from(slotted.pixels), Array.from(alone.pixels));
      assert.deepEqual(Array.from(batch.subarray(n, 2 * n)), Array.from(alone.pixels), "the slot holds the image, zeros included");
      assert.equal(slotted.inverted, alone.inverted);
      assert.ok(batch.subarray(0, n).every((v) => v === 0.25) && batch.subarray(2 * n).every((v) => v === 0.25), "the slots before and after are untouched");
    }
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

  // Both backends must treat bad input the same way: the same codes, the same messages.
  for (const backend of ["native", "wasm"]) describe(`bad input on the ${backend} backend: a clear error for a Catch node, and the next message still works`, () => {
    const loadInfer = (config) => loadOn(backend, config);
    const png = () => samples[5].bytes;
    const hugePng = () => {
      const b = Buffer.from(png());
      b.writeUInt32BE(60000, 16);
      b.writeUInt32BE(60000, 20);
      return b;
    };
    const cases = [
      ["an empty buffer", () => Buffer.alloc(0), "empty"],
      ["an empty string", () => "", "empty"],
      ["a missing property", () => undefined, "empty"],
      ["one byte", () => Buffer.from([0x89]), "unsupported"],
      ["random bytes", () => Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 97 + 13) % 256)), "unsupported"],
      ["plain text", () => "hello, is this a digit?", "bad-base64", /neither JSON nor valid base64/],
      ["HTML", () => Buffer.from("<!doctype html><html><body>7</body></html>"), "bad-base64"],
      ["a PDF", () => Buffer.concat([Buffer.from("%PDF-1.7\n"), Buffer.alloc(200, 0xe2)]), "unsupported", /PDF/],
      ["an SVG referring to an external file", () => Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>').toString("base64"), "unsupported", /SVG/],
      ["a truncated PNG", () => png().subarray(0, 60), "truncated"],
      ["a PNG whose header claims 60000×60000 pixels", hugePng, "too-large", /60000×60000/],
      ["a payload over the size limit", () => Buffer.alloc(6 * 1024 * 1024, 1), "too-large"],
      ["{data,width,height} claiming more pixels than the limit", () => ({ data: new Uint8Array(16), width: 60000, height: 60000 }), "too-large", /60000×60000 pixels is over the limit/],
      ["{data,width,height} with more values than the limit, whatever it claims", () => ({ data: new Uint8Array(24_000_001), width: 2, height: 2 }), "too-large", /24000001 values, over the limit/],
      ["JSON without an image", () => ({ id: "x1", label: 3 }), "bad-envelope", /no "image" field/],
      ["broken JSON text", () => '{"id": "x2", "image": ', "bad-json"],
      ["invalid base64 in an envelope", () => ({ id: "x3", image: "***not base64***" }), "bad-base64"],
      ["a file path", () => "/etc/passwd", "file-path", /looks like a file path .*never reads files/],
      ["a file: URL in an envelope", () => ({ id: "x4", image: "file:///home/user/digit.png" }), "file-path"],
      ["a Windows path", () => "C:\\Users\\me\\digit.png", "file-path"],
      ["a pixel array of the wrong length", () => new Array(100).fill(0), "bad-pixels", /784 values/],
      ["pixels that are NaN", () => new Array(784).fill(Number.NaN), "bad-pixels", /NaN/],
      ["pixels that are Infinity", () => new Array(784).fill(Number.POSITIVE_INFINITY), "bad-pixels"],
      ["pixels of 1e308", () => new Array(784).fill(1e308), "bad-pixels"],
      ["a label that is not a digit", () => ({ label: 12, image: png().toString("base64") }), "bad-label"],
      ["a blank image", () => new Array(784).fill(0), "no-ink"],
      ["a corrupt JPEG", () => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(100, 7)]), "corrupt"],
    ];
    for (const [name, payload, code, pattern] of cases) {
      it(`refuses ${name} (${code})`, async () => {
        const node = await loadInfer();
        await expectError(node, { payload: payload() }, code, pattern);
        await expectDigit(node, { payload: png() }, samples[5].label);
      });
    }

    it("reads a JPEG sent as base64, although its base64 starts like a path (/9j/…)", async () => {
      const node = await loadInfer();
      const jpeg = await sharp(samples[3].bytes).jpeg({ quality: 95 }).toBuffer();
      assert.ok(jpeg.toString("base64").startsWith("/9j/"));
      await expectDigit(node, { payload: jpeg.toString("base64") }, samples[3].label);
    });

    it("keeps the request id on an error when the envelope had one", async () => {
      const node = await loadInfer();
      const err = await expectError(node, { payload: { id: "keep-me", image: "!!!" } }, "bad-base64");
      assert.equal(err.id, "keep-me");
    });
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

  describe("model files: only from the user directory, the package's models or folders an admin allowed", () => {
    let userDir;
    let outside;
    before(() => {
      userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-user-"));
      outside = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-elsewhere-"));
      fs.mkdirSync(path.join(userDir, "folder.onnx"));
      fs.writeFileSync(path.join(userDir, "bogus.onnx"), "this is not a model");
      fs.copyFileSync(path.join(__dirname, "..", "models", "mnist-cnn.onnx"), path.join(outside, "copy.onnx"));
      fs.symlinkSync(path.join(outside, "copy.onnx"), path.join(userDir, "link.onnx"));
    });
    afterEach(() => helper.settings({}));
    after(() => [userDir, outside].forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

    /** Loads a node on `model` with `settings`; resolves with the error a request then gets. */
    async function refusalOf(model, settings = {}) {
      helper.settings({ userDir, ...settings });
      await loadInfer({ model });
      await statusOf("n-infer", "red");
      return expectError(helper.getNode("n-infer"), { payload: samples[0].bytes }, "model");
    }

    it("says a model path that is a folder is a folder, not that it does not exist", async () => {
      const err = await refusalOf("folder.onnx");
      assert.match(err.error.message, /folder\.onnx is a folder, not a file/);
    });

    it("refuses a file that is not an ONNX model", async () => {
      const err = await refusalOf("bogus.onnx");
      assert.match(err.error.message, /bogus\.onnx is not a loadable ONNX model/);
    });

    it("refuses a file elsewhere, also through a link, without naming its absolute path", async () => {
      for (const model of [path.join(outside, "copy.onnx"), "link.onnx", "../" + path.basename(outside) + "/copy.onnx"]) {
        const err = await refusalOf(model);
        assert.match(err.error.message, /is outside the folders models may be read from .*mnistInferModelDirs in settings\.js/, model);
        assert.ok(!err.error.message.includes(os.tmpdir()), `no absolute path in ${err.error.message}`);
        await unload();
      }
      const res = await helper.request().get("/mnist-infer/model-info").query({ model: path.join(outside, "copy.onnx") }).expect(403);
      assert.equal(res.body.error.code, "not-allowed");
      assert.ok(!JSON.stringify(res.body).includes(outside), "the model panel does not echo the absolute path");
    });

    it("reads a model from a folder an admin allowed in settings.js", async () => {
      helper.settings({ userDir, mnistInferModelDirs: [outside] });
      const node = await loadInfer({ model: "link.onnx" });
      await expectDigit(node, { payload: samples[0].bytes }, samples[0].label);
      const info = await helper.request().get("/mnist-infer/model-info").query({ model: "link.onnx" }).expect(200);
      assert.equal(info.body.file, "link.onnx", "named as given");
    });
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
