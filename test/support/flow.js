// Small promises around node-red-node-test-helper, so an assertion that fails
// inside a node's event handler reaches node:test as a failure, not a timeout.
"use strict";
const helper = require("node-red-node-test-helper");

helper.init(require.resolve("node-red"));

// The helper loads its own copies of the catch, status and complete nodes, once
// per node of that type in the flow; a second registration of a type throws.
// The example flows have two Complete nodes: load each core type once per flow.
for (const [type, loadType] of Object.entries(helper._nodeModules)) {
  const loadedFor = new WeakSet();
  const once = (red) => {
    if (loadedFor.has(red)) return undefined;
    loadedFor.add(red);
    return loadType(red);
  };
  helper._nodeModules[type] = once;
  // The same module passed in a test's node list is then already loaded.
  require.cache[require.resolve(`@node-red/nodes/core/common/${{ catch: "25-catch", status: "25-status", complete: "24-complete" }[type]}.js`)].exports = once;
}

/** The node modules the shipped example flows use: this package's nodes and the core nodes they wire. */
const FLOW_NODES = [
  require("../../dist/nodes/mnist-image-source/mnist-image-source.js"),
  require("../../dist/nodes/mnist-infer/mnist-infer.js"),
  require("../../dist/nodes/mnist-result/mnist-result.js"),
  require("@node-red/nodes/core/network/10-mqtt.js"),
  require("@node-red/nodes/core/common/20-inject.js"),
  require("@node-red/nodes/core/common/21-debug.js"),
  require("@node-red/nodes/core/common/24-complete.js"),
  require("@node-red/nodes/core/common/25-catch.js"),
  require("@node-red/nodes/core/common/90-comment.js"),
  require("@node-red/nodes/core/function/10-function.js"),
  require("@node-red/nodes/core/function/10-switch.js"),
];

/** Loads node modules and a flow; resolves when the runtime has started them. */
function load(nodes, flow, credentials) {
  return new Promise((resolve, reject) => {
    try {
      helper.load(nodes, flow, credentials || {}, resolve);
    } catch (err) {
      reject(err);
    }
  });
}

/** Resolves with the next `count` messages that reach `nodeId`'s input. */
function collect(nodeId, count, timeoutMs = 20000) {
  const node = helper.getNode(nodeId);
  return new Promise((resolve, reject) => {
    const received = [];
    const timer = setTimeout(() => {
      node.removeListener("input", onInput);
      reject(new Error(`${nodeId} received ${received.length} of ${count} messages within ${timeoutMs} ms`));
    }, timeoutMs);
    function onInput(msg) {
      received.push(msg);
      if (received.length === count) {
        clearTimeout(timer);
        node.removeListener("input", onInput);
        resolve(received);
      }
    }
    node.on("input", onInput);
  });
}

/** Resolves when `nodeId` shows (or already shows) a status whose fill is `fill` (or matches `predicate`). */
function statusOf(nodeId, predicate, timeoutMs = 20000) {
  const node = helper.getNode(nodeId);
  const test = typeof predicate === "function" ? predicate : (status) => status.fill === predicate;
  // The helper records every status call: one shown before the caller could listen counts too.
  const shown = helper._NodePrototype.status.getCalls().filter((call) => call.thisValue === node).at(-1)?.args[0];
  if (shown && test(shown)) return Promise.resolve(shown);
  return new Promise((resolve, reject) => {
    const original = node.status.bind(node);
    const timer = setTimeout(() => {
      node.status = original;
      reject(new Error(`${nodeId} did not reach the expected status within ${timeoutMs} ms`));
    }, timeoutMs);
    node.status = (status) => {
      original(status);
      if (test(status)) {
        clearTimeout(timer);
        node.status = original;
        resolve(status);
      }
    };
  });
}

/** Waits until every mqtt node of the loaded `flow` is connected, then lets subscriptions settle. */
async function mqttConnected(flow, timeoutMs = 10000) {
  const ids = flow.filter((n) => n.type === "mqtt in" || n.type === "mqtt out").map((n) => n.id);
  const deadline = Date.now() + timeoutMs;
  while (!ids.every((id) => helper.getNode(id)?.brokerConn?.connected)) {
    if (Date.now() > deadline) throw new Error("the flow's mqtt nodes did not connect");
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 200));
}

function startServer() {
  return new Promise((resolve) => helper.startServer(resolve));
}

function stopServer() {
  return new Promise((resolve) => helper.stopServer(resolve));
}

module.exports = { helper, FLOW_NODES, mqttConnected, load, collect, statusOf, startServer, stopServer, unload: () => helper.unload() };
