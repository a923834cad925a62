"use strict";
// Tests of the mnist-image-source node in a Node-RED runtime (resending unanswered
// requests: mnist-image-source-resend.test.js). Run after `npm run build`:
//   node --test test/mnist-image-source.test.js
// Nothing here asserts on timing: interval tests count and order messages only.
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const helper = require("node-red-node-test-helper");
const sourceNode = require("../dist/nodes/mnist-image-source/mnist-image-source.js");
const { decodePng, encodeGreyPng } = require("../dist/nodes/mnist-infer/image/png.js");
const { sleep, waitFor } = require("./support/wait");

helper.init(require.resolve("node-red"));

const FIXTURES = path.join(__dirname, "fixtures", "source");
const DIGITS = path.join(FIXTURES, "digits");
const UNLABELLED = path.join(FIXTURES, "unlabelled");
const SAMPLES = path.join(__dirname, "..", "models", "samples");
const HAVE_SAMPLES = fs.existsSync(path.join(SAMPLES, "labels.txt"));
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const ID = /^([0-9a-f]{8})-(\d+)$/;

// ---- helpers ---------------------------------------------------------------

/** Arguments of the calls the node made to one of its methods (the helper spies on them). */
function calls(node, method) {
  return node[method].getCalls().filter((call) => call.thisValue === node).map((call) => call.args[0]);
}

/**
 * True when a status shows the given locale key in the given colour. The test
 * helper's RED._ returns keys untranslated, and long keys are cut with "…".
 */
function isStatus(status, key, fill) {
  if (!status || status.fill !== fill || typeof status.text !== "string") return false;
  const full = `mnist-image-source.status.${key}`;
  if (status.text.startsWith(full)) return true;
  return status.text.endsWith("…") && full.startsWith(status.text.slice(0, -1));
}

/** Loads one source node wired to a collecting helper, with Catch and Complete nodes watching it. */
async function start(config) {
  const flow = [
    { id: "f1", type: "tab" },
    { id: "src", z: "f1", type: "mnist-image-source", wires: [["out"]], ...config },
    { id: "out", z: "f1", type: "helper" },
    { id: "catch", z: "f1", type: "catch", scope: ["src"], uncaught: false, wires: [["caught"]] },
    { id: "caught", z: "f1", type: "helper" },
    { id: "complete", z: "f1", type: "complete", scope: ["src"], wires: [["completed"]] },
    { id: "completed", z: "f1", type: "helper" },
  ];
  // Nodes on a tab need a position, or the runtime takes them for config nodes.
  await helper.load(sourceNode, flow.map((n, i) => (n.type === "tab" ? n : { x: 100, y: 40 * i, ...n })));
  const src = helper.getNode("src");
  const t = {
    src,
    sent: [],
    caught: [],
    completed: [],
    errors: () => calls(src, "error").map(String),
    warnings: () => calls(src, "warn").map(String),
    statuses: () => calls(src, "status"),
    status: () => calls(src, "status").at(-1),
    names: () => t.sent.map((msg) => msg.filename),
    /** Sends a message to the node and waits until it is completed or caught. */
    async send(msg) {
      const before = t.completed.length + t.caught.length;
      src.receive(msg);
      await waitFor(() => t.completed.length + t.caught.length > before, `the node to finish ${JSON.stringify(msg)}`);
    },
    waitStatus: (key, fill) => waitFor(() => isStatus(t.status(), key, fill), `status ${key} (${fill}); last was ${JSON.stringify(t.status())}`),
  };
  helper.getNode("out").on("input", (msg) => t.sent.push(msg));
  helper.getNode("caught").on("input", (msg) => t.caught.push(msg));
  helper.getNode("completed").on("input", (msg) => t.completed.push(msg));
  return t;
}

let scratch;
/** A fresh folder under the test's scratch directory. */
function folder(name, files = {}) {
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const [file, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), content);
  return dir;
}

/** A 28×28 greyscale PNG with a bar whose position depends on k, so files differ. */
function png(k) {
  const pixels = new Uint8Array(784);
  for (let y = 4; y < 24; y++) for (let x = 2 + (k % 20); x < 6 + (k % 20); x++) pixels[y * 28 + x] = 255;
  return encodeGreyPng(pixels, 28, 28);
}

// ---- tests -----------------------------------------------------------------

