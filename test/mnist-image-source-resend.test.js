"use strict";
// mnist-image-source's "Resend unanswered": the answer wait on a fake clock, the
// setting in a Node-RED runtime, and the example chain over MQTT, where requests an
// inference instance took with it when it died are sent again. Run after `npm run build`:
//   node --test test/mnist-image-source-resend.test.js
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { AnswerWait, answerIn } = require("../dist/nodes/mnist-image-source/answers.js");
const { sourceSuite, DIGITS, start } = require("./support/source");
const { waitFor } = require("./support/wait");

/** An AnswerWait on a hand-driven clock, recording what it sent again and reported. */
function answerWait(options = {}) {
  let now = 0;
  const resent = [];
  const reports = [];
  const events = [];
  const w = new AnswerWait({
    timeoutMs: 1000,
    maxResends: 3,
    copy: (msg) => structuredClone(msg),
    resend: (copy) => resent.push(copy),
    onReport: (since, totals) => reports.push({ since, totals }),
    onNeverAnswered: () => events.push("never-answered"),
    now: () => now,
    timer: false,
    ...options,
  });
  const request = (id, image = "aGVsbG8=") => {
    const msg = { id, payload: { id, label: 7, image, sentAt: 1234 } };
    w.wait(msg);
    return msg;
  };
  const advance = (ms) => {
    now += ms;
    w.tick();
  };
  return { w, request, advance, resent, reports, events };
}

