"use strict";
// mnist-image-source in a test flow, as the mnist-image-source*.test.js files use
// it: one source node with Catch and Complete nodes watching it, what it sent,
// raised and showed, and small folders of images to point it at.
const { before, after, afterEach } = require("node:test");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const helper = require("node-red-node-test-helper");
const sourceNode = require("../../dist/nodes/mnist-image-source/mnist-image-source.js");
const { encodeGreyPng } = require("../../dist/nodes/mnist-infer/image/png.js");
const { waitFor } = require("./wait");

helper.init(require.resolve("node-red"));

const FIXTURES = path.join(__dirname, "..", "fixtures", "source");
const DIGITS = path.join(FIXTURES, "digits");
const UNLABELLED = path.join(FIXTURES, "unlabelled");

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

/** A fresh folder `name` under `root` (a test file's scratch directory), holding `files`. */
function makeFolder(root, name, files = {}) {
  const dir = path.join(root, name);
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

/**
 * The hooks of a describe() of source tests: a Node-RED test server and a scratch
 * directory for the suite, each test's flow unloaded after it. Returns folder(name,
 * files), a fresh folder in the scratch directory, and scratch(), its path.
 */
function sourceSuite() {
  let root;
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-source-"));
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    fs.rmSync(root, { recursive: true, force: true });
  });
  afterEach(async () => {
    await helper.unload();
    helper.settings({});
  });
  return { folder: (name, files) => makeFolder(root, name, files), scratch: () => root };
}

module.exports = { helper, sourceSuite, FIXTURES, DIGITS, UNLABELLED, calls, isStatus, start, png };
