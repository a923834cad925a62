"use strict";
// flows/mnist-infer-shared.json on two real Node-RED processes sharing one
// Mosquitto: the broker hands each request to one of them, so every request is
// answered exactly once and both instances take part.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { SHIPPED_CONFIG } = require("../dist/scripts/broker.js");
const { startTestBroker, skipUnlessMosquitto } = require("./support/broker");
const { connect, gather } = require("./support/mqtt-client");
const { startNodeRed } = require("./support/node-red-process");
const { loadSamples } = require("./support/samples");

const samples = loadSamples();

describe("shared subscription across two Node-RED instances", { timeout: 120000 }, () => {
  let broker;
  let dir;
  const instances = [];

  before(async () => {
    // The shipped config, logging every delivery, so the test can see which client got each request.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-shared-"));
    const config = path.join(dir, "mosquitto.conf");
    fs.writeFileSync(config, `${fs.readFileSync(SHIPPED_CONFIG, "utf8")}\nlog_type all\n`);
    broker = await startTestBroker({ config, logFile: path.join(dir, "broker.log") });
  });
  after(async () => {
    await Promise.all(instances.map((nr) => nr.stop()));
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Deliveries of `topic` per client id, from the broker's log. */
  function deliveriesByClient(topic) {
    const counts = {};
    const pattern = new RegExp(`Sending PUBLISH to (\\S+) \\(.*'${topic}'`);
    for (const line of fs.readFileSync(path.join(dir, "broker.log"), "utf8").split("\n")) {
      const match = pattern.exec(line);
      if (match) counts[match[1]] = (counts[match[1]] || 0) + 1;
    }
    return counts;
  }

  it("answers every request exactly once, with work split between the instances", async (t) => {
    if (skipUnlessMosquitto(t, broker, "shared subscriptions ($share)")) return;
    instances.push(...(await Promise.all([1, 2].map(() => startNodeRed({ flow: "flows/mnist-infer-shared.json", mqttUrl: broker.url })))));
    const client = await connect(broker.url);
    try {
      const total = 400;
      const results = await gather(client, "result", (m) => m.length >= total, 30000);
      // Which instance answered is not in the contract; the broker's log says who got each request.
      for (let i = 0; i < total; i++) {
        const s = samples[i % samples.length];
        client.publish("mnist", JSON.stringify({ id: `r${i}`, label: s.label, image: s.bytes.toString("base64") }), { qos: 1 });
      }
      const answers = (await results.result).map((m) => JSON.parse(m.payload));
      // A duplicate would arrive after the 400th answer: give it a moment to show up.
      await new Promise((r) => setTimeout(r, 500));
      const ids = results.messages.map((m) => JSON.parse(m.payload).id);
      assert.equal(ids.length, total, "no request answered twice");
      assert.deepEqual([...new Set(ids)].sort(), Array.from({ length: total }, (_, i) => `r${i}`).sort(), "every request answered");
      const correct = answers.filter((a) => a.correct).length;
      assert.ok(correct / total >= 0.97, `accuracy ${correct}/${total}`);

      const counts = Object.values(deliveriesByClient("mnist"));
      console.log(`requests per instance: ${counts.join(" / ")}`);
      assert.equal(counts.length, 2, "both instances received requests");
      assert.equal(counts.reduce((a, b) => a + b, 0), total, "each request went to one instance");
    } finally {
      await client.endAsync();
    }
  });
});