describe("mnist-image-source: resend unanswered (AnswerWait, on a fake clock)", () => {
  it("sends a request again after the timeout, with the same id and payload, until it is answered; then never again", () => {
    const { w, request, advance, resent } = answerWait();
    const a = request("r-1");
    advance(999);
    assert.equal(resent.length, 0, "not before the timeout");
    advance(1);
    assert.equal(resent.length, 1);
    assert.equal(resent[0].id, "r-1");
    assert.deepEqual(resent[0].payload, a.payload, "byte for byte the first request: same id, same sentAt");
    assert.equal(resent[0].attempt, 2);
    assert.notEqual(resent[0], a, "a copy is sent");
    advance(1000);
    assert.deepEqual(resent.map((m) => m.attempt), [2, 3]);
    assert.equal(w.answered({ id: "r-1" }), true);
    advance(60_000);
    assert.equal(resent.length, 2, "an answered request is never sent again");
    assert.deepEqual(w.stats, { answered: 1, resent: 2, givenUp: 0, waiting: 0, waitingBytes: 0 });
  });

  it("gives up after N resends, and reports what it sent again and gave up", () => {
    const { w, request, advance, resent, reports, events } = answerWait({ maxResends: 2 });
    request("lost");
    request("found");
    w.answered({ id: "found" });
    for (let i = 0; i < 5; i++) advance(1000);
    assert.deepEqual(resent.map((m) => [m.id, m.attempt]), [["lost", 2], ["lost", 3]]);
    assert.equal(w.stats.givenUp, 1);
    assert.equal(w.stats.waiting, 0);
    assert.deepEqual(events, [], "answers did come back: no warning that none ever does");
    // Reports at most every 10 s, and once more when nothing is left waiting.
    assert.deepEqual(reports.map((r) => r.since), [{ resent: 1, givenUp: 0 }, { resent: 1, givenUp: 1 }]);
    assert.equal(reports.at(-1).totals.givenUp, 1);
    assert.equal(w.answered({ id: "lost" }), false, "a late answer to a request given up is ignored");
  });

  it("warns once when requests are given up and no answer ever came back", () => {
    const { request, advance, events } = answerWait({ maxResends: 1 });
    request("a");
    request("b");
    advance(1000);
    assert.deepEqual(events, [], "sent again: an answer may still come (a model loading)");
    advance(1000);
    assert.deepEqual(events, ["never-answered"]);
  });

  it("an error reply that means 'not now' keeps the request waiting; any other error reply answers it", () => {
    const { w, request, advance, resent } = answerWait();
    request("busy");
    request("bad");
    assert.equal(w.answered({ id: "busy", code: "queue-full" }), true);
    assert.equal(w.answered({ id: "bad", code: "bad-base64" }), true);
    advance(1000);
    assert.deepEqual(resent.map((m) => m.id), ["busy"], "the queue-full one is tried again, the bad one is not");
    w.answered({ id: "busy" });
    assert.equal(w.stats.waiting, 0);
  });

  it("ids are compared as text: an answer with id 7 answers the request \"7\"", () => {
    const { w, request, advance, resent } = answerWait();
    request("7");
    w.answered(answerIn({ payload: { id: 7, digit: 1 } }));
    advance(5000);
    assert.equal(resent.length, 0);
  });

  it("keeps a bounded number of waiting requests, and bytes of them: the oldest are given up", () => {
    const { w, request, advance, resent } = answerWait({ limit: 100 });
    for (let i = 0; i < 1000; i++) request(`n-${i}`);
    assert.equal(w.stats.waiting, 100);
    assert.equal(w.stats.givenUp, 900);
    advance(1000);
    assert.deepEqual(resent.map((m) => m.id), Array.from({ length: 100 }, (_, i) => `n-${900 + i}`), "the newest 100 are kept");

    const big = answerWait({ limitBytes: 10_000 });
    for (let i = 0; i < 50; i++) big.request(`b-${i}`, "x".repeat(1000));
    assert.ok(big.w.stats.waitingBytes <= 10_000, `bytes held ${big.w.stats.waitingBytes}`);
    assert.ok(big.w.stats.waiting >= 5 && big.w.stats.waiting < 10, `${big.w.stats.waiting} waiting`);
    for (let i = 0; i < 50; i++) big.w.answered({ id: `b-${i}` });
    assert.deepEqual([big.w.stats.waiting, big.w.stats.waitingBytes], [0, 0]);
  });

  it("reads answers as mqtt in and mnist-result hand them over, and nothing else", () => {
    const result = { digit: 7, confidence: 0.99, id: "a-1", label: 7 };
    assert.deepEqual(answerIn({ payload: Buffer.from(JSON.stringify(result)) }), { id: "a-1" });
    assert.deepEqual(answerIn({ payload: ` ${JSON.stringify(result)}` }), { id: "a-1" });
    assert.deepEqual(answerIn({ payload: result }), { id: "a-1" });
    assert.deepEqual(answerIn({ payload: "7 (99.0%) ✓ label 7", result }), { id: "a-1" }, "mnist-result's output");
    assert.deepEqual(answerIn({ payload: Buffer.from('{"error":{"code":"queue-full","message":"…"},"id":3}') }), { id: "3", code: "queue-full" });
    assert.equal(answerIn({ payload: { id: "a-1", label: 7, image: "…", sentAt: 1 } }), undefined, "a request is not an answer");
    assert.equal(answerIn({ payload: { digit: 7 } }), undefined, "no id: nobody's answer");
    assert.equal(answerIn({ payload: "start" }), undefined);
    assert.equal(answerIn({ payload: Buffer.from("{not json") }), undefined);
    assert.equal(answerIn({ payload: 12 }), undefined);
  });
});


// ---- the node's Resend unanswered setting, in a Node-RED runtime ------------

describe("mnist-image-source: Resend unanswered in a Node-RED runtime", () => {
  sourceSuite();

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

  it("warns that resending needs the envelope output when set with raw bytes", async () => {
    const t = await start({ folder: DIGITS, mode: "input", output: "raw", resendAfter: "5" });
    await t.send({});
    assert.deepEqual(t.warnings(), ["mnist-image-source.answers.raw"]);
    await t.send({ payload: { digit: 7, id: t.sent[0].id } });
    assert.equal(t.sent.length, 2, "without resending, an answer is an ordinary trigger");
  });
});

// ---- the example chain flow: requests an inference instance lost are sent again --

