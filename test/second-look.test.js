"use strict";
// The second look (nodes/mnist-infer/inference/second-look.ts): which images get
// it, how copies are moved, and that the average is the same whatever the batch
// the model allows. Run with the shipped model, on the main thread.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("path");
const { Classifier } = require("../dist/nodes/mnist-infer/inference/classifier.js");
const { MOVES, doubtful, lookAgain, moveImage } = require("../dist/nodes/mnist-infer/inference/second-look.js");
const { decodePng } = require("../dist/nodes/mnist-infer/image/png.js");
const { preprocess } = require("../dist/nodes/mnist-infer/image/preprocess.js");
const { loadSamples } = require("./support/samples");

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const MODEL = path.join(__dirname, "..", "models", "mnist-cnn.onnx");

describe("second look: moving an image by a pixel", () => {
  it("moves every pixel by (down, right) and leaves what moves in blank", () => {
    const from = new Float32Array(PIXELS);
    from[10 * SIDE + 10] = 0.5;
    from[0 * SIDE + 27] = 1; // on the top edge at the right: moved up it leaves the image
    const to = new Float32Array(PIXELS * 2).fill(7);
    moveImage(from, 0, 1, -1, to, PIXELS);
    assert.deepEqual([...to.subarray(0, PIXELS)], new Array(PIXELS).fill(7), "nothing written before the offset");
    const lit = [...to.subarray(PIXELS)].flatMap((v, i) => (v !== 0 ? [[Math.floor(i / SIDE), i % SIDE, v]] : []));
    assert.deepEqual(lit, [[1, 26, 1], [11, 9, 0.5]]);
    moveImage(from, 0, -1, 1, to, 0);
    assert.deepEqual([...to.subarray(0, PIXELS)].flatMap((v, i) => (v !== 0 ? [[Math.floor(i / SIDE), i % SIDE]] : [])), [[9, 11]]);
  });

  it("moves to the four diagonal neighbours", () => {
    assert.deepEqual(MOVES.map(([dy, dx]) => [Math.abs(dy), Math.abs(dx)]), [[1, 1], [1, 1], [1, 1], [1, 1]]);
    assert.equal(new Set(MOVES.map((m) => m.join())).size, 4);
  });
});

describe("second look: which answers get it", () => {
  const answer = (top) => Float32Array.from({ length: 10 }, (_, d) => (d === 3 ? top : (1 - top) / 9));
  it("takes the answers whose top probability is below their own threshold, and only those", () => {
    const answers = [answer(0.99), answer(0.5), answer(0.7), answer(0.7)];
    assert.deepEqual(doubtful(answers, [0.578, 0.578, 0.578, 0.8]), [1, 3]);
    assert.deepEqual(doubtful(answers, [0, 0, 0, 0]), [], "a threshold of 0 never looks again");
    assert.deepEqual(doubtful(answers, [1, 1, 1, 1]), [0, 1, 2, 3], "a threshold of 1 always does");
  });
});

describe("second look: with the shipped model", { timeout: 60000 }, () => {
  let model;
  before(async () => {
    model = await Classifier.create(MODEL, "auto");
  });
  after(() => model?.release());

  /** The first `count` held-out digits, preprocessed into one batch tensor. */
  function batchOf(count) {
    const pixels = new Float32Array(count * PIXELS);
    loadSamples(count).forEach((s, k) => preprocess(decodePng(s.bytes), pixels, k * PIXELS));
    return pixels;
  }

  it("averages the first answer with the answers for the four moved copies", async () => {
    const pixels = batchOf(6);
    const first = await model.predict(pixels, 6);
    const which = [1, 4];
    const expected = [];
    for (const k of which) {
      const copies = new Float32Array(MOVES.length * PIXELS);
      MOVES.forEach(([dy, dx], c) => moveImage(pixels, k * PIXELS, dy, dx, copies, c * PIXELS));
      const answers = await model.predict(copies, MOVES.length);
      expected.push(Array.from({ length: 10 }, (_, d) => (first[k][d] + answers.reduce((sum, a) => sum + a[d], 0)) / (MOVES.length + 1)));
    }
    const before = first.map((p) => [...p]);
    await lookAgain((input, n) => model.predict(input, n), pixels, first, which, 64);
    which.forEach((k, j) => {
      first[k].forEach((p, d) => assert.ok(Math.abs(p - expected[j][d]) < 1e-6, `image ${k}, digit ${d}: ${p} against ${expected[j][d]}`));
      assert.ok(Math.abs(first[k].reduce((a, b) => a + b, 0) - 1) < 1e-5, "still probabilities");
    });
    [0, 2, 3, 5].forEach((k) => assert.deepEqual([...first[k]], before[k], `image ${k} was not looked at again`));
  });

  it("gives the same average when the model takes one image at a time, or three", async () => {
    const pixels = batchOf(3);
    const results = [];
    for (const maxBatch of [256, 1, 3]) {
      const answers = await model.predict(pixels, 3);
      const sizes = [];
      await lookAgain((input, n) => (sizes.push(n), model.predict(input, n)), pixels, answers, [0, 1, 2], maxBatch);
      assert.deepEqual(sizes, { 256: [12], 1: new Array(12).fill(1), 3: [3, 3, 3, 3] }[maxBatch], `runs with at most ${maxBatch}`);
      results.push(answers.map((p) => [...p]));
    }
    for (const other of results.slice(1)) {
      other.flat().forEach((p, i) => assert.ok(Math.abs(p - results[0].flat()[i]) < 1e-6, `probability ${i}: ${p} against ${results[0].flat()[i]}`));
    }
  });
});
