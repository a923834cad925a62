"use strict";
// mnist-result in a Node-RED runtime: every accepted input form, batch and error
// replies, duplicates, unreadable input seen by a Catch node, and the throttled
// status (the statistics themselves: mnist-result-statistics.test.js).
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");
const { helper, load, statusOf, startServer, stopServer, unload } = require("./support/flow");
const { catalogue, resultNode, start, result, recordStatus, wait } = require("./support/result");

describe("mnist-result", () => {
  before(startServer);
  after(stopServer);
  afterEach(unload);

  it("loads with defaults: a line per result and a summary every 100 results", async () => {
    await load([resultNode], [{ id: "result", type: "mnist-result" }]);
    const node = helper.getNode("result");
    assert.equal(node.type, "mnist-result");
    // The first status is shown in the constructor, before a test can listen: read it from the helper's spy.
    const first = helper._NodePrototype.status.getCalls().find((call) => call.thisValue === node);
    assert.deepEqual(first.args[0], { fill: "green", shape: "dot", text: "waiting for results" });
    await unload();

    const { seen, send } = await start();
    const msgs = Array.from({ length: 100 }, (_, i) => ({ topic: "result", payload: result(i % 10, { id: i, label: i % 10 }) }));
    await send(...msgs);
    assert.equal(seen.errors.length, 0);
    assert.equal(seen.out.length, 100);
    assert.equal(seen.summary.length, 1);
    assert.equal(seen.summary[0].payload.count, 100);
    assert.equal(seen.summary[0].payload.accuracy, 1);
  });

  it("reads a result as an object, JSON text and a Buffer of JSON", async () => {
    const { seen, send } = await start();
    const r = result(7, { id: "a1", label: 7, sentAt: Date.now() });
    await send(
      { topic: "result", payload: r, retain: true, qos: 1 },
      { topic: "result", payload: JSON.stringify({ ...r, id: "a2" }) },
      { topic: "result", payload: Buffer.from(JSON.stringify({ ...r, id: "a3", label: 3 })) },
    );
    assert.equal(seen.errors.length, 0, seen.errors.map((m) => m.error.message).join("\n"));
    assert.deepEqual(seen.out.map((m) => m.payload), ["7 (99.1%) ✓ label 7", "7 (99.1%) ✓ label 7", "7 (99.1%) ✗ label 3"]);
    const first = seen.out[0];
    assert.equal(first.topic, "result", "other properties pass through");
    assert.equal(first.retain, undefined, "retain is not carried on");
    assert.equal(first.result.digit, 7);
    assert.equal(first.result.confidence, 0.991);
    assert.equal(first.result.id, "a1");
    assert.equal(first.result.correct, true);
    assert.equal(first.result.legacy, false);
    assert.equal(first.result.model.name, "mnist-cnn");
    assert.equal(first.result.probabilities.length, 10);
    assert.equal(seen.out[2].result.correct, false);
  });

  it("reads the original chain's plain text: tensor([7]), its variants and a bare digit", async () => {
    const { seen, send, summary } = await start();
    const inputs = ["tensor([7])", Buffer.from("tensor([4])"), "tensor([3], device='cuda:0')", "tensor([[2]])", "tensor(5)", " 6\n", 8, "tensor([1.])"];
    await send(...inputs.map((payload) => ({ topic: "result", payload })));
    assert.equal(seen.errors.length, 0, seen.errors.map((m) => m.error.message).join("\n"));
    assert.deepEqual(seen.out.map((m) => m.payload), ["7", "4", "3", "2", "5", "6", "8", "1"]);
    assert.ok(seen.out.every((m) => m.result.legacy === true && m.result.confidence === undefined));
    const stats = await summary();
    assert.equal(stats.count, 8);
    assert.equal(stats.legacy, 8);
    assert.equal(stats.labelled, 0);
    assert.equal(stats.accuracy, null);
    assert.equal(stats.last.digit, 1);
    assert.equal(stats.last.confidence, null);
  });

  it("reads a batch reply: each image counted as a result or an error of its own, passed on as one message, counted once", async () => {
    const { seen, send, summary } = await start();
    const strip = ({ id: _id, sentAt: _sentAt, model: _model, ...item }) => item;
    const batch = {
      id: "b1",
      sentAt: Date.now() - 5,
      model: { name: "mnist-cnn", sha256: "x", backend: "native" },
      results: [strip(result(7, { label: 7 })), { error: { code: "bad-base64", message: "not base64" } }, { ...strip(result(3, { label: 5 })), unsure: true }],
    };
    await send({ payload: JSON.stringify(batch) });
    await send({ payload: batch }); // the same reply again, as QoS 1 may deliver it
    assert.equal(seen.out.length, 1, "passed on once");
    assert.equal(seen.out[0].payload, "batch b1: 2 digits (1 unsure), 1 error");
    assert.deepEqual(seen.out[0].result.map((r) => r.id), ["b1#0", "b1#1", "b1#2"]);
    const stats = await summary();
    assert.deepEqual([stats.count, stats.labelled, stats.correct, stats.errors.total, stats.duplicates], [2, 2, 1, 1, 3]);
    assert.deepEqual(stats.errors.byCode, { "bad-base64": 1 });
    assert.equal(stats.unsure.count, 1);
    assert.equal(stats.latency.count, 2, "each image's latency from the batch's sentAt");
  });

  it("counts error replies by code and shows them", async () => {
    const { seen, send, summary } = await start();
    const status = statusOf("result", (s) => /^error reply/.test(s.text || ""), 2000);
    await send(
      { topic: "result/error", payload: { error: { code: "corrupt", message: "the PNG is truncated" }, id: "a1" } },
      { topic: "result/error", payload: JSON.stringify({ error: { code: "corrupt", message: "bad CRC" } }) },
      { topic: "result/error", payload: Buffer.from(JSON.stringify({ error: { code: "queue-full", message: "full" }, id: 9 })) },
    );
    assert.equal(seen.errors.length, 0);
    assert.deepEqual(seen.out.map((m) => m.payload), ["error corrupt (id a1): the PNG is truncated", "error corrupt: bad CRC", "error queue-full (id 9): full"]);
    assert.deepEqual(seen.out[0].result, { error: { code: "corrupt", message: "the PNG is truncated" }, id: "a1" });
    const stats = await summary();
    assert.deepEqual(stats.errors, { total: 3, byCode: { corrupt: 2, "queue-full": 1 } });
    assert.equal(stats.count, 0, "error replies are not results");
    assert.equal(stats.unparseable, 0);
    const shown = await status;
    assert.equal(shown.fill, "red");
    assert.equal(shown.text, "error reply queue-full");
  });

  it("reports an unreadable message to a Catch node, counts it, and reads the next one", async () => {
    const { seen, send, summary } = await start();
    const bad = [
      { topic: "result", payload: "hello" },
      { topic: "result", payload: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]) },
      { topic: "result", payload: { foo: 1 } },
      { topic: "result", payload: { digit: 12 } },
      { topic: "result", payload: result(7, { label: "seven" }) },
      { topic: "result", payload: "{not json" },
      { topic: "result", payload: "tensor([7, 2])" },
      { topic: "result", payload: [7] },
      { topic: "result" },
    ];
    await send(...bad);
    assert.equal(seen.errors.length, bad.length);
    assert.equal(seen.out.length, 0);
    for (const m of seen.errors) {
      assert.equal(m.error.code, "unreadable");
      assert.equal(m.error.source.id, "result");
      assert.match(m.error.message, /^UnreadableMessage: cannot read the result: .*; received .* on topic "result"\. accepted: a result/);
    }
    assert.match(seen.errors[0].error.message, /received the text "hello"/);
    assert.match(seen.errors[1].error.message, /received a Buffer of 6 bytes/);
    assert.match(seen.errors[2].error.message, /it has no "digit"; received an object with foo/);
    assert.match(seen.errors[3].error.message, /"digit" must be an integer from 0 to 9, not 12/);
    assert.match(seen.errors[4].error.message, /"label" must be an integer from 0 to 9, not "seven"/);
    assert.match(seen.errors[5].error.message, /not valid JSON/);
    assert.match(seen.errors[6].error.message, /one digit expected, found 2/);
    assert.match(seen.errors[8].error.message, /received no payload/);

    await send({ topic: "result", payload: result(4, { label: 4 }) });
    assert.equal(seen.out.length, 1);
    assert.equal(seen.out[0].payload, "4 (99.1%) ✓ label 4");
    const stats = await summary();
    assert.equal(stats.unparseable, bad.length);
    assert.equal(stats.count, 1);
  });

  it("rejects an unknown command without counting it as unparseable", async () => {
    const { seen, send, summary } = await start();
    await send({ command: "explode" });
    assert.equal(seen.errors.length, 1);
    assert.equal(seen.errors[0].error.code, "unknown-command");
    assert.match(seen.errors[0].error.message, /"explode".*"summary" or "reset"/);
    assert.equal((await summary()).unparseable, 0);
  });

  it("passes on and counts an answer once: a repeated id (a QoS 1 redelivery) only counts as a duplicate", async () => {
    const { seen, send, summary } = await start();
    await send(
      ...["a", "b", "a", "c", "b", 5, "5"].map((id) => ({ payload: result(1, { id, label: id === "c" ? 2 : 1 }) })),
      { payload: { error: { code: "corrupt", message: "truncated" }, id: "e1" } },
      { payload: { error: { code: "corrupt", message: "truncated" }, id: "e1" } },
    );
    assert.deepEqual(seen.out.map((m) => m.result.id ?? m.result.error.code), ["a", "b", "c", 5, "e1"]);
    const stats = await summary();
    assert.equal(stats.duplicates, 4);
    assert.equal(stats.count, 4, "a repeated answer is not counted again");
    assert.equal(stats.accuracy, 0.75, "nor does it weigh in the accuracy");
    assert.equal(stats.errors.total, 1);
  });

  it("keeps results and error replies apart: a retry that succeeds after an error reply is counted as a result", async () => {
    const { seen, send, summary } = await start();
    await send(
      { payload: { error: { code: "queue-full", message: "retry later" }, id: 9 } },
      { payload: result(4, { id: "9", label: 4 }) }, // the retry's answer; "9" and 9 are one id
      { payload: result(4, { id: 9, label: 4 }) }, // and that answer again
    );
    assert.deepEqual(seen.out.map((m) => m.result.id ?? m.result.error.code), [9, "9"]);
    const stats = await summary();
    assert.deepEqual([stats.count, stats.errors.total, stats.duplicates, stats.accuracy], [1, 1, 1, 1]);
  });

  it("shows the last digit, its confidence and the running accuracy, at most about 4 times a second", async () => {
    const { node, send } = await start({ summaryEvery: 0, perResult: false });
    const shown = recordStatus(node);
    const burst = [];
    for (let i = 0; i < 999; i++) burst.push({ payload: result(i % 10, { label: i % 10 }) });
    burst.push({ payload: result(7, { label: 1 }) });
    await send(...burst);
    await wait(300);
    const last = shown.at(-1);
    assert.equal(last.fill, "green");
    assert.equal(last.shape, "dot");
    assert.equal(last.text, "last 7 · 99.9% right of 1,000");
    assert.ok(shown.length <= 4, `${shown.length} status updates for 1000 results`);

    await send({ payload: "tensor([3])" });
    await wait(300);
    assert.equal(shown.at(-1).text, "last 3 · 99.9% right of 1,000");

    await send({ payload: { ...result(4, { label: 4 }), unsure: true } });
    await wait(300);
    assert.equal(shown.at(-1).text, "last ?4 · 99.9% right of 1,001", "an unsure answer is shown as such");

    await send({ payload: "garbage" });
    await wait(300);
    assert.deepEqual(shown.at(-1), { fill: "red", shape: "ring", text: "unreadable message" });
  });

  it("has every message key its editor file uses in the en-US catalogue", () => {
    const html = fs.readFileSync(path.join(__dirname, "..", "dist", "nodes", "mnist-result", "mnist-result.html"), "utf8");
    const keys = [...html.matchAll(/(?:data-i18n="(?:\[\w+\])?|this\._\(")(mnist-result\.[\w.-]+)"/g)].map((m) => m[1]);
    assert.ok(keys.length >= 5, `found ${keys.length} keys`);
    const RED = {};
    resultNode(Object.assign(RED, { nodes: { registerType() {} } }));
    for (const key of keys) assert.notEqual(RED._(key), key, `${key} is missing from locales/en-US/mnist-result.json`);
  });

  it("clears its status when closed", async () => {
    const { node, send } = await start();
    await send({ payload: "tensor([3])" });
    const shown = recordStatus(node);
    await unload();
    assert.deepEqual(shown.at(-1), {});
  });
});
