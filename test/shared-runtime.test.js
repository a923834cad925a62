"use strict";
// Many mnist-infer nodes, one runtime: nodes on the same model file and backend
// setting share one worker thread and ONNX session, each keeping its own queue;
// the worker takes their batches in turn. Checked in a Node-RED runtime with ten
// such nodes (and one node each on another backend and another model file), and
// in real Node-RED processes running 1 and 10 copies of flows/mnist-infer.json.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const mqtt = require("mqtt");
const { helper, load, statusOf, startServer, stopServer, unload } = require("./support/flow");
const { loadSamples } = require("./support/samples");
const { until: untilWithin } = require("./support/replies");
const { startTestBroker } = require("./support/broker");
const { startNodeRed } = require("./support/node-red-process");

const inferNode = require("../dist/nodes/mnist-infer/mnist-infer.js");
const catchNode = require("@node-red/nodes/core/common/25-catch.js");
const { InferenceService } = require("../dist/nodes/mnist-infer/inference/inference-service.js");
const { sharedRuntimes } = require("../dist/nodes/mnist-infer/inference/shared-runtime.js");
const { BUNDLED_MODEL } = require("../dist/nodes/shared/package-paths.js");

// Every worker thread started from here on, so a test can make one crash.
const { workers, crash } = require("./support/worker-threads");

/** Held-out digits the shipped model classifies right (it gets about 1 in 100 wrong): "answers correctly" is then exact. */
let samples = loadSamples(100);
const TEN = Array.from({ length: 10 }, (_, i) => `n${i}`);
/** The node option the fairness bound is stated in (the default). */
const MAX_BATCH = 32;
/** Batches each shared worker holds at once, and how many workers a runtime may grow to here (shared-runtime.ts). */
const MAX_IN_FLIGHT = 2;
const POOL = Math.min(2, os.availableParallelism?.() ?? os.cpus().length);

/** Ten nodes on the shipped model, one on WebAssembly, one on a copy of the model; each wired to its own output. */
function flow(inferIds = [...TEN, "n-wasm", "n-copy"]) {
  const nodes = [
    { id: "t1", type: "tab", label: "shared runtime" },
    { id: "n-catch", type: "catch", z: "t1", scope: null, uncaught: false, wires: [["errors"]] },
    { id: "errors", type: "helper", z: "t1" },
  ];
  for (const id of [...TEN, "n-wasm", "n-copy"]) {
    nodes.push({ id: `out-${id}`, type: "helper", z: "t1" });
    if (!inferIds.includes(id)) continue;
    const own = id === "n-wasm" ? { backend: "wasm" } : id === "n-copy" ? { model: "copy.onnx" } : {};
    nodes.push({ id, type: "mnist-infer", z: "t1", maxBatch: MAX_BATCH, queueSize: 1000, wires: [[`out-${id}`]], ...own });
  }
  return nodes;
}

/** Every answer and error as it arrives, in one sequence: { node, id, digit } or { node, id, error }. */
function recorder(ids) {
  const seen = [];
  for (const id of ids) helper.getNode(`out-${id}`).on("input", (msg) => seen.push({ node: id, id: msg.id, digit: msg.payload.digit }));
  helper.getNode("errors").on("input", (msg) => seen.push({ node: msg.error.source.id, id: msg.id, error: msg.error.message }));
  return seen;
}

/** Waits for `test` to hold, 30 s at most by default; says whether it did. */
const until = (test, timeoutMs = 30000) => untilWithin(test, timeoutMs);

/** Deploys the flow with only `inferIds` as the editor's "modified nodes" deploy does; resolves once it has stopped the removed and started the rest. */
async function deployOnly(inferIds) {
  const started = new Promise((resolve) => helper._events.once("flows:started", resolve));
  await helper._redNodes.setFlows(flow(inferIds), {}, "nodes");
  await started;
}

