"use strict";
// The benchmark's CPU by thread (scripts/bench/processes.ts): the kernel's own
// counts per thread, so the report can say how much of each result the main
// thread and the inference workers cost (a V8 profile counts a thread busy while
// it waits for a core).
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { Worker } = require("node:worker_threads");
const { threadCores, threadCpuSecondsOf } = require("../dist/scripts/bench/processes.js");

describe("bench CPU by thread", () => {
  it("splits a run into the main thread, the three busiest others, and the rest", () => {
    const before = new Map([[100, 1.0], [101, 2.0], [102, 0.5], [103, 0.1], [104, 0.0]]);
    // 105 started during the run; 103 ended (missed, as the report says).
    const after = new Map([[100, 1.5], [101, 3.0], [102, 0.7], [104, 0.05], [105, 0.4]]);
    const cores = threadCores(100, before, after, 2);
    assert.equal(cores.main, 0.25);
    assert.deepEqual(cores.busiest.map((c) => +c.toFixed(3)), [0.5, 0.2, 0.1]);
    assert.equal(+cores.rest.toFixed(3), 0.025);
  });

  it("says nothing when the process's own thread was not counted", () => {
    assert.equal(threadCores(100, new Map(), new Map([[101, 1]]), 1), undefined);
  });

  it("finds a busy worker thread's CPU apart from the main thread's", { skip: process.platform !== "linux" && "per-thread CPU is read from Linux's /proc" }, async () => {
    const before = threadCpuSecondsOf(process.pid);
    assert.ok(before.has(process.pid), "the main thread is listed by the process id");
    // A worker spends 300 ms of its own CPU, says so, and stays alive (blocked) until released.
    const release = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(
      `const { parentPort, workerData } = require("node:worker_threads");
       const end = process.cpuUsage().user + 300000; // the process's CPU: the main thread waits meanwhile
       while (process.cpuUsage().user < end) {}
       parentPort.postMessage("spun");
       Atomics.wait(workerData, 0, 0);`,
      { eval: true, workerData: release },
    );
    await new Promise((resolve) => worker.once("message", resolve));
    const after = threadCpuSecondsOf(process.pid);
    Atomics.store(release, 0, 1);
    Atomics.notify(release, 0);
    await new Promise((resolve) => worker.once("exit", resolve));
    const mainSpent = (after.get(process.pid) ?? 0) - (before.get(process.pid) ?? 0);
    const busiest = Math.max(...[...after].filter(([tid]) => tid !== process.pid).map(([tid, cpu]) => cpu - (before.get(tid) ?? 0)));
    assert.ok(busiest >= 0.2, `a thread other than the main one spent the worker's 0.3 s (busiest: ${busiest} s)`);
    assert.ok(mainSpent < busiest, `the main thread (${mainSpent} s) did not do the worker's spinning`);
  });
});
