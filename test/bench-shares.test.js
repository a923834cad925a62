"use strict";
// The benchmark's shares (scripts/bench/shares.ts, issue #16): each figure is
// divided by the highest limit measured in the run (start, between stages,
// end), so a slow moment at the start and the end cannot flatter a share.
// Checked on made-up measurements: the report's arithmetic, not the machine.
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { limitRate } = require("../dist/scripts/bench/limits.js");
const { shareRows } = require("../dist/scripts/bench/shares.js");

const limit = (rate, threads = "default") => ({ rate, batch: 64, threads, byBatch: { 64: rate } });
const measured = (native, oneThread) => ({ native: limit(native), nativeOneThread: limit(oneThread, 1) });

function resultWith(limits) {
  return { options: {}, limits, nodeAlone: { throughput: 13_000 } };
}

describe("bench shares against the limit", () => {
  it("takes the highest limit of the start, every between-stages measurement and the end", () => {
    const limits = { ...measured(19_000, 17_000), between: [measured(32_000, 16_000), measured(27_000, 15_000)], again: measured(19_500, 15_500) };
    assert.equal(limitRate(limits, "native"), 32_000);
    assert.equal(limitRate(limits, "nativeOneThread"), 17_000);
    assert.equal(limitRate(limits, "wasm"), undefined, "a backend never measured has no limit");

    const rows = shareRows(resultWith(limits));
    const nodeAlone = rows.find((row) => Array.isArray(row) && row[0].includes("mnist-infer alone"));
    assert.deepEqual(nodeAlone.slice(1), ["13,000/s = 41%", "≥ 60%", false], "13,000 of 32,000, not of the 19,500 the start and end measured");
    const limitRow = rows.find((row) => Array.isArray(row) && row[0].startsWith("onnxruntime-node, default threads"));
    assert.equal(limitRow[1], "19,000/s → 32,000/s → 27,000/s → 19,500/s", "every measurement is printed, in order");
  });

  it("still works on results written before the between-stages measurements (start and end only)", () => {
    const limits = { ...measured(20_000, 18_000), again: measured(26_000, 18_500) };
    assert.equal(limitRate(limits, "native"), 26_000);
    const rows = shareRows(resultWith(limits));
    const nodeAlone = rows.find((row) => Array.isArray(row) && row[0].includes("mnist-infer alone"));
    assert.deepEqual(nodeAlone.slice(1), ["13,000/s = 50%", "≥ 60%", false]);
  });
});
