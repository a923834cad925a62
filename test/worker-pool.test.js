"use strict";
// The workers behind a shared runtime (shared-runtime.ts, pool-member.ts): on
// the native backend a second worker joins while requests wait that the first
// cannot take, and leaves once idle; losing one of two fails only the batches it
// held. Real inference with the shipped model, no Node-RED needed.
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const os = require("os");
const { loadSamples } = require("./support/samples");
const { until: untilWithin } = require("./support/replies");

// Every worker thread started from here on, so a test can make one crash.
const { workers, crash } = require("./support/worker-threads");

const { InferenceService } = require("../dist/nodes/mnist-infer/inference/inference-service.js");
const { sharedRuntimes, poolTiming } = require("../dist/nodes/mnist-infer/inference/shared-runtime.js");
const { packImages, unpackImages } = require("../dist/nodes/mnist-infer/inference/worker-protocol.js");
const { PoolMember, closeTiming, liveWorkerCount } = require("../dist/nodes/mnist-infer/inference/pool-member.js");
const { BUNDLED_MODEL } = require("../dist/nodes/shared/package-paths.js");

/** What the pool may grow to here: one worker per core, at most two. */
const CORES = os.availableParallelism?.() ?? os.cpus().length;
const POOL = Math.min(2, CORES);

/** Services a test opened, closed after it whether it passed or not. */
const open = [];

function service(options = {}) {
  return track(new InferenceService({ modelFile: BUNDLED_MODEL, backend: "auto", maxBatch: 32, queueLimit: 5000, queueBytes: 64 * 1024 * 1024, overflow: "reject-newest", maxPixels: 24e6, preview: false, ...options }));
}

function track(svc) {
  open.push(svc);
  return svc;
}

/** Waits for `test` to hold, 30 s at most by default; says whether it did. */
const until = (test, timeoutMs = 30000) => untilWithin(test, timeoutMs);

function workersOfRuntime() {
  const runtime = sharedRuntimes()[0];
  return runtime ? runtime.threadIds.length : 0;
}

/** One worker on its own, once it has loaded the shipped model; what it reports goes into `events`. */
function loadedMember(events) {
  return new Promise((resolve, reject) => {
    const member = new PoolMember(BUNDLED_MODEL, "native", {
      ready: () => resolve(member),
      loadFailed: (_, message) => reject(new Error(message)),
      batchDone: () => events.push("batch-done"),
      lost: (_, reason) => events.push(`lost: ${reason}`),
    });
  });
}

/** A batch of `count` held-out digits as a node hands it to a worker, with thresholds of 0: no second looks. */
function digitBatch(count) {
  const samples = loadSamples();
  return { images: Array.from({ length: count }, (_, i) => ({ kind: "png", bytes: samples[i % samples.length].bytes })), preview: false, lookAgainBelow: new Float64Array(count) };
}

/** `count` requests at once; each settles to { digit } or { code, message }. */
function flood(svc, samples, count) {
  return Array.from({ length: count }, (_, i) =>
    svc.classify({ kind: "bytes", bytes: samples[i % samples.length].bytes }).then(
      (p) => ({ i, digit: p.digit }),
      (err) => ({ i, code: err.code, message: err.message }),
    ),
  );
}

