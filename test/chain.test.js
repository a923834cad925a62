"use strict";
// The shipped example flows in a real Node-RED runtime with its own mqtt
// nodes, against a real broker: digits travel source → mnist → infer →
// result → mnist-result, and any MQTT client can use the infer flow.
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");
const { FLOW_NODES: NODES, mqttConnected, load, collect, startServer, stopServer, unload, helper } = require("./support/flow");
const { startTestBroker } = require("./support/broker");
const { connect, gather } = require("./support/mqtt-client");
const { loadSamples } = require("./support/samples");

const FLOWS = path.resolve(__dirname, "..", "flows");
const samples = loadSamples(100);

function readFlow(file) {
  return JSON.parse(fs.readFileSync(path.join(FLOWS, file), "utf8"));
}

/** The id of the one node of `type` in a flow. */
function idOf(flow, type) {
  const nodes = flow.filter((n) => n.type === type);
  assert.equal(nodes.length, 1, `one ${type} in the flow`);
  return nodes[0].id;
}

describe("example flows over MQTT", () => {
  let broker;
  let client;

  before(async () => {
    broker = await startTestBroker();
    process.env.MQTT_URL = broker.url;
    await startServer();
  });
  after(async () => {
    await stopServer();
    await broker.stop();
    delete process.env.MQTT_URL;
    delete process.env.MQTT_PROTOCOL_VERSION;
  });
  afterEach(async () => {
    if (client) await client.endAsync();
    client = undefined;
    await unload();
    delete process.env.MQTT_PROTOCOL_VERSION;
  });

  /** Deploys a shipped flow plus a "watch" helper on mnist-result's first output, and connects a client. */
  async function deployWatchingResults(file) {
    const flow = readFlow(file);
    const resultNode = flow.find((n) => n.id === idOf(flow, "mnist-result"));
    resultNode.wires[0].push("watch"); // the shipped wiring stays as it is
    flow.push({ id: "watch", type: "helper", z: flow[0].id });
    await load(NODES, flow);
    await mqttConnected(flow);
    client = await connect(broker.url);
    return flow;
  }

  it("mnist-chain.json: a burst from the source comes back through the broker as correct results with their ids", async () => {
    const flow = await deployWatchingResults("mnist-chain.json");
    // Requests and results in one subscription: every result arrives after its request. (The
    // source also runs on its interval, and sends again what Node-RED dropped before it had
    // connected, so the first 200 requests seen need not be the first 200 answered.)
    const traffic = await gather(client, "#", (m) => m.filter((x) => x.topic === "result").length >= 200);
    const seen = collect("watch", 200, 30000);
    helper.getNode(idOf(flow, "mnist-image-source")).receive({ payload: "burst", count: 200 });

    const messages = await traffic.result;
    const byId = new Map(messages.filter((m) => m.topic === "mnist").map((m) => JSON.parse(m.payload)).map((r) => [r.id, r]));
    const answers = messages.filter((m) => m.topic === "result").map((m) => JSON.parse(m.payload));
    let correct = 0;
    for (const answer of answers) {
      const request = byId.get(answer.id);
      assert.ok(request, `result ${answer.id} answers a request that was sent`);
      assert.equal(answer.label, request.label, "the result carries its request's label");
      if (answer.digit === request.label) correct++;
    }
    assert.equal(new Set(answers.map((a) => a.id)).size, answers.length, "no request answered twice");
    assert.ok(correct / answers.length >= 0.97, `accuracy ${correct}/${answers.length}`);
    const watched = await seen;
    assert.ok(watched.every((m) => m.result && typeof m.result.digit === "number"), "mnist-result read every result");
  });

  it("mnist-infer.json answers raw PNG bytes from a plain MQTT client, like the original input service", async () => {
    const flow = readFlow("mnist-infer.json");
    await load(NODES, flow);
    await mqttConnected(flow);
    client = await connect(broker.url);
    let correct = 0;
    for (const sample of samples.slice(0, 20)) {
      const reply = await gather(client, "result", (m) => m.length >= 1);
      await client.publishAsync("mnist", sample.bytes);
      const [message] = await reply.result;
      await client.unsubscribeAsync("result");
      const answer = JSON.parse(message.payload);
      assert.equal(answer.id, undefined, "a raw request has no id");
      assert.equal(answer.probabilities.length, 10);
      if (answer.digit === sample.label) correct++;
    }
    assert.ok(correct >= 19, `${correct}/20 correct`);
  });

  it("mnist-infer.json answers a batch request from any MQTT client with one reply, in order, errors in their slots", async () => {
    const flow = readFlow("mnist-infer.json");
    await load(NODES, flow);
    await mqttConnected(flow);
    client = await connect(broker.url);
    const batch = samples.slice(0, 64);
    const images = batch.map((s) => s.bytes.toString("base64"));
    images[10] = "%%% not an image %%%";
    const reply = await gather(client, "result", (m) => m.some((x) => JSON.parse(x.payload).id === "batch-1"));
    await client.publishAsync("mnist", JSON.stringify({ id: "batch-1", images, labels: batch.map((s) => s.label) }), { qos: 1 });
    const answer = (await reply.result).map((m) => JSON.parse(m.payload)).find((x) => x.id === "batch-1");
    assert.equal(answer.results.length, 64);
    assert.equal(answer.results[10].error.code, "bad-base64");
    const answered = answer.results.filter((r, i) => i !== 10);
    assert.ok(answered.every((r, i) => r.label === batch[i < 10 ? i : i + 1].label), "each result in its image's slot");
    assert.ok(answered.filter((r) => r.correct).length >= 60, "the digits are read");
  });

  it("mnist-infer.json replies on result/error to requests it cannot classify, with their ids, and keeps serving", async () => {
    const flow = readFlow("mnist-infer.json");
    await load(NODES, flow);
    await mqttConnected(flow);
    client = await connect(broker.url);
    const errors = await gather(client, "result/error", (m) => m.length >= 4);
    const results = await gather(client, "result", (m) => m.length >= 1);
    await client.publishAsync("mnist", JSON.stringify({ id: "no-image", label: 3 }));
    await client.publishAsync("mnist", JSON.stringify({ id: "bad-base64", image: "!!" }));
    await client.publishAsync("mnist", Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    await client.publishAsync("mnist", samples[0].bytes.subarray(0, 50));
    await client.publishAsync("mnist", JSON.stringify({ id: "good", image: samples[0].bytes.toString("base64") }));
    const replies = (await errors.result).map((m) => JSON.parse(m.payload));
    const byId = Object.fromEntries(replies.filter((r) => r.id).map((r) => [r.id, r.error]));
    assert.equal(byId["no-image"].code, "bad-envelope");
    assert.equal(byId["bad-base64"].code, "bad-base64");
    assert.deepEqual(replies.filter((r) => !r.id).map((r) => r.error.code).sort(), ["truncated", "unsupported"]);
    assert.ok(replies.every((r) => r.error.message.length > 20 && !/^InputError/.test(r.error.message)));
    const [good] = (await results.result).map((m) => JSON.parse(m.payload));
    assert.equal(good.id, "good");
    assert.equal(good.digit, samples[0].label);
  });

  it("mnist-infer.json on MQTT 5 replies on the request's response topic with its correlation data", async () => {
    process.env.MQTT_PROTOCOL_VERSION = "5";
    const flow = readFlow("mnist-infer.json");
    await load(NODES, flow);
    await mqttConnected(flow);
    client = await connect(broker.url, { protocolVersion: 5 });
    const replies = await gather(client, "replies/me", (m) => m.length >= 2);
    const correlationData = Buffer.from("request-17");
    const properties = { responseTopic: "replies/me", correlationData };
    await client.publishAsync("mnist", samples[1].bytes, { qos: 1, properties });
    await client.publishAsync("mnist", Buffer.from("not an image"), { qos: 1, properties: { ...properties, correlationData: Buffer.from("request-18") } });
    const messages = await replies.result;
    const answer = messages.find((m) => !JSON.parse(m.payload).error);
    const failure = messages.find((m) => JSON.parse(m.payload).error);
    assert.equal(JSON.parse(answer.payload).digit, samples[1].label);
    assert.equal(Buffer.from(answer.packet.properties.correlationData).toString(), "request-17");
    assert.equal(Buffer.from(failure.packet.properties.correlationData).toString(), "request-18");
  });

  it("mnist-output.json reads the original chain's tensor([7]) text and the JSON results", async () => {
    await deployWatchingResults("mnist-output.json");
    const seen = collect("watch", 2);
    await client.publishAsync("result", "tensor([7])");
    await client.publishAsync("result", JSON.stringify({ digit: 3, confidence: 0.9, probabilities: [0, 0, 0, 0.9, 0.1, 0, 0, 0, 0, 0], label: 3 }));
    const [legacy, modern] = await seen;
    assert.equal(legacy.result.digit, 7);
    assert.equal(modern.result.correct, true);
  });

  it("mnist-output.json routes results the model was unsure of apart, with a switch node", async () => {
    const flow = readFlow("mnist-output.json");
    const router = flow.find((n) => n.type === "switch" && n.property === "result.unsure");
    assert.ok(router, "a switch on msg.result.unsure");
    flow.push({ id: "unsure-watch", type: "helper", z: flow[0].id }, { id: "sure-watch", type: "helper", z: flow[0].id });
    router.wires[0].push("unsure-watch");
    router.wires[1].push("sure-watch");
    await load(NODES, flow);
    await mqttConnected(flow);
    client = await connect(broker.url);
    const [unsure, sure] = [collect("unsure-watch", 1), collect("sure-watch", 2)];
    const probabilities = [0.05, 0.05, 0.1, 0.3, 0.1, 0.1, 0.1, 0.05, 0.1, 0.05];
    await client.publishAsync("result", JSON.stringify({ id: "u1", digit: 3, confidence: 0.3, probabilities, unsure: true, threshold: 0.9 }));
    await client.publishAsync("result", JSON.stringify({ id: "s1", digit: 3, confidence: 0.99, probabilities, unsure: false, threshold: 0.9 }));
    await client.publishAsync("result", "tensor([7])");
    assert.deepEqual((await unsure).map((m) => m.result.id), ["u1"]);
    assert.deepEqual((await sure).map((m) => m.result.id ?? m.result.digit), ["s1", 7], "sure and legacy results go the usual way");
  });

  it("every node of the package appears in an example, and no example names an absolute path", () => {
    const files = fs.readdirSync(FLOWS).filter((f) => f.endsWith(".json"));
    const types = new Set(files.flatMap((f) => readFlow(f).map((n) => n.type)));
    for (const type of ["mnist-image-source", "mnist-infer", "mnist-result"]) assert.ok(types.has(type), type);
    for (const file of files) {
      for (const node of readFlow(file)) {
        for (const key of ["folder", "listFile", "model"]) {
          if (node[key]) assert.ok(!path.isAbsolute(node[key]) && !/^[A-Za-z]:\\/.test(node[key]), `${file}: ${node.type}.${key} is not absolute`);
        }
      }
    }
  });
});
