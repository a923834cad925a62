"use strict";
// mnist-result in a test flow, as the mnist-result*.test.js files use it: the
// node with a Catch and a Complete node watching it, its status translated from
// the shipped catalogue, and results as mnist-infer publishes them.
const { helper, load, collect } = require("./flow");

const catalogue = require("../../dist/nodes/mnist-result/locales/en-US/mnist-result.json");
const registerResultNode = require("../../dist/nodes/mnist-result/mnist-result.js");

/**
 * The helper's RED._ returns keys, and status text is cut at 32 characters:
 * translate from the shipped en-US catalogue instead, so the status is
 * asserted as users see it and a missing key shows up as the key.
 */
function resultNode(RED) {
  RED._ = (key, substitutions = {}) => {
    const text = key.split(".").reduce((entry, part) => (entry && typeof entry === "object" ? entry[part] : undefined), catalogue);
    return typeof text === "string" ? text.replace(/__(\w+)__/g, (_, name) => String(substitutions[name])) : key;
  };
  return registerResultNode(RED);
}

/**
 * result → out (per result) and summary; a Catch node → errors and a Complete
 * node → completed, so every message ends in exactly one of the two.
 */
function flow(resultConfig = {}) {
  return [
    { id: "tab", type: "tab", label: "test" },
    { id: "result", type: "mnist-result", z: "tab", name: "live accuracy", wires: [["out"], ["summary"]], ...resultConfig },
    { id: "out", type: "helper", z: "tab" },
    { id: "summary", type: "helper", z: "tab" },
    { id: "catcher", type: "catch", z: "tab", scope: ["result"], uncaught: false, wires: [["errors"]] },
    { id: "errors", type: "helper", z: "tab" },
    { id: "completer", type: "complete", z: "tab", scope: ["result"], uncaught: false, wires: [["completed"]] },
    { id: "completed", type: "helper", z: "tab" },
  ];
}

/** Loads the flow; records everything that reaches out, summary and errors. */
async function start(config) {
  await load([resultNode], flow(config));
  const seen = { out: [], summary: [], errors: [], completed: [] };
  for (const id of Object.keys(seen)) helper.getNode(id).on("input", (m) => seen[id].push(m));
  const node = helper.getNode("result");

  /** Sends messages and resolves once each has ended in done() or done(err), and its outputs have arrived. */
  async function send(...msgs) {
    const before = seen.completed.length + seen.errors.length;
    for (const msg of msgs) node.receive(msg);
    const deadline = Date.now() + 5000;
    while (seen.completed.length + seen.errors.length < before + msgs.length) {
      if (Date.now() > deadline) throw new Error(`only ${seen.completed.length + seen.errors.length - before} of ${msgs.length} messages finished`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** Asks for a summary and resolves with its statistics object. */
  async function summary() {
    const next = collect("summary", 1, 2000);
    node.receive({ command: "summary" });
    const [msg] = await next;
    return msg.payload;
  }

  return { node, seen, send, summary };
}

/** A result as mnist-infer publishes it. */
function result(digit, fields = {}) {
  const probabilities = new Array(10).fill(0.001);
  probabilities[digit] = 0.991;
  return {
    digit,
    confidence: 0.991,
    probabilities,
    model: { name: "mnist-cnn", sha256: "0".repeat(64) },
    timings: { preprocessMs: 0.2, queueMs: 0.1, inferenceMs: 1.5, batchSize: 1 },
    inverted: false,
    ...fields,
  };
}

/** Records every status the node shows from now on. */
function recordStatus(node) {
  const shown = [];
  const original = node.status.bind(node);
  node.status = (status) => {
    shown.push(status);
    original(status);
  };
  return shown;
}

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = { catalogue, resultNode, start, result, recordStatus, wait };