describe("many mnist-infer nodes, one runtime (in a Node-RED runtime)", { timeout: 180000 }, () => {
  let userDir;
  before(async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-shared-"));
    fs.copyFileSync(BUNDLED_MODEL, path.join(userDir, "copy.onnx"));
    helper.settings({ userDir });
    const reference = new InferenceService({ modelFile: BUNDLED_MODEL, backend: "auto", maxBatch: 32, queueLimit: 1000, queueBytes: 64 * 1024 * 1024, overflow: "reject-newest", maxPixels: 24e6, preview: false });
    const digits = await Promise.all(samples.map((s) => reference.classify({ kind: "bytes", bytes: s.bytes }).then((p) => p.digit)));
    await reference.close();
    samples = samples.filter((s, i) => digits[i] === s.label);
    assert.ok(samples.length >= 90, `${samples.length} of 100 classified right`);
    await startServer();
    await load([inferNode, catchNode], flow());
    for (const id of [...TEN, "n-wasm", "n-copy"]) await statusOf(id, "green", 60000);
  });
  after(async () => {
    await unload();
    await stopServer();
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it("ten nodes on one model share one worker; a node on another backend and one on another model file have their own", () => {
    assert.equal(InferenceService.liveWorkers, 3, "one worker for the ten, one for WebAssembly, one for the copy");
    const runtimes = sharedRuntimes().map((r) => ({ file: path.basename(r.modelFile), backend: r.backend, nodes: r.nodes }));
    assert.deepEqual(runtimes.sort((a, b) => b.nodes - a.nodes || a.backend.localeCompare(b.backend)), [
      { file: "mnist-cnn.onnx", backend: "auto", nodes: 10 },
      { file: "copy.onnx", backend: "auto", nodes: 1 },
      { file: "mnist-cnn.onnx", backend: "wasm", nodes: 1 },
    ]);
  });

  it("every node answers its own requests correctly, on its own backend", async () => {
    const ids = [...TEN, "n-wasm", "n-copy"];
    const seen = recorder(ids);
    const backends = new Map();
    for (const id of ids) helper.getNode(`out-${id}`).on("input", (msg) => backends.set(id, msg.payload.model.backend));
    ids.forEach((id, k) => {
      for (let j = 0; j < 5; j++) helper.getNode(id).receive({ payload: samples[k * 5 + j].bytes, id: `${id}-${j}` });
    });
    assert.ok(await until(() => seen.length >= ids.length * 5), `${seen.length} of ${ids.length * 5} answered`);
    assert.deepEqual(seen.filter((s) => s.error), [], "no errors");
    ids.forEach((id, k) => {
      const mine = seen.filter((s) => s.node === id).sort((a, b) => a.id.localeCompare(b.id));
      assert.deepEqual(mine.map((s) => s.digit), samples.slice(k * 5, k * 5 + 5).map((s) => s.label), `${id}'s answers`);
    });
    assert.equal(backends.get("n-wasm"), "wasm");
    assert.equal(backends.get("n0"), "native");
  });

  it("a flood into one node does not hold up the others: their lone requests are answered within a few batches", async () => {
    const flood = 900;
    const lone = ["n1", "n2", "n3"];
    const seen = recorder(["n0", ...lone]);
    for (let i = 0; i < flood; i++) helper.getNode("n0").receive({ payload: samples[i % samples.length].bytes, id: `f${i}` });
    // Sent after the whole flood: a single queue would answer them after all 900.
    for (const id of lone) helper.getNode(id).receive({ payload: samples[0].bytes, id: `lone-${id}` });
    assert.ok(await until(() => seen.length >= flood + lone.length, 120000), `${seen.length} of ${flood + lone.length} answered`);
    assert.deepEqual(seen.filter((s) => s.error), [], "no errors (the flood fits the queue)");
    const floodBefore = (id) => seen.slice(0, seen.findIndex((s) => s.id === `lone-${id}`)).filter((s) => s.node === "n0").length;
    const counts = lone.map(floodBefore);
    // In the workers' turns, a lone request waits at most for the batches already in flight and one batch of each other node.
    const bound = (MAX_IN_FLIGHT * POOL + lone.length) * MAX_BATCH;
    for (const [k, id] of lone.entries()) {
      assert.ok(counts[k] <= bound, `${id}'s request was answered after ${counts[k]} of the flood's ${flood} (at most ${bound})`);
      assert.equal(seen.find((s) => s.id === `lone-${id}`).digit, samples[0].label);
    }
    console.log(`lone requests answered after ${counts.join(", ")} of ${flood} flooded requests (bound ${bound})`);
  });

  it("a crash of the shared worker reaches all ten nodes, which restart it once and answer again", async () => {
    const shared = sharedRuntimes().find((r) => r.nodes === 10);
    const others = sharedRuntimes().filter((r) => r.nodes !== 10).map((r) => r.threadId);
    const restarting = TEN.map((id) => statusOf(id, (s) => /restarting/.test(s.text)));
    // All of its workers (the flood above may have brought a second one; losing one of two is worker-pool.test.js's).
    await Promise.all(shared.threadIds.map((threadId) => crash(workers.find((w) => w.threadId === threadId))));
    await Promise.all(restarting);
    await Promise.all(TEN.map((id) => statusOf(id, "green")));
    assert.equal(InferenceService.liveWorkers, 3, `one new worker for the ten: ${JSON.stringify(sharedRuntimes())} before ${JSON.stringify(shared)}`);
    assert.deepEqual(sharedRuntimes().filter((r) => r.nodes !== 10).map((r) => r.threadId), others, "the other runtimes kept theirs");
    assert.ok(!shared.threadIds.includes(sharedRuntimes().find((r) => r.nodes === 10).threadId), "the ten have a new worker");
    const seen = recorder(TEN);
    TEN.forEach((id, k) => helper.getNode(id).receive({ payload: samples[k].bytes, id: `again-${id}` }));
    assert.ok(await until(() => seen.length >= 10), `${seen.length} of 10 answered after the restart`);
    for (const [k, id] of TEN.entries()) assert.equal(seen.find((s) => s.node === id).digit, samples[k].label, id);
    for (const id of TEN) {
      const stats = (await helper.request().get(`/mnist-infer/${id}/stats`).expect(200)).body;
      assert.equal(stats.workerRestarts, 1, `${id} counted the restart`);
    }
  });

  it("closing the ten nodes one by one ends their worker only with the last; the others keep answering", async () => {
    let running = [...TEN, "n-wasm", "n-copy"];
    for (const id of [...TEN].reverse()) {
      running = running.filter((r) => r !== id);
      await deployOnly(running);
      const left = running.filter((r) => TEN.includes(r));
      assert.equal(InferenceService.liveWorkers, left.length > 0 ? 3 : 2, `after closing ${id}: ${left.length} of the ten remain`);
      if (left.length === 0) break;
      await statusOf(left[0], "green");
      const seen = recorder([left[0]]);
      helper.getNode(left[0]).receive({ payload: samples[7].bytes, id: `after-${id}` });
      assert.ok(await until(() => seen.length > 0), `${left[0]} answers after ${id} closed`);
      assert.equal(seen[0].digit, samples[7].label);
    }
    assert.deepEqual(sharedRuntimes().map((r) => r.nodes), [1, 1], "the WebAssembly node and the copy's keep theirs");
    await unload();
    assert.equal(InferenceService.liveWorkers, 0, "no worker outlives its nodes");
  });
});

describe("a model that fails to load, shared", { timeout: 60000 }, () => {
  let userDir;
  before(async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-shared-bad-"));
    fs.writeFileSync(path.join(userDir, "bogus.onnx"), "this is not a model");
    helper.settings({ userDir });
    await startServer();
  });
  after(async () => {
    await unload();
    await stopServer();
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it("every node on it fails with the reason, from one worker's attempt", async () => {
    const ids = ["n0", "n1", "n2"];
    const startedBefore = workers.length;
    await load([inferNode, catchNode], flow(ids).map((n) => (n.type === "mnist-infer" ? { ...n, model: "bogus.onnx" } : n)));
    await Promise.all(ids.map((id) => statusOf(id, "red")));
    assert.equal(workers.length - startedBefore, 1, "one worker tried to load it for the three nodes");
    assert.ok(await until(() => InferenceService.liveWorkers === 0), "no thread is kept for a model that cannot load");
    const seen = recorder(ids);
    for (const id of ids) helper.getNode(id).receive({ payload: samples[0].bytes, id: `bad-${id}` });
    assert.ok(await until(() => seen.length >= ids.length));
    for (const id of ids) assert.match(seen.find((s) => s.node === id).error ?? "", /bogus\.onnx is not a loadable ONNX model/, id);
    await unload();
    assert.equal(InferenceService.liveWorkers, 0);
  });
});

/** `copies` copies of flows/mnist-infer.json, each on its own tab, topics mnist/<i> → result/<i>, MQTT session mnist-infer-<i>. */
function inferTabs(copies) {
  const text = fs.readFileSync(path.join(__dirname, "..", "flows", "mnist-infer.json"), "utf8");
  const ids = JSON.parse(text).map((node) => node.id);
  return Array.from({ length: copies }, (_, i) => {
    const nodes = JSON.parse(ids.reduce((copy, id) => copy.split(`"${id}"`).join(`"${id}-${i}"`), text));
    const tab = nodes.find((node) => node.type === "tab");
    tab.label += ` ${i}`;
    const own = { MNIST_REQUEST_TOPIC: `mnist/${i}`, MNIST_RESULT_TOPIC: `result/${i}`, MNIST_ERROR_TOPIC: `result/${i}/error`, MQTT_CLIENT_ID: `mnist-infer-${i}-${process.pid}` };
    for (const variable of tab.env) if (own[variable.name]) Object.assign(variable, { type: "str", value: own[variable.name] });
    return nodes;
  }).flat();
}

/** VmRSS (MB) and thread count of a process, from /proc. */
function processInfo(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return { rssMb: Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 102.4) / 10, threads: Number(/Threads:\s+(\d+)/.exec(status)[1]) };
}

describe("a Node-RED process running 1 and 10 copies of flows/mnist-infer.json", { timeout: 240000 }, () => {
  let broker;
  let dir;
  before(async () => {
    broker = await startTestBroker();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-tabs-"));
  });
  after(async () => {
    await broker?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Starts Node-RED on `copies` tabs, has every tab classify 10 digits, and returns the process's figures once settled. */
  async function run(copies) {
    const file = path.join(dir, `tabs-${copies}.json`);
    fs.writeFileSync(file, JSON.stringify(inferTabs(copies)));
    const loaded = new RegExp(`(model \\S+ loaded[\\s\\S]*){${copies}}`);
    const nr = await startNodeRed({ flow: file, mqttUrl: broker.url, ready: [/Started flows/, loaded, /Connected to broker/], readyTimeoutMs: 120000 });
    const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    try {
      const answers = new Map();
      client.on("message", (topic, payload) => answers.set(`${topic} ${JSON.parse(payload).id}`, JSON.parse(payload)));
      await client.subscribeAsync("result/#", { qos: 1 });
      // Every tab's mqtt in subscribed: each answers a probe.
      const probed = async (i) => {
        for (let attempt = 0; attempt < 100 && !answers.has(`result/${i} probe`); attempt++) {
          await client.publishAsync(`mnist/${i}`, JSON.stringify({ id: "probe", image: samples[0].bytes.toString("base64") }), { qos: 1 });
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      for (let i = 0; i < copies; i++) await probed(i);
      for (let i = 0; i < copies; i++) {
        for (let j = 0; j < 10; j++) client.publish(`mnist/${i}`, JSON.stringify({ id: `d${j}`, image: samples[j].bytes.toString("base64") }), { qos: 1 });
      }
      const want = copies * 11;
      const deadline = Date.now() + 60000;
      while (answers.size < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(answers.size, want, `${answers.size} of ${want} answered`);
      for (let i = 0; i < copies; i++) {
        for (let j = 0; j < 10; j++) assert.equal(answers.get(`result/${i} d${j}`).digit, samples[j].label, `tab ${i}, digit ${j}`);
      }
      await new Promise((r) => setTimeout(r, 2000));
      return processInfo(nr.pid);
    } finally {
      await client.endAsync();
      await nr.stop();
    }
  }

  it("ten tabs answer correctly, with no thread and little memory more than one", async () => {
    const one = await run(1);
    const ten = await run(10);
    const perNode = Math.round(((ten.rssMb - one.rssMb) / 9) * 10) / 10;
    console.log(`1 copy: ${one.rssMb} MB, ${one.threads} threads; 10 copies: ${ten.rssMb} MB, ${ten.threads} threads (${perNode} MB per extra node)`);
    // One worker per node would add its thread each: nine more.
    assert.ok(ten.threads <= one.threads + 1, `threads ${one.threads} → ${ten.threads}`);
    // One session per node added about 15 MB each; RSS wanders a few MB from run to run.
    assert.ok(perNode <= 5, `each extra node added ${perNode} MB`);
  });
});
