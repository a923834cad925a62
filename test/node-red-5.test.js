"use strict";
// The package on Node-RED 5, which runs on Node 22: Node-RED 5's own command
// line, with its own Node, loads the package from a user folder and runs the
// shipped chain flow end to end over Mosquitto. MNIST_NODE_RED_5 names a
// folder where `npm install node@22 node-red@5` was run (.ci/run makes one);
// without it the test is skipped, except in CI.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { prepareUserDir } = require("../dist/scripts/user-folder.js");
const { startTestBroker } = require("./support/broker");
const { startInstalledNodeRed, writeUserDirSettings } = require("./support/installed-node-red");
const { connect, gather } = require("./support/mqtt-client");
const { loadSamples } = require("./support/samples");

const PREFIX = process.env.MNIST_NODE_RED_5;
const SETUP = "dir=$(mktemp -d) && npm install --prefix \"$dir\" --no-save node@22 node-red@5 && MNIST_NODE_RED_5=$dir npm test";

function skipReason() {
  if (!PREFIX) {
    if (process.env.CI) throw new Error(`MNIST_NODE_RED_5 is not set: CI must test Node-RED 5 (${SETUP})`);
    return `set MNIST_NODE_RED_5 to a folder with Node-RED 5 and Node 22 to run these (${SETUP})`;
  }
  for (const file of ["node_modules/.bin/node", "node_modules/node-red/red.js"]) {
    if (!fs.existsSync(path.join(PREFIX, file))) throw new Error(`MNIST_NODE_RED_5=${PREFIX} has no ${file} (${SETUP})`);
  }
  return undefined;
}
const skip = skipReason();

describe("on Node-RED 5 and Node 22", { skip: skip ?? false, timeout: 180000 }, () => {
  let broker;
  let userDir;
  let nodeRed;
  let editor;
  let client;

  const node22 = () => path.join(PREFIX, "node_modules", ".bin", "node");

  before(async () => {
    broker = await startTestBroker();
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-node-red-5-"));
    // The package installed as a user installs it (here: linked), and the shipped chain as the flow file.
    prepareUserDir(userDir);
    writeUserDirSettings(userDir, "mnist-chain.json");
    nodeRed = await startInstalledNodeRed({
      userDir,
      nodeBinary: node22(),
      redJs: path.join(PREFIX, "node_modules", "node-red", "red.js"),
      env: { MQTT_URL: broker.url, MQTT_CLIENT_ID: `mnist-node-red-5-${process.pid}` },
    });
    editor = nodeRed.editor;
    await nodeRed.printed(/Started flows/);
    await nodeRed.printed(/model mnist-cnn loaded/);
    await nodeRed.printed(/Connected to broker/);
    client = await connect(broker.url);
  });

  after(async () => {
    await client?.endAsync();
    await nodeRed?.kill();
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
    await broker?.stop();
  });

  it("is Node-RED 5 on Node 22", () => {
    assert.match(execFileSync(node22(), ["--version"], { encoding: "utf8" }), /^v22\./);
    assert.match(nodeRed.output(), /Node-RED version: v5\./);
    assert.match(nodeRed.output(), /Node\.js {2}version: v22\./);
  });

  it("loads the three nodes, their editor files, icons, locales and examples", async () => {
    const json = { headers: { accept: "application/json" } };
    const nodes = await (await fetch(`${editor}/nodes`, json)).json();
    const sets = nodes.filter((set) => set.module === "node-red-contrib-mnist");
    assert.deepEqual(sets.map((set) => [set.name, set.enabled, set.err]).sort(), [
      ["mnist-image-source", true, undefined],
      ["mnist-infer", true, undefined],
      ["mnist-result", true, undefined],
    ]);
    const html = await (await fetch(`${editor}/nodes`, { headers: { accept: "text/html" } })).text();
    for (const type of ["mnist-image-source", "mnist-infer", "mnist-result"]) {
      assert.match(html, new RegExp(`data-template-name="${type}"`));
      assert.match(html, new RegExp(`data-help-name="${type}"`));
      const icon = await fetch(`${editor}/icons/node-red-contrib-mnist/${type}.svg`);
      assert.equal(icon.status, 200, `${type} icon`);
    }
    const zh = await (await fetch(`${editor}/nodes/messages?lng=zh-CN`, json)).json();
    assert.equal(zh["node-red-contrib-mnist/mnist-infer"].palette.label.machine_learning, "机器学习");
    const examples = await (await fetch(`${editor}/library/examples/flows/node-red-contrib-mnist`, json)).json();
    assert.ok(JSON.stringify(examples).includes("mnist-dashboard"), "Import → Examples lists the package's flows");
  });

  it("answers the model-info button", async () => {
    const info = await (await fetch(`${editor}/mnist-infer/model-info`)).json();
    assert.deepEqual(info.input.shape, ["batch", 1, 28, 28]);
    assert.equal(info.card.heldOutAccuracy, require("../models/mnist-cnn.json").heldOutAccuracy, "the model card's figure");
  });

  it("runs the chain end to end: the source's digits and any client's come back classified, bad ones as error replies", async () => {
    // The flow's own image source sends a digit every 500 ms through the broker.
    const fromSource = await gather(client, "result", (messages) => messages.filter((m) => /^[0-9a-f]{8}-/.test(JSON.parse(m.payload).id ?? "")).length >= 4);
    const results = (await fromSource.result).map((m) => JSON.parse(m.payload));
    assert.ok(results.every((r) => typeof r.digit === "number" && r.probabilities.length === 10));

    // Any MQTT client: 50 labelled held-out digits and one corrupt image.
    const samples = loadSamples(50);
    const ours = await gather(client, "result", (messages) => messages.filter((m) => String(JSON.parse(m.payload).id).startsWith("nr5-")).length >= samples.length, 30000);
    const errors = await gather(client, "result/error", (messages) => messages.some((m) => JSON.parse(m.payload).id === "nr5-bad"));
    for (const [i, sample] of samples.entries()) {
      await client.publishAsync("mnist", JSON.stringify({ id: `nr5-${i}`, label: sample.label, image: sample.bytes.toString("base64"), sentAt: Date.now() }), { qos: 1 });
    }
    await client.publishAsync("mnist", JSON.stringify({ id: "nr5-bad", image: Buffer.from("not an image").toString("base64") }), { qos: 1 });
    const answered = (await ours.result).map((m) => JSON.parse(m.payload)).filter((r) => String(r.id).startsWith("nr5-"));
    const correct = answered.filter((r) => r.correct).length;
    assert.equal(new Set(answered.map((r) => r.id)).size, samples.length, "every request is answered");
    assert.ok(correct >= 48, `${correct} of ${samples.length} digits right on Node-RED 5`);
    const reply = (await errors.result).map((m) => JSON.parse(m.payload)).find((r) => r.id === "nr5-bad");
    assert.ok(["corrupt", "unsupported"].includes(reply.error.code), JSON.stringify(reply));
  });

  it("stops cleanly on Ctrl-C", async () => {
    nodeRed.child.kill("SIGINT");
    const [code] = await nodeRed.exited;
    assert.equal(code, 0, nodeRed.output().slice(-2000));
    assert.match(nodeRed.output(), /Stopped flows/);
  });
});
