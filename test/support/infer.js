"use strict";
// mnist-infer in a test flow, as the mnist-infer*.test.js files use it: the
// node wired to a helper, a Catch node on the tab wired to another, and ways to
// send one message and read what came out.
const assert = require("node:assert/strict");
const { helper, load } = require("./flow");

const inferNode = require("../../dist/nodes/mnist-infer/mnist-infer.js");
const catchNode = require("@node-red/nodes/core/common/25-catch.js");

/** infer → out, and a Catch node on the tab → errors. */
function flow(inferConfig = {}) {
  return [
    { id: "t1", type: "tab", label: "test" },
    { id: "n-infer", type: "mnist-infer", z: "t1", wires: [["n-out"]], ...inferConfig },
    { id: "n-out", type: "helper", z: "t1" },
    { id: "n-catch", type: "catch", z: "t1", scope: null, uncaught: false, wires: [["n-errors"]] },
    { id: "n-errors", type: "helper", z: "t1" },
  ];
}

async function loadInfer(config) {
  await load([inferNode, catchNode], flow(config));
  return helper.getNode("n-infer");
}

const loadOn = (backend, config) => loadInfer({ backend, ...config });

/** Sends one message and resolves with the result message or the caught error message. */
function classify(node, msg, timeoutMs = 20000) {
  const out = helper.getNode("n-out");
  const errors = helper.getNode("n-errors");
  return new Promise((resolve, reject) => {
    const finish = (outcome) => {
      clearTimeout(timer);
      out.removeListener("input", onResult);
      errors.removeListener("input", onError);
      outcome instanceof Error ? reject(outcome) : resolve(outcome);
    };
    const onResult = (m) => finish({ ok: m });
    const onError = (m) => finish({ error: m });
    const timer = setTimeout(() => finish(new Error(`no result or error within ${timeoutMs} ms`)), timeoutMs);
    out.on("input", onResult);
    errors.on("input", onError);
    node.receive(msg);
  });
}

async function expectDigit(node, msg, digit) {
  const outcome = await classify(node, msg);
  assert.ok(outcome.ok, `expected a result, got error: ${outcome.error && outcome.error.error.message}`);
  assert.equal(outcome.ok.payload.digit, digit);
  return outcome.ok;
}

async function expectError(node, msg, code, pattern) {
  const outcome = await classify(node, msg);
  assert.ok(outcome.error, `expected an error, got digit ${outcome.ok && outcome.ok.payload.digit}`);
  assert.equal(outcome.error.error.code, code, outcome.error.error.message);
  if (pattern) assert.match(outcome.error.error.message, pattern);
  assert.equal(outcome.error.error.source.id, "n-infer");
  return outcome.error;
}

module.exports = { inferNode, catchNode, flow, loadInfer, loadOn, classify, expectDigit, expectError };
