// A client's view of the inference flow: requests with ids, and the replies
// counted per id, to tell answered once, answered twice (different bodies:
// classified twice) and unanswered apart.
"use strict";
const mqtt = require("mqtt");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A function making the JSON request with `id` for a sample (by the digits in the id), as the image source sends them. */
function requests(samples) {
  return (id, sample = samples[Number(String(id).replace(/\D/g, "")) % samples.length]) => JSON.stringify({ id, label: sample.label, image: sample.bytes.toString("base64") });
}

/** A client that counts the replies per request id (results and error replies). */
async function replyCounter(url, options = {}) {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...options });
  client.on("error", () => {});
  // mqtt.js leaves Nagle's algorithm on: a lone QoS 1 publish would wait ~40 ms for a delayed ACK.
  client.stream.setNoDelay?.(true);
  const answers = new Map();
  const errors = new Map();
  const bodies = new Map();
  client.on("message", (topic, payload) => {
    const reply = JSON.parse(payload);
    if (topic === "result") {
      answers.set(reply.id, (answers.get(reply.id) || 0) + 1);
      bodies.set(reply.id, [...(bodies.get(reply.id) || []), String(payload)]);
    } else {
      errors.set(reply.error.code, (errors.get(reply.error.code) || 0) + 1);
    }
  });
  await client.subscribeAsync("result/#", { qos: 1 });
  return { client, answers, errors, bodies, replies: () => [...answers.values()].reduce((a, b) => a + b, 0) + [...errors.values()].reduce((a, b) => a + b, 0) };
}

/** Resolves once `count()` has not changed for `quietMs` (or after `timeoutMs`). */
async function settled(count, quietMs = 1500, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last = count();
  let since = Date.now();
  while (Date.now() < deadline && Date.now() - since < quietMs) {
    await sleep(50);
    if (count() !== last) {
      last = count();
      since = Date.now();
    }
  }
}

async function until(condition, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await sleep(50);
  return condition();
}

module.exports = { replyCounter, settled, until, sleep, requests };
