"use strict";
// The benchmark's CPU by thread (scripts/bench/processes.ts): the kernel's own
// counts per thread, so the report can say how much of each result the main
// thread and the inference workers cost (a V8 profile counts a thread busy while
// it waits for a core).
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { Worker } = require("node:worker_threads");
const os = require("node:os");
const { threadCores, threadCpuSecondsOf, waitingSecondsOf } = require("../dist/scripts/bench/processes.js");

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

  const noSchedstat = process.platform !== "linux" ? "schedstat is Linux's" : Number.isNaN(waitingSecondsOf(process.pid)) && "this kernel keeps no schedstat";
  it("counts the time the main thread waits for a core while more threads than cores are busy", { skip: noSchedstat }, async () => {
    // Two spinning workers per core and the main thread spinning too: it gets about a third of
    // a core, so it waits about 0.4 s of the 0.6 s on any number of cores.
    const spinners = 2 * os.availableParallelism();
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const workers = Array.from({ length: spinners }, () => new Worker(
      `const { parentPort, workerData } = require("node:worker_threads");
       parentPort.postMessage("spinning");
       while (Atomics.load(workerData, 0) === 0) {}`,
      { eval: true, workerData: stop },
    ));
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once("message", resolve))));
    const before = waitingSecondsOf(process.pid);
    const cpuBefore = threadCpuSecondsOf(process.pid).get(process.pid);
    const end = Date.now() + 600;
    while (Date.now() < end) {} // the main thread wants a core for 0.6 s
    const waited = waitingSecondsOf(process.pid) - before;
    const ran = threadCpuSecondsOf(process.pid).get(process.pid) - cpuBefore;
    Atomics.store(stop, 0, 1);
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once("exit", resolve))));
    assert.ok(waited > 0.1, `the main thread waited ${waited.toFixed(3)} s for a core (it ran ${ran.toFixed(2)} s of the 0.6 s)`);
    assert.ok(waited < 0.6, `it cannot wait longer than it was runnable (${waited.toFixed(3)} s)`);
  });
});
