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

  it("says when the limit's second thread hardly ran on a machine of two cores or more (its shares are then too high)", () => {
    const note = (limits, options, cpus) => shareRows({ options, machine: { cpus }, limits }).find((row) => typeof row === "string" && row.includes("as fast as on one"));
    const starved = { ...measured(29_000, 22_100), again: measured(28_200, 22_000) }; // 1.31× one thread at best
    assert.match(note(starved, {}, 2) ?? "", /only 1\.31× as fast as on one \(29,000\/s against 22,100\/s\),\n  though it had 2 cores/);
    assert.equal(note({ ...starved, again: measured(41_000, 22_000) }, {}, 2), undefined, "one measurement at 1.86× is a limit the second thread reached");
    assert.equal(note(starved, { cores: 1 }, 2), undefined, "pinned to one core, one thread is all it can have");
    assert.equal(note(starved, {}, 1), undefined, "a one-core machine");
    assert.equal(note(measured(19_000, 22_100), {}, 2), undefined, "slower than one thread (under 0.9×) has its own note");
  });

  it("prints the first request against the hundredth after the start, and after a redeploy when the run measured one", () => {
    const first = (a, b, m) => ({ first: a, hundredth: b, median: m, run: {} });
    const endToEnd = { full: { throughput: 10_000 }, batch: { run: { throughput: 24_000, batch: 32 } }, rss: { change: 0.02 }, firstAfterDeploy: first(4.55, 0.99, 1.02) };
    const rowsOf = (e) => shareRows({ options: {}, machine: { cpus: 2 }, limits: measured(40_000, 22_000), endToEnd: e }).filter(Array.isArray);
    const firstRows = (e) => rowsOf(e).filter((row) => row[0].includes("first request") || row[0].includes("redeploy")).map((row) => [row[0].trim(), row[1]]);
    assert.deepEqual(firstRows({ ...endToEnd, firstAfterRedeploy: first(1.7, 0.95, 12.5) }), [
      ["first request after the deploy / the hundredth (median of 100)", "4.55 ms / 0.99 ms (1.02 ms)"],
      ["after a redeploy of mnist-infer alone", "1.70 ms / 0.95 ms (12.5 ms)"],
    ]);
    assert.deepEqual(firstRows(endToEnd), [["first request after the deploy / the hundredth (median of 100)", "4.55 ms / 0.99 ms (1.02 ms)"]], "a result written before the redeploy was measured");
  });

  it("bounds what any classifier node could reach from the floor run: cores ÷ (floor CPU per result + inference per image)", () => {
    const limits = measured(50_000, 25_000); // one thread: 40 µs per image
    const run = (throughput, nodeRed, broker, generator, batch) => ({
      run: { throughput, batch },
      cores: { nodeRed, broker, generator },
      cpuPerResult: (nodeRed + broker + generator) / throughput,
    });
    // 1 core over 10,000 results/s: 100 µs of CPU per result; 0.5 core over 50,000 images/s: 10 µs per image.
    const floor = { single: run(10_000, 0.5, 0.3, 0.2, 1), batch: run(50_000, 0.3, 0.1, 0.1, 32), singleConfirmed: run(10_000, 0.62, 0.3, 0.2, 1) };
    const rows = shareRows({ options: {}, machine: { cpus: 2 }, limits, floor });
    const text = rows.filter(Array.isArray).map((row) => `${row[0].trim()} | ${row[1]}`);
    assert.ok(text.includes("one image per envelope: floor | 10,000/s, 100 µs of CPU per result (Node-RED 50 µs, broker 30 µs, generator 20 µs)"), text.join("\n"));
    // 2 cores ÷ (100 + 40 µs) = 14,286/s, 29% of 50,000; 2 cores ÷ (10 + 40 µs) = 40,000/s, 80%.
    const most = text.filter((line) => line.startsWith("at most"));
    assert.deepEqual(most, ["at most, with inference | 14,286/s = 29% of the limit (target 25%)", "at most, with inference | 40,000/s = 80% of the limit (target 60%)"]);
    assert.ok(text.includes("the floor with the Complete node | 112 µs of CPU per result (+12 µs against the floor without it)"), text.join("\n"));
    // Pinned to one core, the same floor allows half as much.
    const pinned = shareRows({ options: { cores: 1 }, machine: { cpus: 2 }, limits, floor }).filter(Array.isArray).map((row) => row[1]);
    assert.ok(pinned.includes("7,143/s = 14% of the limit (target 25%)"), pinned.join("\n"));
  });

  it("prints the stand-in's first request after Node-RED's start, when the floor run measured it", () => {
    const run = (throughput, batch) => ({ run: { throughput, batch }, cores: { nodeRed: 0.5, broker: 0.3, generator: 0.2 }, cpuPerResult: 1 / throughput });
    const floor = { single: run(10_000, 1), batch: run(50_000, 32), singleConfirmed: run(9_000, 1) };
    const firstRow = (f) => shareRows({ options: {}, machine: { cpus: 2 }, limits: measured(50_000, 25_000), floor: f }).filter(Array.isArray).find((row) => row[0].includes("Node-RED's start"));
    assert.deepEqual(firstRow({ ...floor, firstAfterStart: { first: 3.38, hundredth: 1.03, median: 1.05, run: {} } }).slice(1), ["3.38 ms / 1.03 ms (1.05 ms)"]);
    assert.equal(firstRow(floor), undefined, "a floor result written before it was measured");
  });
});
