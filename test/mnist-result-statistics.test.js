"use strict";
// mnist-result's statistics after known sequences of results, as exact numbers:
// accuracy, the confusion matrix, unsure results, per-digit precision and recall,
// latency, summaries and reset.
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, stopServer, unload } = require("./support/flow");
const { start, result } = require("./support/result");
const { LatencyReservoir } = require("../dist/nodes/mnist-result/bounded-counters.js");

describe("mnist-result: statistics", () => {
  before(startServer);
  after(stopServer);
  afterEach(unload);

  it("counts accuracy, predictions and the confusion matrix exactly", async () => {
    const { send, summary } = await start();
    // [label, predicted]; the last result carries no label.
    const pairs = [[7, 7], [7, 7], [7, 1], [1, 1], [1, 7], [3, 3], [3, 3], [3, 3], [2, 8]];
    await send(...pairs.map(([label, digit]) => ({ payload: result(digit, { label }) })), { payload: result(5) });
    const stats = await summary();
    assert.equal(stats.count, 10);
    assert.equal(stats.labelled, 9);
    assert.equal(stats.correct, 6);
    assert.equal(stats.accuracy, 6 / 9);
    assert.deepEqual(stats.predictions, [0, 2, 0, 3, 0, 1, 0, 3, 1, 0]);
    const expected = Array.from({ length: 10 }, () => new Array(10).fill(0));
    for (const [label, digit] of pairs) expected[label][digit]++;
    assert.deepEqual(stats.confusion, expected);
    assert.equal(stats.confusion[7][1], 1, "rows are labels, columns predictions");
    assert.deepEqual(stats.last, { ...stats.last, digit: 5, confidence: 0.991, label: null, correct: null, id: null });
  });

  it("counts unsure results apart: how many, their share, and accuracy on the sure ones", async () => {
    const { send, summary } = await start();
    // [label, predicted, unsure]: two of five unsure, one of them wrong; the sure ones 2 of 3 right.
    const rows = [[7, 7, false], [1, 7, false], [3, 3, false], [2, 8, true], [4, 4, true]];
    await send(...rows.map(([label, digit, unsure]) => ({ payload: { ...result(digit, { label }), unsure } })), { payload: result(5) });
    const stats = await summary();
    assert.deepEqual(stats.unsure, { count: 2, share: 2 / 6, sureLabelled: 3, sureCorrect: 2, sureAccuracy: 2 / 3 });
    assert.equal(stats.accuracy, 3 / 5, "overall accuracy still counts every labelled result");
    assert.equal(stats.last.unsure, false, "a result without the flag (an older sender) counts as sure");
  });

  it("computes per-digit precision, recall and F1", async () => {
    const { send, summary } = await start();
    const pairs = [[7, 7], [7, 7], [7, 1], [1, 1], [1, 7], [3, 3], [3, 3], [3, 3], [2, 8]];
    await send(...pairs.map(([label, digit]) => ({ payload: result(digit, { label }) })), { payload: result(5) });
    const { perDigit } = await summary();
    assert.equal(perDigit.length, 10);
    const close = (a, b) => assert.ok(Math.abs(a - b) < 1e-12, `${a} ≠ ${b}`);
    // 7: predicted 3 times among labelled (2 right), labelled 3 times (2 found).
    assert.equal(perDigit[7].support, 3);
    close(perDigit[7].precision, 2 / 3);
    close(perDigit[7].recall, 2 / 3);
    close(perDigit[7].f1, 2 / 3);
    assert.deepEqual(perDigit[1], { digit: 1, support: 2, precision: 0.5, recall: 0.5, f1: 0.5 });
    assert.deepEqual(perDigit[3], { digit: 3, support: 3, precision: 1, recall: 1, f1: 1 });
    // 2 was never predicted, 8 never a label: one side is undefined, the other 0.
    assert.deepEqual(perDigit[2], { digit: 2, support: 1, precision: null, recall: 0, f1: 0 });
    assert.deepEqual(perDigit[8], { digit: 8, support: 0, precision: 0, recall: null, f1: 0 });
    // 5 was predicted only without a label: nothing is known.
    assert.deepEqual(perDigit[5], { digit: 5, support: 0, precision: null, recall: null, f1: null });
  });

  it("measures end-to-end latency from sentAt", async () => {
    const { seen, send, summary } = await start();
    const now = Date.now();
    await send(...[100, 200, 300, 400, 500].map((ago, i) => ({ payload: result(i, { sentAt: now - ago }) })));
    const latencies = seen.out.map((m) => m.result.latencyMs);
    latencies.forEach((ms, i) => assert.ok(ms >= (i + 1) * 100 && ms < (i + 1) * 100 + 200, `latency ${ms}`));
    const { latency } = await summary();
    assert.equal(latency.count, 5);
    assert.equal(latency.sampled, false);
    assert.equal(latency.p50Ms, latencies[2]);
    assert.equal(latency.p95Ms, latencies[4]);
    assert.equal(latency.p99Ms, latencies[4]);
    assert.equal(latency.maxMs, latencies[4]);
    assert.ok(Math.abs(latency.meanMs - latencies.reduce((a, b) => a + b) / 5) < 1e-9);
  });

  it("keeps latency percentiles exact up to the sample size and bounded beyond", () => {
    const reservoir = new LatencyReservoir(100);
    for (let ms = 100; ms >= 1; ms--) reservoir.add(ms);
    assert.deepEqual(reservoir.summary(), { count: 100, meanMs: 50.5, p50Ms: 50, p95Ms: 95, p99Ms: 99, maxMs: 100, sampled: false });
    for (let i = 0; i < 10000; i++) reservoir.add(50);
    const s = reservoir.summary();
    assert.equal(s.count, 10100);
    assert.equal(s.maxMs, 100);
    assert.equal(s.sampled, true);
    assert.equal(s.p50Ms, 50);
  });

  it("sends a summary on request, on the request's own message", async () => {
    const { seen, send } = await start({ summaryEvery: 0 });
    await send({ payload: result(3, { label: 3 }) }, { payload: result(2, { label: 3 }) });
    await send({ command: "summary", topic: "ask" }, { payload: "summary" }, { payload: Buffer.from(" SUMMARY\n") });
    assert.equal(seen.summary.length, 3);
    assert.equal(seen.summary[0].topic, "ask");
    for (const m of seen.summary) {
      assert.equal(m.payload.count, 2);
      assert.equal(m.payload.accuracy, 0.5);
      assert.equal(typeof m.payload.throughput.recent, "number");
      assert.ok(m.payload.throughput.overall > 0);
      assert.equal(m.payload.throughput.windowSeconds, 10);
      assert.match(m.payload.since, /^\d{4}-\d\d-\d\dT/);
    }
    assert.equal(seen.out.length, 2, "commands send nothing on output 1");
  });

  it("sends a summary every N results, and only summaries when per-result messages are off", async () => {
    const { seen, send } = await start({ summaryEvery: 3, perResult: false });
    await send(...Array.from({ length: 7 }, (_, i) => ({ payload: `tensor([${i}])` })));
    assert.equal(seen.out.length, 0);
    assert.deepEqual(seen.summary.map((m) => m.payload.count), [3, 6]);
    assert.equal(seen.completed.length, 7);
  });

  it("resets the statistics on a reset command", async () => {
    const { seen, send, summary } = await start();
    await send({ payload: result(1, { id: "x", label: 2 }) }, { payload: { error: { code: "corrupt", message: "" } } }, { payload: "junk" });
    await send({ command: "reset" });
    const cleared = seen.summary.at(-1).payload;
    assert.equal(cleared.count, 0);
    assert.equal(cleared.accuracy, null);
    assert.equal(cleared.errors.total, 0);
    assert.equal(cleared.unparseable, 0);
    assert.equal(cleared.last, null);
    assert.equal(cleared.confusion.flat().reduce((a, b) => a + b), 0);
    await send({ payload: "reset" }, { payload: result(1, { id: "x", label: 1 }) });
    const stats = await summary();
    assert.equal(stats.count, 1);
    assert.equal(stats.accuracy, 1);
    assert.equal(stats.duplicates, 0, "remembered ids are cleared too");
  });
});