describe("mnist-image-source in flows/mnist-chain.json over MQTT", () => {
  // Required here: it wraps the helper's core node loaders (once per flow), which the tests above do not need.
  const flowSupport = require("./support/flow");
  const { startTestBroker } = require("./support/broker");
  const mqtt = require("mqtt");
  const chain = () => JSON.parse(fs.readFileSync(path.join(__dirname, "..", "flows", "mnist-chain.json"), "utf8"));
  let broker;

  before(async () => {
    broker = await startTestBroker();
    process.env.MQTT_URL = broker.url;
    await flowSupport.startServer();
  });
  after(async () => {
    await flowSupport.stopServer();
    await broker?.stop();
    delete process.env.MQTT_URL;
  });

  it("is wired for it: resending on, and the result and error-reply mqtt in nodes feed the source", () => {
    const flow = chain();
    const source = flow.find((n) => n.type === "mnist-image-source");
    assert.ok(Number(source.resendAfter) > 0 && Number(source.resendTimes) >= 1, "resend unanswered is on");
    const answerFeeds = flow.filter((n) => n.type === "mqtt in" && n.wires[0].includes(source.id)).map((n) => n.topic);
    assert.deepEqual(answerFeeds.sort(), ["${MNIST_ERROR_TOPIC}", "${MNIST_RESULT_TOPIC}"]);
  });

  it("requests taken by an inference instance that died are sent again and answered: none lost, each counted once", { timeout: 120000 }, async () => {
    const flow = chain();
    const tab = flow[0].id;
    const source = flow.find((n) => n.type === "mnist-image-source");
    Object.assign(source, { autoStart: false, resendAfter: "2" });
    // The instance that "dies": the first 10 requests it gets vanish, as in a SIGKILLed Node-RED holding them.
    const requestsIn = flow.find((n) => n.type === "mqtt in" && n.name === "requests");
    const infer = requestsIn.wires[0];
    requestsIn.wires = [["dies"]];
    flow.push({
      id: "dies", type: "function", z: tab, name: "dies holding 10", outputs: 1, x: 100, y: 900, wires: [infer],
      func: `const id = JSON.parse(msg.payload.toString()).id;
const lost = context.get("lost") || [];
if (lost.length < 10 && !lost.includes(id)) { lost.push(id); context.set("lost", lost); return null; }
return msg;`,
    });
    const result = flow.find((n) => n.type === "mnist-result");
    result.wires[0].push("watch");
    flow.push({ id: "watch", type: "helper", z: tab, x: 100, y: 950 });
    try {
      await flowSupport.load(flowSupport.FLOW_NODES, flow);
      await flowSupport.mqttConnected(flow);
      const sent = [];
      const requestsOut = flow.find((n) => n.type === "mqtt out" && n.name === "requests");
      flowSupport.helper.getNode(requestsOut.id).on("input", (msg) => sent.push({ id: msg.id, attempt: msg.attempt }));
      const answered = [];
      flowSupport.helper.getNode("watch").on("input", (msg) => answered.push(String(msg.result.id)));
      flowSupport.helper.getNode(source.id).receive({ payload: "burst", count: 40 });
      await waitFor(() => sent.length >= 40, "the burst to be sent", 30000);
      const ids = [...new Set(sent.map((s) => s.id))];
      assert.equal(ids.length, 40);
      await waitFor(() => ids.every((id) => answered.includes(id)), "every request of the burst answered", 90000);
      const lost = flowSupport.helper.getNode("dies").context().get("lost");
      assert.equal(lost.length, 10);
      for (const id of lost) assert.ok(sent.some((s) => s.id === id && s.attempt >= 2), `${id} was sent again`);
      assert.equal(new Set(answered).size, answered.length, "mnist-result passed each answer on once");
    } finally {
      await flowSupport.unload();
      // Leave no persistent session behind.
      (await mqtt.connectAsync(broker.url, { clientId: "mnist-chain", clean: true, reconnectPeriod: 0 })).end(true);
    }
  });
});
