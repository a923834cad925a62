"use strict";
// The benchmark's redeploy (scripts/bench/redeploy.ts): the first request after a
// redeploy is only comparable with the hundredth if the redeploy restarts mnist-infer
// and nothing else. Checked on a real Node-RED with Mosquitto and the shipped flow.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startTestBroker } = require("./support/broker");
const { loadSamples } = require("./support/samples");
const { replyCounter, requests, settled, until } = require("./support/replies");
const { startNodeRed } = require("../dist/scripts/bench/processes.js");
const { redeployInferNodes } = require("../dist/scripts/bench/redeploy.js");

const count = (text, pattern) => text.match(pattern)?.length ?? 0;

describe("bench: redeploy of mnist-infer alone", () => {
  let broker;
  let nodeRed;
  before(async () => {
    broker = await startTestBroker();
    nodeRed = await startNodeRed("flows/mnist-infer.json", broker.url);
  });
  after(async () => {
    await nodeRed?.stop();
    await broker?.stop();
  });

  it("restarts every mnist-infer node (its model loaded again), keeps the mqtt nodes connected, and the node answers after it", async () => {
    const connections = count(nodeRed.output(), /Connected to broker/g);
    assert.equal(count(nodeRed.output(), /model \S+ loaded/g), 1);

    await redeployInferNodes(nodeRed);

    assert.equal(count(nodeRed.output(), /model \S+ loaded/g), 2, "the model was loaded again");
    assert.equal(count(nodeRed.output(), /Connected to broker/g), connections, "the mqtt nodes were not restarted");
    const { flows } = await (await fetch(`${nodeRed.editor}/flows`, { headers: { "Node-RED-API-Version": "v2" } })).json();
    const infer = flows.filter((node) => node.type === "mnist-infer");
    assert.ok(infer.length > 0 && infer.every((node) => node.name.endsWith("(redeployed)")), JSON.stringify(infer.map((node) => node.name)));

    const [sample] = loadSamples(1);
    const replies = await replyCounter(broker.url);
    try {
      replies.client.publish("mnist", requests([sample])("after-redeploy-0"));
      assert.ok(await until(() => replies.replies() > 0, 30_000), "no reply within 30 s of the request");
      await settled(replies.replies, 500);
      assert.deepEqual([...replies.answers], [["after-redeploy-0", 1]], "one result, for the request");
      assert.equal(JSON.parse(replies.bodies.get("after-redeploy-0")[0]).digit, sample.label);
    } finally {
      await replies.client.endAsync();
    }
  });

  it("says so when the flow has no mnist-infer node to redeploy, and leaves the flow as it was", async () => {
    const output = await startNodeRed("flows/mnist-output.json", broker.url, [], { ready: [/Started flows/, /Connected to broker/] });
    try {
      const before = await (await fetch(`${output.editor}/flows`, { headers: { "Node-RED-API-Version": "v2" } })).json();
      await assert.rejects(redeployInferNodes(output), /the flow has no mnist-infer node to redeploy/);
      const after = await (await fetch(`${output.editor}/flows`, { headers: { "Node-RED-API-Version": "v2" } })).json();
      assert.equal(after.rev, before.rev, "nothing was deployed");
    } finally {
      await output.stop();
    }
  });
});