describe("mnist-image-source", () => {
  before(async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-source-"));
    await helper.startServer();
  });

  after(async () => {
    await helper.stopServer();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  afterEach(async () => {
    await helper.unload();
    helper.settings({});
  });

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

  it("reads a custom folder with a list file in the list's order", async () => {
    const dir = folder("custom", { "a.png": png(1), "b.png": png(2), "c.png": png(3), "mylabels.txt": "c.png 3\na.png 1\n\n# comment\n" });
    const t = await start({ folder: dir, listFile: "mylabels.txt", mode: "burst", burstCount: 10, loop: false });
    await t.send({});
    assert.deepEqual(t.names(), ["c.png", "a.png"]);
    assert.deepEqual(t.sent.map((msg) => msg.label), [3, 1]);
    assert.deepEqual(t.errors(), []);
  });

  it("warns when a configured list file is missing, and sends unlabelled", async () => {
    const t = await start({ folder: UNLABELLED, listFile: "missing.txt", mode: "input" });
    await t.send({});
    assert.equal(t.sent[0].filename, "1.png");
    assert.equal(t.sent[0].label, undefined);
    assert.deepEqual(t.warnings(), ["mnist-image-source.warnings.no-list"]);
  });

  it("reports a missing folder clearly, refuses messages, and recovers on reset", async () => {
    helper.settings({ userDir: scratch });
    const t = await start({ folder: "later", mode: "input" });
    await t.waitStatus("no-folder", "red");
    const [error] = t.errors();
    assert.match(error, /folder not found: .*later; expected a folder of image files ending in \.png/);
    assert.match(error, /errors\.relative/, "says relative folders are resolved against the user directory");

    await t.send({});
    assert.equal(t.sent.length, 0);
    assert.equal(t.caught.length, 1, "the message ends in an error a Catch node sees");
    assert.match(t.caught[0].error.message, /folder not found/);

    folder("later", { "x.png": png(0) });
    await t.send({ command: "reset" });
    await t.send({});
    assert.equal(t.sent[0].filename, "x.png");
  });

  it("starts its timer once a reset finds the folder that was missing at deploy", async () => {
    const dir = path.join(scratch, "arrives-later");
    const t = await start({ folder: dir, interval: 20 });
    await t.waitStatus("no-folder", "red");
    folder("arrives-later", { "x.png": png(0) });
    await t.send({ command: "reset" });
    await waitFor(() => t.sent.length >= 2, "messages after the reset");
    await t.waitStatus("running", "blue");
  });

  it("reports a folder without images", async () => {
    const t = await start({ folder: folder("empty", { "readme.md": "no images" }), mode: "input" });
    await t.waitStatus("no-images", "red");
    assert.match(t.errors()[0], /no image files in .*empty; expected image files ending in/);
  });

  it("skips malformed list lines with an error, and sends the good ones", async () => {
    const dir = folder("malformed", {
      "0.png": png(0),
      "1.png": png(1),
      "2.png": png(2),
      "3.png": png(3),
      "labels.txt": "0.png 7\njust-a-name\n1.png seven\n2.png 3\n3.png 12\nnot-here.png 4\nnotes.txt 1\n",
    });
    const t = await start({ folder: dir, mode: "burst", burstCount: 10, loop: false });
    await t.send({});
    assert.deepEqual(t.names(), ["0.png", "2.png"]);
    assert.deepEqual(t.sent.map((msg) => msg.label), [7, 3]);
    const errors = t.errors();
    assert.equal(errors.length, 5);
    assert.match(errors[0], /labels\.txt line 2: "just-a-name" is not of the form "<file> <digit>", for example "0\.png 7"; line skipped/);
    assert.match(errors[1], /line 3: the label "seven" is not a digit 0–9/);
    assert.match(errors[2], /line 5: the label "12" is not a digit 0–9/);
    assert.match(errors[3], /line 6: "not-here\.png" is not in /);
    assert.match(errors[4], /line 7: "notes\.txt" is not an image file/);
    await t.waitStatus("done", "grey");
    assert.match(t.status().text, /skipped|…/, "the status counts what was skipped");
  });

  it("skips files that cannot be read or are not images, reporting each once", async () => {
    const dir = folder("unreadable", { "0.png": png(0), "fake.png": "this is text", "z.png": png(3) });
    fs.symlinkSync(path.join(dir, "does-not-exist.png"), path.join(dir, "gone.png"));
    const t = await start({ folder: dir, mode: "burst", burstCount: 6 });
    await t.send({});
    assert.deepEqual(t.names(), ["0.png", "z.png", "0.png", "z.png", "0.png", "z.png"]);
    const errors = t.errors();
    assert.equal(errors.length, 2, `each bad file reported once: ${errors.join(" | ")}`);
    assert.match(errors[0], /fake\.png is not an image: its content is not PNG, JPEG/);
    assert.match(errors[1], /cannot read gone\.png \(it no longer exists\); skipped/);
  });

  it("fails clearly when no image in the folder can be read", async () => {
    const dir = folder("all-bad", { "a.png": "text", "b.png": "" });
    const t = await start({ folder: dir, mode: "input" });
    await t.send({});
    assert.equal(t.sent.length, 0);
    await t.waitStatus("none-readable", "red");
    assert.equal(t.caught.length, 0, "the first message only finds out");
    await t.send({});
    assert.equal(t.caught.length, 1, "later messages are refused");
    assert.ok(t.errors().some((e) => e.includes("b.png is empty")));
  });

  it("rejects list entries outside the folder", async () => {
    folder("escape", { "outside.png": png(9) });
    const dir = folder("escape/inner", {
      "0.png": png(0),
      "labels.txt": "../outside.png 1\n/etc/passwd.png 2\nsub/../0.png 5\n0.png 4\n",
    });
    const t = await start({ folder: dir, mode: "burst", burstCount: 10, loop: false });
    await t.send({});
    assert.deepEqual(t.names(), ["0.png", "0.png"]);
    assert.deepEqual(t.sent.map((msg) => msg.label), [5, 4]);
    const errors = t.errors();
    assert.equal(errors.length, 2);
    assert.match(errors[0], /line 1: "\.\.\/outside\.png" is outside the folder; list entries must name files inside/);
    assert.match(errors[1], /line 2: "\/etc\/passwd\.png" is outside the folder/);
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

  it("with Resend unanswered on, sends a request again with the same id until its answer comes in, and gives up after N", async () => {
    // Timeouts of 50 ms, but nothing is asserted on time: only on what was sent, in what order.
    const t = await start({ folder: DIGITS, mode: "input", resendAfter: "0.05", resendTimes: "2" });
    await t.send({});
    const [first] = t.sent;
    await waitFor(() => t.sent.length >= 2, "the first resend");
    assert.equal(t.sent[1].id, first.id);
    assert.equal(t.sent[1].attempt, 2);
    assert.deepEqual(t.sent[1].payload, first.payload, "the same envelope: same id, label, image and sentAt");
    // The answer as mqtt in hands it over: a Buffer of JSON. It is taken, and triggers nothing.
    await t.send({ topic: "result", payload: Buffer.from(JSON.stringify({ digit: 7, confidence: 0.99, id: first.id, label: 7 })) });
    const answeredAt = t.sent.length;
    assert.ok(t.sent.slice(1).every((msg) => msg.id === first.id), "the answer sent no new image");
    // A second request that nobody answers: sent twice more, then given up.
    await t.send({});
    const second = t.sent.at(-1);
    assert.notEqual(second.id, first.id);
    await waitFor(() => t.warnings().some((w) => w === "mnist-image-source.answers.report") && t.sent.filter((m) => m.id === second.id).length === 3,
      "the second request sent again twice and given up", 20000);
    assert.deepEqual(t.sent.filter((m) => m.id === second.id).map((m) => m.attempt), [undefined, 2, 3]);
    // By the time the second was given up, many ticks had passed: the answered first was never sent again.
    assert.equal(t.sent.filter((m) => m.id === first.id).length, answeredAt);
    assert.ok(!t.warnings().includes("mnist-image-source.answers.never-answered"), "answers were wired: no such warning");
  });

  it("with Resend unanswered off (the palette's default), answers are ordinary messages and nothing is sent again", async () => {
    const t = await start({ folder: DIGITS, mode: "input" });
    await t.send({});
    await t.send({ payload: { digit: 7, id: t.sent[0].id } });
    assert.equal(t.sent.length, 2, "a plain trigger, as before");
    assert.deepEqual(t.warnings(), []);
  });

  it("skips a symbolic link that leads out of the folder, counting it as skipped; links inside the folder work", async () => {
    const outside = folder("secrets", { "secret.png": png(9) });
    const dir = folder("linked", { "0.png": png(0) });
    fs.symlinkSync(path.join(outside, "secret.png"), path.join(dir, "1.png"));
    fs.symlinkSync(path.join(dir, "0.png"), path.join(dir, "2.png")); // inside: fine
    const t = await start({ folder: dir, mode: "burst", burstCount: 6 });
    await t.send({});
    assert.deepEqual(t.names(), ["0.png", "2.png", "0.png", "2.png", "0.png", "2.png"]);
    const errors = t.errors();
    assert.equal(errors.length, 1, errors.join(" | "));
    assert.match(errors[0], /cannot read 1\.png \(it is a link to a file outside the folder, which is not followed\); skipped/);
    assert.ok(!errors[0].includes(scratch), "no absolute path in the error");
    await waitFor(() => /skipped|…/.test(t.status().text), "the status counts the skipped file");

    // A folder that is itself a link is read where it leads; a list file linked from outside is not read.
    fs.symlinkSync(dir, path.join(scratch, "via-link"));
    fs.writeFileSync(path.join(outside, "labels.txt"), "0.png 5\n");
    fs.symlinkSync(path.join(outside, "labels.txt"), path.join(dir, "labels.txt"));
    await helper.unload();
    const u = await start({ folder: path.join(scratch, "via-link"), mode: "input" });
    await u.send({});
    assert.equal(u.sent[0].filename, "0.png");
    assert.equal(u.sent[0].label, undefined, "the outside list was not used");
    assert.match(u.errors()[0], /cannot read the list file labels\.txt \(it is a link to a file outside the folder/);
  });

  it("skips an image file over the size limit before reading it, and a list entry escaping through a linked sub-folder", async () => {
    const outside = folder("elsewhere", { "x.png": png(4) });
    const big = Buffer.concat([png(1), Buffer.alloc(4096)]); // a PNG with trailing bytes: valid, but 4 kB too big
    const dir = folder("sizes", { "small.png": png(0), "big.png": big, "labels.txt": "small.png 0\nbig.png 1\nsub/x.png 4\n" });
    fs.symlinkSync(outside, path.join(dir, "sub"));
    const t = await start({ folder: dir, mode: "burst", burstCount: 3, maxFileSize: String(2048 / 1024 / 1024) });
    await t.send({});
    assert.deepEqual(t.names(), ["small.png", "small.png", "small.png"]);
    const errors = t.errors();
    assert.equal(errors.length, 2, errors.join(" | "));
    assert.match(errors[0], /cannot read big\.png \(it is over the 0\.002 MB limit\); skipped\. Expected an image file of at most 0\.002 MB/);
    assert.match(errors[1], /cannot read sub\/x\.png \(it is a link to a file outside the folder/);
    assert.ok(errors.every((e) => !e.includes(scratch)), "no absolute path in the errors");

    await helper.unload();
    const u = await start({ folder: dir, mode: "burst", burstCount: 2, loop: false });
    await u.send({});
    assert.deepEqual(u.names(), ["small.png", "big.png"], "under the default 5 MB the same file is sent");
  });

  it("does not read a list file over 8 MB: the images go unlabelled, and the error says why", async () => {
    const dir = folder("huge-list", { "0.png": png(0) });
    const line = "0.png 7\n";
    fs.writeFileSync(path.join(dir, "labels.txt"), line.repeat(Math.ceil((8 * 1024 * 1024 + 1) / line.length)));
    const t = await start({ folder: dir, mode: "input" });
    await t.send({});
    assert.equal(t.sent[0].filename, "0.png");
    assert.equal(t.sent[0].label, undefined);
    assert.match(t.errors()[0], /^cannot read the list file labels\.txt \(it is over the 8 MB limit\); the images are sent unlabelled$/);
  });

  it("warns that resending needs the envelope output when set with raw bytes", async () => {
    const t = await start({ folder: DIGITS, mode: "input", output: "raw", resendAfter: "5" });
    await t.send({});
    assert.deepEqual(t.warnings(), ["mnist-image-source.answers.raw"]);
    await t.send({ payload: { digit: 7, id: t.sent[0].id } });
    assert.equal(t.sent.length, 2, "without resending, an answer is an ordinary trigger");
  });

  it("names a missing relative folder as configured, never by its absolute path", async () => {
    helper.settings({ userDir: scratch });
    const t = await start({ folder: "not/there", mode: "input" });
    await t.waitStatus("no-folder", "red");
    assert.match(t.errors()[0], /^folder not found: not\/there; expected/);
    assert.ok(!t.errors()[0].includes(scratch));
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

// ---- end-to-end at-least-once: requests sent again until answered ------------
