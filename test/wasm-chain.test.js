"use strict";
// The shipped chain on a machine where onnxruntime-node is installed but its
// binding cannot load (as on Alpine, a 32-bit Raspberry Pi or an Intel Mac):
// a real Node-RED with its own mqtt nodes and a real Mosquitto, the package in
// the user folder with onnxruntime-node present but without its bin/ folder.
// mnist-infer must fall back to WebAssembly, say so, and answer as native does.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { prepareUserDir } = require("../dist/scripts/user-folder.js");
const { REPO_ROOT } = require("../dist/scripts/broker.js");
const { startTestBroker } = require("./support/broker");
const { connect, gather } = require("./support/mqtt-client");
const { startInstalledNodeRed, writeUserDirSettings } = require("./support/installed-node-red");
const { loadSamples } = require("./support/samples");

const MODULES = path.join(REPO_ROOT, "node_modules");

/**
 * A copy of the built package whose node_modules has onnxruntime-node without
 * any native binding; everything else links to the repository's own modules.
 */
function packageWithoutNativeBinding(root) {
  for (const part of ["package.json", "dist/nodes", "examples"]) fs.cpSync(path.join(REPO_ROOT, part), path.join(root, part), { recursive: true });
  fs.symlinkSync(path.join(REPO_ROOT, "models"), path.join(root, "models"), "dir");
  const modules = path.join(root, "node_modules");
  fs.mkdirSync(modules);
  for (const name of ["onnxruntime-web", "onnxruntime-common", "sharp", "@img"]) fs.symlinkSync(path.join(MODULES, name), path.join(modules, name), "dir");
  const native = path.join(modules, "onnxruntime-node");
  for (const part of ["package.json", "dist"]) fs.cpSync(path.join(MODULES, "onnxruntime-node", part), path.join(native, part), { recursive: true });
  assert.ok(!fs.existsSync(path.join(native, "bin")), "no native binding in the copy");
}

describe("the chain with onnxruntime-node's binding unloadable", { timeout: 180000 }, () => {
  let broker;
  let work;
  let nodeRed;
  let client;

  before(async () => {
    broker = await startTestBroker();
    work = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-wasm-chain-"));
    const packageRoot = path.join(work, "package");
    const userDir = path.join(work, "user");
    fs.mkdirSync(userDir);
    packageWithoutNativeBinding(packageRoot);
    prepareUserDir(userDir, packageRoot);
    writeUserDirSettings(userDir, "mnist-chain.json");
    nodeRed = await startInstalledNodeRed({ userDir, env: { MQTT_URL: broker.url, MQTT_CLIENT_ID: `mnist-wasm-chain-${process.pid}` } });
    await nodeRed.printed(/Started flows/);
    await nodeRed.printed(/model mnist-cnn loaded .* running on WebAssembly/);
    await nodeRed.printed(/Connected to broker/);
    client = await connect(broker.url);
  });

  after(async () => {
    await client?.endAsync();
    await nodeRed?.kill();
    await broker?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("falls back to WebAssembly and says why in the log", () => {
    const log = nodeRed.output();
    assert.match(log, /running on WebAssembly, several times slower than native: onnxruntime-node's binding failed to load \(Cannot find module '\.\.\/bin\/napi-v6\//);
    assert.match(log, /ONNXRUNTIME_NODE_INSTALL=skip/, "the warning says how to get native speed");
  });

  it("answers the chain's digits and any client's correctly, each result naming its backend and why", async () => {
    const samples = loadSamples(100);
    const ours = await gather(client, "result", (messages) => messages.filter((m) => String(JSON.parse(m.payload).id).startsWith("wasm-")).length >= samples.length, 30000);
    const errors = await gather(client, "result/error", (messages) => messages.some((m) => JSON.parse(m.payload).id === "wasm-bad"));
    for (const [i, sample] of samples.entries()) {
      await client.publishAsync("mnist", JSON.stringify({ id: `wasm-${i}`, label: sample.label, image: sample.bytes.toString("base64") }), { qos: 1 });
    }
    await client.publishAsync("mnist", JSON.stringify({ id: "wasm-bad", image: Buffer.from("not an image").toString("base64") }), { qos: 1 });

    const answered = (await ours.result).map((m) => JSON.parse(m.payload)).filter((r) => String(r.id).startsWith("wasm-"));
    assert.equal(new Set(answered.map((r) => r.id)).size, samples.length, "every request is answered");
    const correct = answered.filter((r) => r.correct).length;
    assert.ok(correct >= 97, `${correct} of ${samples.length} right on WebAssembly`);
    for (const result of answered) {
      assert.equal(result.model.backend, "wasm");
      assert.match(result.model.backendReason, /binding failed to load/);
    }
    const reply = (await errors.result).map((m) => JSON.parse(m.payload)).find((r) => r.id === "wasm-bad");
    assert.equal(reply.error.code, "unsupported", JSON.stringify(reply));
    // The log (and the debug sidebar) name the unnamed node by its palette label, not its raw id.
    assert.match(nodeRed.output(), /\[info\] \[mnist-infer:mnist infer\] model mnist-cnn loaded/);
  });

  it("the model panel says which backend the deployed node runs on", async () => {
    const flows = await (await fetch(`${nodeRed.editor}/flows`, { headers: { "Node-RED-API-Version": "v1" } })).json();
    const infer = flows.find((n) => n.type === "mnist-infer");
    const info = await (await fetch(`${nodeRed.editor}/mnist-infer/model-info?node=${infer.id}`)).json();
    assert.equal(info.backend.name, "wasm");
    assert.equal(info.backend.deployed, true);
    assert.match(info.backend.reason, /binding failed to load/);
  });

  it("a node set to native says plainly that native cannot run here", async () => {
    const res = await fetch(`${nodeRed.editor}/mnist-infer/model-info?backend=native`);
    assert.equal(res.status, 422);
    const { error } = await res.json();
    assert.equal(error.code, "backend");
    assert.match(error.message, /the native backend cannot run here: onnxruntime-node's binding failed to load .*choose "auto" or "WebAssembly"/);
  });
});
