"use strict";
// The inference service's queue with the shipped model: its byte budget (a
// queue of decoded photos must not grow to gigabytes) and drop-oldest reaching
// requests that are still being decoded.
const { describe, it, before, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const sharp = require("sharp");
const { InferenceService } = require("../dist/nodes/mnist-infer/inference/inference-service.js");
const { BUNDLED_MODEL } = require("../dist/nodes/shared/package-paths.js");
const { loadSamples } = require("./support/samples");

const samples = loadSamples(10);
const MB = 1024 * 1024;

function service(options) {
  return new InferenceService({ modelFile: BUNDLED_MODEL, maxBatch: 32, queueLimit: 1000, queueBytes: 64 * MB, overflow: "reject-newest", maxPixels: 24e6, preview: false, ...options });
}

/** Every request's outcome, in order: its digit, or its error's code and message. */
function outcomes(promises) {
  return Promise.all(promises.map((p) => p.then((r) => ({ digit: r.digit }), (err) => ({ code: err.code, message: err.message }))));
}

describe("inference service: the queue's byte budget and overflow", { timeout: 60000 }, () => {
  /** The samples as 512×512 colour photos: 786,432 bytes each once decoded, as a phone picture becomes. */
  let photos;
  let pixels;
  let current;
  before(async () => {
    photos = await Promise.all(samples.map((s) => sharp(s.bytes).resize(512, 512).toColourspace("srgb").jpeg({ quality: 90 }).toBuffer()));
    pixels = await Promise.all(
      samples.map(async (s) => {
        const { data, info } = await sharp(s.bytes).resize(512, 512).toColourspace("srgb").removeAlpha().raw().toBuffer({ resolveWithObject: true });
        return { kind: "pixels", image: { data: new Uint8Array(data), width: info.width, height: info.height, channels: info.channels } };
      }),
    );
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });

  it("reject-newest: the queue takes photos up to its memory, refuses the rest with a reason, and classifies what it took", async () => {
    current = service({ queueBytes: 2 * MB });
    assert.equal(pixels[0].image.data.byteLength, 786432);
    // All ten arrive before the model has loaded: they wait in the queue.
    const results = outcomes(pixels.map((p) => current.classify(p)));
    assert.equal(current.backlog, 2, "two photos (1.5 MB) fit in 2 MB, a third would not");
    assert.ok(current.backlogBytes <= 2 * MB);
    const done = await results;
    assert.deepEqual(done.slice(0, 2).map((o) => o.digit), [samples[0].label, samples[1].label]);
    for (const o of done.slice(2)) {
      assert.equal(o.code, "queue-full");
      assert.match(o.message, /^rejected: the queue is full \(2 MB of images waiting\)/);
    }
    assert.equal(current.stats.accepted + current.stats.rejected, 10);
    assert.equal(current.stats.rejected, 8);
  });

  it("drop-oldest: the newest photos that fit stay, the oldest make room", async () => {
    current = service({ queueBytes: 2 * MB, overflow: "drop-oldest" });
    const results = outcomes(pixels.map((p) => current.classify(p)));
    assert.equal(current.backlog, 2);
    const done = await results;
    for (const o of done.slice(0, 8)) assert.match(o.message ?? "", /^dropped: the queue was full \(2 MB of images\)/);
    assert.deepEqual(done.slice(8).map((o) => o.digit), [samples[8].label, samples[9].label]);
    assert.equal(current.stats.dropped, 8);
  });

  it("a photo is counted at the size it will have once decoded, so none is decoded only to be refused", async () => {
    current = service({ queueBytes: 2 * MB });
    assert.ok(photos.every((p) => p.length < 64 * 1024), "encoded, each is well under the budget");
    const results = outcomes(photos.map((bytes) => current.classify({ kind: "bytes", bytes })));
    assert.equal(current.backlog, 2, "1 MB reserved for each photo (512×512, up to 4 channels): two fit in 2 MB");
    const done = await results;
    assert.deepEqual(done.slice(0, 2).map((o) => o.digit), [samples[0].label, samples[1].label]);
    for (const o of done.slice(2)) assert.match(o.message ?? "", /^rejected: the queue is full \(2 MB of images waiting\)/);
    assert.equal(current.stats.accepted, 2);
    assert.equal(current.stats.rejected, 8);
  });

  it("MNIST-sized PNGs are counted at their own size: a thousand fit in well under a megabyte", async () => {
    current = service({ queueBytes: 1 * MB });
    const pngs = Array.from({ length: 1000 }, (_, i) => samples[i % samples.length].bytes);
    const results = outcomes(pngs.map((bytes) => current.classify({ kind: "bytes", bytes })));
    assert.equal(current.backlog, 1000);
    assert.ok(current.backlogBytes < 1 * MB, `${current.backlogBytes} bytes`);
    const done = await results;
    assert.equal(done.filter((o) => o.digit !== undefined).length, 1000);
  });

  it("drop-oldest also drops requests still being decoded: the newest ones are classified", async () => {
    current = service({ queueLimit: 3, overflow: "drop-oldest" });
    // Six JPEGs in one go: all six start decoding (on sharp's thread pool) before any is done.
    const results = outcomes(photos.slice(0, 6).map((bytes) => current.classify({ kind: "bytes", bytes })));
    assert.equal(current.backlog, 3, "never more than the queue size, counting those still decoding");
    const done = await results;
    for (const o of done.slice(0, 3)) assert.match(o.message ?? "", /^dropped: the queue was full \(3 requests\)/);
    assert.deepEqual(done.slice(3).map((o) => o.digit), samples.slice(3, 6).map((s) => s.label));
    assert.equal(current.stats.dropped, 3);
    assert.equal(current.stats.failed, 0, "a dropped request is counted once, as dropped");
  });

  it("the node's rehearsal (its own warm-up request) is classified, counted nowhere, and takes no request's place", async () => {
    current = service({ queueLimit: 1 });
    await new Promise((resolve) => current.once("state", resolve));
    assert.equal(current.state, "ready");
    const rehearsal = current.rehearse({ kind: "bytes", bytes: samples[0].bytes });
    // The queue holds one request: the rehearsal must not be the one it holds.
    const request = current.classify({ kind: "bytes", bytes: samples[1].bytes });
    const [rehearsed, answered] = await Promise.all([rehearsal, request]);
    assert.deepEqual([rehearsed.digit, answered.digit], [samples[0].label, samples[1].label]);
    const { accepted, completed, rejected, failed, batches, largestBatch } = current.stats;
    assert.deepEqual({ accepted, completed, rejected, failed, batches, largestBatch }, { accepted: 1, completed: 1, rejected: 0, failed: 0, batches: 1, largestBatch: 1 });
    assert.deepEqual([current.backlog, current.backlogBytes], [0, 0]);
  });

  it("a rehearsal already in the worker lets no extra request into the queue: a queue of 2 holds 2", async () => {
    current = service({ queueLimit: 2 });
    await new Promise((resolve) => current.once("state", resolve));
    // Hand the rehearsal to the worker: it has left the decoding list and the queue, and its answer has
    // not been read yet (answers are read between turns of the event loop, never inside the calls below).
    for (let attempt = 0; ; attempt++) {
      assert.ok(attempt < 20, "the rehearsal was never seen in the worker");
      let answered = false;
      const rehearsal = current.rehearse({ kind: "bytes", bytes: samples[0].bytes }).finally(() => (answered = true));
      while (current.queue.length > 0 || current.decoding.length > 0) await new Promise(setImmediate);
      if (answered) continue;
      const requests = outcomes(samples.slice(1, 4).map((s) => current.classify({ kind: "bytes", bytes: s.bytes })));
      assert.equal(current.backlog, 2, "two requests wait; the rehearsal in the worker is no request");
      const done = await requests;
      await rehearsal;
      assert.deepEqual(done.slice(0, 2).map((o) => o.digit), [samples[1].label, samples[2].label]);
      assert.match(done[2].message ?? "", /^rejected: the queue is full \(2 requests waiting\)/);
      assert.deepEqual([current.stats.accepted, current.stats.rejected], [2, 1]);
      return;
    }
  });

  it("images queued in one turn leave together: a lone 32-image batch request on an idle node is one batch of 32", async () => {
    current = service({});
    await new Promise((resolve) => current.once("state", resolve));
    const images = Array.from({ length: 32 }, (_, i) => samples[i % samples.length]);
    // As classifyBatch queues a batch request: one classify() per image, in the same turn.
    const predictions = await Promise.all(images.map((s) => current.classify({ kind: "bytes", bytes: s.bytes })));
    assert.deepEqual(predictions.map((p) => p.digit), images.map((s) => s.label));
    assert.deepEqual([current.stats.batches, current.stats.largestBatch], [1, 32], "not the first image alone, then the rest");
    assert.ok(predictions.every((p) => p.timings.batchSize === 32));
  });

  it("a PNG refused by its header is refused at once, counted as taken and failed, and holds no place in the queue", async () => {
    current = service({ maxPixels: 10000 });
    await new Promise((resolve) => current.once("state", resolve));
    const big = Buffer.from(samples[0].bytes);
    big.writeUInt32BE(2000, 16); // the header now says 2000 × 28 pixels
    const truncated = samples[1].bytes.subarray(0, 20);
    const refused = [current.classify({ kind: "bytes", bytes: big }), current.classify({ kind: "bytes", bytes: truncated })];
    // Nothing waits for them, not even for a turn of the event loop.
    assert.equal(current.backlog, 0);
    assert.equal(current.backlogBytes, 0);
    const done = await outcomes([...refused, current.classify({ kind: "bytes", bytes: samples[2].bytes })]);
    assert.equal(done[0].code, "too-large");
    assert.match(done[0].message, /2000×28 pixels, over the limit of 10000 pixels/);
    assert.equal(done[1].code, "truncated");
    assert.deepEqual(done[2], { digit: samples[2].label });
    assert.deepEqual([current.stats.accepted, current.stats.failed, current.stats.completed], [3, 2, 1]);
  });
});
