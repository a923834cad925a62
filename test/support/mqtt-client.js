// A plain MQTT client for tests: what any user's device or script would be.
"use strict";
const mqtt = require("mqtt");

/** Connects and resolves once the client is connected. */
async function connect(url, options = {}) {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  return client;
}

/**
 * Subscribes and gathers messages on `topic` until `done(messages)` returns true.
 * Resolves with the messages; rejects after `timeoutMs` with what arrived so far.
 */
async function gather(client, topic, done, timeoutMs = 20000) {
  const messages = [];
  let finish;
  const finished = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${messages.length} messages on ${topic} within ${timeoutMs} ms`)), timeoutMs);
    finish = () => {
      clearTimeout(timer);
      resolve(messages);
    };
  });
  const onMessage = (t, payload, packet) => {
    if (!matches(topic, t)) return;
    messages.push({ topic: t, payload, packet });
    if (done(messages)) finish();
  };
  client.on("message", onMessage);
  await client.subscribeAsync(topic, { qos: 1 });
  return {
    messages,
    result: finished.finally(() => client.removeListener("message", onMessage)),
  };
}

/** MQTT topic filter matching (+ and #), enough for tests. */
function matches(filter, topic) {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

module.exports = { connect, gather };
