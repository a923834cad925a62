"use strict";
// The two ONNX Runtime backends on the shipped model: onnxruntime-node and
// onnxruntime-web's WebAssembly build must give the same answers.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { Classifier } = require("../dist/nodes/mnist-infer/inference/classifier.js");
const { loadRuntime } = require("../dist/nodes/mnist-infer/inference/backends.js");
const { decodePng } = require("../dist/nodes/mnist-infer/image/png.js");
const { preprocess, SIDE } = require("../dist/nodes/mnist-infer/image/preprocess.js");
const { BUNDLED_MODEL } = require("../dist/nodes/shared/package-paths.js");
const { loadSamples } = require("./support/samples");

const samples = loadSamples();

describe("native and WebAssembly backends", () => {
  let native;
  let wasm;

  before(async () => {
    native = await Classifier.create(BUNDLED_MODEL, "native");
    wasm = await Classifier.create(BUNDLED_MODEL, "wasm");
  });
  after(async () => {
    await native?.release();
    await wasm?.release();
  });

  it("report which backend they are", () => {
    assert.equal(native.info.backend.name, "native");
    assert.equal(wasm.info.backend.name, "wasm");
    assert.ok(wasm.info.backend.threads >= 1);
    assert.equal(native.info.sha256, wasm.info.sha256, "the same model file");
    assert.deepEqual(native.info.input, wasm.info.input);
  });

  it(`agree on all ${samples.length} samples: every probability within 1e-4, the same digits`, async () => {
    const pixels = new Float32Array(samples.length * SIDE * SIDE);
    samples.forEach((s, i) => pixels.set(preprocess(decodePng(s.bytes)).pixels, i * SIDE * SIDE));
    const [a, b] = [await native.predict(pixels, samples.length), await wasm.predict(pixels, samples.length)];
    let largest = 0;
    let right = 0;
    const argmax = (p) => p.indexOf(Math.max(...p));
    for (let i = 0; i < samples.length; i++) {
      for (let d = 0; d < 10; d++) largest = Math.max(largest, Math.abs(a[i][d] - b[i][d]));
      assert.equal(argmax(Array.from(a[i])), argmax(Array.from(b[i])), `sample ${i}: the same digit`);
      if (argmax(Array.from(b[i])) === samples[i].label) right++;
    }
    assert.ok(largest <= 1e-4, `largest difference ${largest}`);
    assert.ok(right / samples.length >= 0.97, `WebAssembly gets ${right} of ${samples.length} right`);
  });

  it("agree one image at a time as in batches", async () => {
    const one = preprocess(decodePng(samples[3].bytes)).pixels;
    const [[n], [w]] = [await native.predict(one, 1), await wasm.predict(one, 1)];
    for (let d = 0; d < 10; d++) assert.ok(Math.abs(n[d] - w[d]) <= 1e-4);
  });

  it("auto takes native here, and says why", () => {
    const runtime = loadRuntime("auto");
    assert.equal(runtime.info.name, "native");
    assert.match(runtime.info.reason, /onnxruntime-node loaded/);
  });

  it("refuse a file that is not a model alike", async () => {
    const refusals = [];
    for (const backend of ["native", "wasm"]) {
      await Classifier.create(__filename, backend).then(
        () => assert.fail(`${backend} loaded a JavaScript file as a model`),
        (err) => refusals.push(err.name),
      );
    }
    assert.deepEqual(refusals, ["ModelError", "ModelError"]);
  });
});

describe("probabilities from a model's ten outputs", () => {
  const { softmax } = require("../dist/nodes/mnist-infer/inference/classifier.js");
  const run = (values) => {
    const out = new Float32Array(10);
    softmax(Float32Array.from(values), out);
    return out;
  };

  it("turns logits into a softmax that sums to 1, also for very large or very negative logits", () => {
    for (const logits of [[2, 1, 0, -1, 3, 0.5, -2, 1.5, 0, 0], [1000, 999, 0, 0, 0, 0, 0, 0, 0, 998], [-50, -60, -55, -51, -70, -80, -52, -53, -54, -56]]) {
      const out = run(logits);
      const max = Math.max(...logits);
      const total = logits.reduce((sum, l) => sum + Math.exp(l - max), 0);
      logits.forEach((l, d) => assert.ok(Math.abs(out[d] - Math.exp(l - max) / total) < 1e-6, `logits ${logits}: digit ${d} ${out[d]}`));
      assert.ok(Math.abs(out.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    }
  });

  it("keeps outputs that already are probabilities (a softmax inside the model) as they are", () => {
    const probabilities = [0.05, 0.7, 0.05, 0.02, 0.03, 0.05, 0.02, 0.03, 0.03, 0.02];
    assert.deepEqual(Array.from(run(probabilities)), Array.from(Float32Array.from(probabilities)));
  });
});