describe("the workers of a shared runtime", { timeout: 180000 }, () => {
  let samples;
  const savedTiming = { ...poolTiming };
  before(async () => {
    // Only digits the model gets right, so "answered correctly" is exact.
    const all = loadSamples(200);
    const reference = service();
    const digits = await Promise.all(all.map((s) => reference.classify({ kind: "bytes", bytes: s.bytes }).then((p) => p.digit)));
    await reference.close();
    samples = all.filter((s, i) => digits[i] === s.label);
    assert.ok(samples.length >= 190, `${samples.length} of 200 classified right`);
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((svc) => svc.close()));
    Object.assign(poolTiming, savedTiming);
    delete process.env.MNIST_INFER_WORKERS;
  });
  after(() => assert.equal(InferenceService.liveWorkers, 0, "no worker outlives its service"));

  it(`grows to ${POOL} worker${POOL > 1 ? "s" : ""} (this machine has ${CORES} cores) under a backlog, answers every request right, and shrinks back once idle`, async () => {
    poolTiming.idleRetireMs = 500;
    const svc = service();
    await until(() => svc.state === "ready");
    assert.equal(workersOfRuntime(), 1, "one worker while nothing waits");
    const lone = await Promise.all(flood(svc, samples, 1));
    assert.equal(lone[0].digit, samples[0].label);
    assert.equal(workersOfRuntime(), 1, "a lone request brings no second worker");
    const burst = await Promise.all(flood(svc, samples, 10));
    assert.deepEqual(burst.map((a) => a.digit), samples.slice(0, 10).map((s) => s.label));
    assert.equal(workersOfRuntime(), 1, "nor does a burst smaller than a batch");
    let most = 1;
    const watch = setInterval(() => (most = Math.max(most, workersOfRuntime())), 5);
    const answers = await Promise.all(flood(svc, samples, 3000));
    clearInterval(watch);
    assert.deepEqual(answers.filter((a) => a.code), [], "no request failed");
    assert.deepEqual(answers.filter((a) => a.digit !== samples[a.i % samples.length].label), [], "every answer is its own image's");
    assert.equal(most, POOL, `the pool grew to ${most} workers`);
    assert.ok(await until(() => workersOfRuntime() === 1 && InferenceService.liveWorkers === 1, 10000), `after the backlog: ${workersOfRuntime()} workers`);
    assert.equal(svc.stats.workerRestarts, 0, "no worker was lost");
    await svc.close();
  });

  it("MNIST_INFER_WORKERS=1 keeps one worker under the same backlog", async () => {
    process.env.MNIST_INFER_WORKERS = "1";
    const svc = service();
    await until(() => svc.state === "ready");
    let most = 1;
    const watch = setInterval(() => (most = Math.max(most, workersOfRuntime())), 5);
    const answers = await Promise.all(flood(svc, samples, 1500));
    clearInterval(watch);
    assert.equal(answers.filter((a) => a.digit === samples[a.i % samples.length].label).length, 1500);
    assert.equal(most, 1);
    await svc.close();
  });

  it("WebAssembly keeps one worker: its session runs threads of its own", async () => {
    const svc = service({ backend: "wasm" });
    await until(() => svc.state === "ready", 60000);
    let most = 1;
    const watch = setInterval(() => (most = Math.max(most, workersOfRuntime())), 5);
    const answers = await Promise.all(flood(svc, samples, 600));
    clearInterval(watch);
    assert.equal(answers.filter((a) => a.digit === samples[a.i % samples.length].label).length, 600);
    assert.equal(most, 1);
    await svc.close();
  });

  it("losing one of two workers fails only the batches it held; the node stays ready and answers the rest", { skip: POOL < 2 && "one core: the pool never has two workers" }, async () => {
    const svc = service({ queueLimit: 25000 });
    await until(() => svc.state === "ready");
    const states = [];
    svc.on("state", (state) => states.push(state));
    const first = sharedRuntimes()[0].threadIds[0];
    const pending = flood(svc, samples, 20000);
    assert.ok(await until(() => workersOfRuntime() === 2, 20000), "a second worker joined");
    const second = workers.find((w) => w.threadId === sharedRuntimes()[0].threadIds.find((id) => id !== first));
    // Once it has answered a batch it is loaded and busy: the batches sent after the crash message are its losses.
    await new Promise((resolve) => second.on("message", (m) => m.type === "batch-done" && resolve()));
    await crash(second);
    const answers = await Promise.all(pending);
    const failed = answers.filter((a) => a.code);
    for (const f of failed) {
      assert.equal(f.code, "model");
      assert.match(f.message, /the inference worker failed: .*; the request was not classified$/);
    }
    // It held at most its two batches of 32, and still had work when it crashed.
    assert.ok(failed.length > 0 && failed.length <= 64, `${failed.length} failed`);
    assert.deepEqual(answers.filter((a) => !a.code && a.digit !== samples[a.i % samples.length].label), [], "every other answer is right");
    assert.deepEqual(states, [], "the node never left ready");
    assert.equal(svc.stats.failed, failed.length);
    assert.ok(sharedRuntimes()[0].threadIds.includes(first), "the first worker carried on");
    const after = await Promise.all(flood(svc, samples, 10));
    assert.deepEqual(after.map((a) => a.digit), samples.slice(0, 10).map((s) => s.label));
    await svc.close();
  });

  it("closing a worker in the middle of a model run waits for the run instead of ending the thread there (which would abort the process)", async () => {
    const savedWait = closeTiming.waitMs;
    closeTiming.waitMs = 0; // no grace: the close goes straight to ending the thread
    try {
      const events = [];
      const member = await loadedMember(events);
      // One batch far larger than any node sends, so its run lasts a while.
      member.send(1, "owner", digitBatch(10000));
      assert.ok(await until(() => member.insideNative, 30000), "the worker started the run");
      await member.close();
      assert.deepEqual(events, [], "a closing worker reports nothing, not even the batch it finished");
      assert.equal(liveWorkerCount(), 0, "the thread has exited");
    } finally {
      closeTiming.waitMs = savedWait;
    }
  });

  it("a worker asked to close while it holds a batch finishes the batch before it releases its session, and exits cleanly", async () => {
    const failures = [];
    const member = await loadedMember([]);
    const thread = workers.find((w) => w.threadId === member.threadId);
    thread.on("error", (err) => failures.push(err.message));
    const exitCode = new Promise((resolve) => thread.once("exit", resolve));
    member.send(1, "owner", digitBatch(2000));
    await member.close(); // posted right behind the batch
    assert.deepEqual(failures, [], "the batch did not meet a released session");
    assert.equal(await exitCode, 0, "the worker exited by itself");
  });

  it("a batch crosses to the worker as one buffer of PNG bytes plus the images given as pixels, in order", () => {
    const png = (n) => ({ kind: "png", bytes: Buffer.from(Array.from({ length: n }, (_, i) => (n + i) & 255)) });
    const raw = { kind: "raw", image: { data: new Uint8Array([1, 2, 3, 4]), width: 2, height: 2, channels: 1 } };
    // Views into a larger buffer, as Buffer.from(base64) and mqtt in give them.
    const pooled = Buffer.alloc(8192, 7);
    const view = { kind: "png", bytes: pooled.subarray(100, 140) };
    const images = [png(5), raw, view, png(0), png(3)];
    const { packed, transfer } = packImages(images);
    assert.equal(packed.png.byteLength, 5 + 40 + 3, "only the images' own bytes, not the buffers behind them");
    assert.deepEqual(transfer, [packed.png.buffer, packed.ends.buffer]);
    const back = unpackImages(structuredClone(packed));
    assert.equal(back.length, 5);
    back.forEach((image, i) => {
      assert.equal(image.kind, images[i].kind, `image ${i}`);
      if (image.kind === "png") assert.deepEqual(Buffer.from(image.bytes), Buffer.from(images[i].bytes), `image ${i}'s bytes`);
      else assert.deepEqual(image.image, raw.image);
    });
  });
});
