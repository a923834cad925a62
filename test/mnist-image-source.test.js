"use strict";
// Tests of the mnist-image-source node in a Node-RED runtime: what it sends and
// when (folders and lists it reads: mnist-image-source-folders.test.js; resending
// unanswered requests: mnist-image-source-resend.test.js). Run after `npm run build`:
//   node --test test/mnist-image-source.test.js
// Nothing here asserts on timing: interval tests count and order messages only.
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { decodePng } = require("../dist/nodes/mnist-infer/image/png.js");
const { helper, sourceSuite, FIXTURES, DIGITS, UNLABELLED, calls, isStatus, start, png } = require("./support/source");
const { sleep, waitFor } = require("./support/wait");

const SAMPLES = path.join(__dirname, "..", "models", "samples");
const HAVE_SAMPLES = fs.existsSync(path.join(SAMPLES, "labels.txt"));
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const ID = /^([0-9a-f]{8})-(\d+)$/;

describe("mnist-image-source", () => {
  const { folder } = sourceSuite();

  it("loads with defaults, and clears its status on close", async () => {
    const t = await start({ name: "" });
    assert.equal(t.src.type, "mnist-image-source");
    assert.ok(isStatus(t.statuses()[0], "loading", "yellow"), "first status is loading");
    if (HAVE_SAMPLES) await t.waitStatus("running", "blue"); // interval mode starts on deploy
    else await waitFor(() => t.status().fill === "red", "a red status: the samples are not there yet");
    // The helper stops spying before it closes the nodes, so watch this node's status directly.
    const onClose = [];
    const status = t.src.status;
    t.src.status = function (s) { onClose.push(s); return status.call(this, s); };
    await helper.unload();
    assert.deepEqual(onClose, [{}], "status cleared on close");
  });

  it("sends the bundled held-out samples by default, labelled", { skip: !HAVE_SAMPLES && "models/samples/labels.txt is not there yet" }, async () => {
    const [first] = fs.readFileSync(path.join(SAMPLES, "labels.txt"), "utf8").split("\n");
    const [file, label] = first.trim().split(" ");
    const t = await start({ mode: "input" });
    await t.send({ payload: Date.now() });
    const [msg] = t.sent;
    assert.equal(msg.filename, file);
    assert.equal(msg.label, Number(label));
    assert.equal(msg.payload.label, Number(label));
    const image = decodePng(Buffer.from(msg.payload.image, "base64"));
    assert.equal(image.width, 28);
    assert.equal(image.height, 28);
  });

  it("sends the JSON envelope {id, label, image, sentAt}, with msg.id, msg.label and msg.filename", async () => {
    const t = await start({ folder: DIGITS, mode: "input" });
    await t.send({ payload: "" });
    assert.equal(t.sent.length, 1);
    const msg = t.sent[0];
    assert.deepEqual(Object.keys(msg.payload), ["id", "label", "image", "sentAt"]);
    assert.match(msg.payload.id, ID);
    assert.equal(msg.payload.label, 7);
    assert.equal(typeof msg.payload.sentAt, "number");
    const bytes = Buffer.from(msg.payload.image, "base64");
    assert.deepEqual(bytes.subarray(0, 8), PNG_SIGNATURE);
    assert.deepEqual(bytes, fs.readFileSync(path.join(DIGITS, "0000.png")));
    const image = decodePng(bytes);
    assert.equal(image.width, 28);
    assert.equal(image.height, 28);
    assert.equal(msg.id, msg.payload.id);
    assert.equal(msg.label, 7);
    assert.equal(msg.filename, "0000.png");
    assert.equal(msg.sentAt, msg.payload.sentAt);
    assert.equal(msg.topic, undefined, "msg.topic is left for the mqtt out node");
  });

  it("sends raw image bytes when Output is raw", async () => {
    const t = await start({ folder: DIGITS, mode: "input", output: "raw" });
    await t.send({});
    await t.send({});
    const [a, b] = t.sent;
    assert.ok(Buffer.isBuffer(a.payload));
    assert.deepEqual(a.payload, fs.readFileSync(path.join(DIGITS, "0000.png")));
    assert.deepEqual(b.payload, fs.readFileSync(path.join(DIGITS, "0001.png")));
    assert.equal(a.label, 7);
    assert.equal(b.label, 2);
    assert.equal(a.filename, "0000.png");
    assert.match(a.id, ID);
    assert.notEqual(a.id, b.id);
  });

  it("sends a folder's images sorted by name, unlabelled, without a list file", async () => {
    const t = await start({ folder: UNLABELLED, mode: "burst", burstCount: 10, loop: false });
    await t.send({});
    assert.deepEqual(t.names(), ["1.png", "2.png", "10.png", "b.JPG"]);
    for (const msg of t.sent) {
      assert.equal("label" in msg, false);
      assert.equal("label" in msg.payload, false);
    }
    assert.deepEqual(t.warnings(), [], "the default list file may be absent");
  });

  it("resolves a relative folder against the Node-RED user directory", async () => {
    helper.settings({ userDir: FIXTURES });
    const t = await start({ folder: "digits", listFile: "labels.txt", mode: "input" });
    await t.send({});
    assert.equal(t.sent[0].filename, "0000.png");
    assert.equal(t.sent[0].label, 7);
  });

  it("sends one image per interval, in order, with ids of one run", async () => {
    const t = await start({ folder: DIGITS, interval: 20 });
    await waitFor(() => t.sent.length >= 4, "4 messages");
    assert.deepEqual(t.names().slice(0, 4), ["0000.png", "0001.png", "0002.png", "0003.png"]);
    const ids = t.sent.slice(0, 4).map((msg) => ID.exec(msg.id));
    assert.ok(ids.every(Boolean), "ids look like <run>-<n>");
    assert.deepEqual(ids.map((m) => Number(m[2])), [1, 2, 3, 4]);
    assert.equal(new Set(ids.map((m) => m[1])).size, 1);
    await t.waitStatus("running", "blue");
  });

  it("sends the next image on each input message", async () => {
    const t = await start({ folder: DIGITS, mode: "input" });
    await t.send({ payload: 1 });
    await t.send({ payload: "hello" });
    await t.send({ topic: "x" });
    assert.deepEqual(t.names(), ["0000.png", "0001.png", "0002.png"]);
    assert.deepEqual(t.sent.map((msg) => msg.label), [7, 2, 1]);
    assert.ok(t.sent.every((msg) => msg.topic === undefined), "nothing of the trigger is copied");
    await t.waitStatus("ready", "green");
  });

  it("sends a burst of N, or msg.count, looping over the list", async () => {
    const t = await start({ folder: DIGITS, mode: "burst", burstCount: 3 });
    await t.send({});
    assert.equal(t.sent.length, 3, "burst of 3 complete before the input is completed");
    await t.send({ command: "burst", count: 7 });
    assert.equal(t.sent.length, 10);
    assert.deepEqual(t.names().slice(3), ["0003.png", "0004.png", "0000.png", "0001.png", "0002.png", "0003.png", "0004.png"]);
    assert.equal(new Set(t.sent.map((msg) => msg.id)).size, 10, "ids stay unique across loop passes");
  });

  it("gives way to the event loop during a large burst", async () => {
    const t = await start({ folder: DIGITS, mode: "burst", burstCount: 5000 });
    await t.waitStatus("ready", "green");
    let sendsWhenTimerRan;
    setTimeout(() => { sendsWhenTimerRan = calls(t.src, "send").length; }, 1);
    await t.send({});
    assert.equal(t.sent.length, 5000);
    assert.ok(sendsWhenTimerRan < 5000, `a timer ran during the burst (after ${sendsWhenTimerRan} sends)`);
  });

  it("shuffles in an order the seed decides", async () => {
    const dir = folder("twenty");
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(dir, `${i}.png`), png(i));
    async function order(config) {
      const t = await start({ folder: dir, mode: "burst", burstCount: 20, loop: false, ...config });
      await t.send({});
      const first = t.names();
      await t.send({ command: "reset" });
      await t.send({});
      assert.deepEqual(t.names().slice(20), first, "reset replays the same order");
      await helper.unload();
      return first;
    }
    const plain = await order({ shuffle: false });
    const a = await order({ shuffle: true, seed: "42" });
    const b = await order({ shuffle: true, seed: "42" });
    const c = await order({ shuffle: true, seed: "43" });
    assert.deepEqual(plain, Array.from({ length: 20 }, (_, i) => `${i}.png`));
    assert.deepEqual(a, b, "same seed, same order");
    assert.notDeepEqual(a, plain, "shuffled differs from the list order");
    assert.notDeepEqual(a, c, "another seed, another order");
    assert.deepEqual([...a].sort(), [...plain].sort(), "every image exactly once");
  });

  it("stops after Limit images with a done status", async () => {
    const t = await start({ folder: DIGITS, interval: 20, limit: 3 });
    await t.waitStatus("done", "grey");
    await sleep(100);
    assert.equal(t.sent.length, 3);
    assert.ok(calls(t.src, "log").some((text) => String(text).includes("log.done")), "logs that it stopped");
  });

  it("stops at the end of the list when not looping, and stays done until reset", async () => {
    const t = await start({ folder: DIGITS, mode: "burst", burstCount: 12, loop: false });
    await t.send({});
    assert.equal(t.sent.length, 5);
    await t.waitStatus("done", "grey");
    await t.send({});
    await t.send({ command: "next" });
    assert.equal(t.sent.length, 5, "nothing more after the end");
    await t.send({ command: "reset" });
    await t.send({ command: "next" });
    assert.equal(t.sent.at(-1).filename, "0000.png");
  });

  it("obeys start, stop, reset and next (msg.command or a string payload)", async () => {
    const t = await start({ folder: DIGITS, interval: 20, autoStart: false });
    await t.waitStatus("ready", "green");
    await t.send({ command: "next" });
    await sleep(100);
    assert.equal(t.sent.length, 1, "not started: only the message asked for");

    await t.send({ payload: "start" });
    await waitFor(() => t.sent.length >= 4, "messages after start");
    await t.waitStatus("running", "blue");

    await t.send({ payload: " STOP " });
    await t.waitStatus("stopped", "grey");
    const stoppedAt = t.sent.length;
    await sleep(100);
    assert.equal(t.sent.length, stoppedAt, "nothing after stop");

    const firstRun = ID.exec(t.sent[0].id)[1];
    await t.send({ command: "reset" });
    await t.waitStatus("ready", "green");
    await t.send({ command: "start" });
    await waitFor(() => t.sent.length > stoppedAt, "a message after reset and start");
    const msg = t.sent[stoppedAt];
    assert.equal(msg.filename, "0000.png", "reset goes back to the first image");
    const [, run, n] = ID.exec(msg.id);
    assert.equal(n, "1");
    assert.notEqual(run, firstRun, "a new run after reset: ids stay unique");
  });

  it("refuses an unknown command or a bad msg.count through Catch", async () => {
    const t = await start({ folder: DIGITS, mode: "input" });
    await t.send({ command: "pause" });
    await t.send({ command: "burst", count: -1 });
    await t.send({ command: "burst", count: "lots" });
    assert.equal(t.sent.length, 0);
    assert.deepEqual(t.caught.map((msg) => msg.error.message.replace(/^Error: /, "")), [
      "mnist-image-source.errors.unknown-command",
      "mnist-image-source.errors.bad-count",
      "mnist-image-source.errors.bad-count",
    ]);
    await t.send({ command: "burst", count: "2" });
    assert.equal(t.sent.length, 2);
  });

  it("stop ends a burst in progress", async () => {
    const t = await start({ folder: DIGITS, mode: "burst", burstCount: 1_000_000 });
    await t.waitStatus("ready", "green");
    t.src.receive({});
    await waitFor(() => t.sent.length > 0, "the burst to begin");
    await t.send({ command: "stop" });
    await waitFor(() => t.completed.length >= 2, "the burst to end");
    const count = t.sent.length;
    await sleep(50);
    assert.ok(count < 1_000_000);
    assert.equal(t.sent.length, count, "nothing after stop");
    await t.waitStatus("stopped", "grey");
  });
});
