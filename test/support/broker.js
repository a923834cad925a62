// Brokers for tests: Mosquitto (from the shipped config, on a free port) when
// it is installed; outside CI, the embedded aedes broker when it is not, said
// once per test file. CI must test against Mosquitto, so there it is an error.
"use strict";
const path = require("path");
const mqtt = require("mqtt");
const { startMosquitto, startAedes } = require("../../dist/scripts/broker.js");
const { findMosquitto } = require("../../dist/scripts/mosquitto-process.js");

const NOT_IN_CI = "mosquitto is not installed, and CI must run the broker tests against it (apt-get install mosquitto, as .ci/run does)";
let fallbackAnnounced = false;

/**
 * Starts a broker on a free port (or `options.port`); stop it with `await broker.stop()`.
 * kind "mosquitto" (default): Mosquitto, or aedes when it is not installed and not in CI.
 * kind "aedes": always the embedded broker.
 */
async function startTestBroker({ kind = "mosquitto", ...options } = {}) {
  if (kind === "aedes") return startAedes({ port: options.port });
  if (kind !== "mosquitto") throw new Error(`unknown broker kind "${kind}" (mosquitto or aedes)`);
  if (findMosquitto()) return startMosquitto(options);
  if (process.env.CI) {
    throw new Error(NOT_IN_CI);
  }
  if (!fallbackAnnounced) {
    fallbackAnnounced = true;
    const file = path.relative(process.cwd(), process.argv[1] || "this test file");
    console.log(`# mosquitto is not installed: the broker tests in ${file} run on the embedded aedes broker, and Mosquitto-only tests are skipped (apt-get install mosquitto)`);
  }
  return startAedes({ port: options.port });
}

/**
 * For tests of a Mosquitto feature (shared subscriptions, size limits,
 * persistence): skips `t` with the reason and returns true unless `broker` is Mosquitto.
 */
function skipUnlessMosquitto(t, broker, feature) {
  if (broker.kind === "mosquitto") return false;
  t.skip(`${feature} needs Mosquitto; this run uses the embedded ${broker.kind} broker (apt-get install mosquitto)`);
  return true;
}

/**
 * For tests that start Mosquitto themselves: skips `t` and returns true when it
 * is not installed, except in CI, where that is a failure.
 */
function skipWithoutMosquitto(t) {
  if (findMosquitto()) return false;
  if (process.env.CI) throw new Error(NOT_IN_CI);
  t.skip("mosquitto is not installed (apt-get install mosquitto)");
  return true;
}

/** A connected mqtt.js client; errors after connecting are kept, not thrown. */
async function connectClient(url, options = {}) {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  client.on("error", () => {});
  return client;
}

/** Resolves with the next `count` messages `client` receives: [{ topic, payload }]. */
function nextMessages(client, count, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const received = [];
    const timer = setTimeout(() => {
      client.off("message", onMessage);
      reject(new Error(`received ${received.length} of ${count} messages within ${timeoutMs} ms`));
    }, timeoutMs);
    function onMessage(topic, payload) {
      received.push({ topic, payload });
      if (received.length < count) return;
      clearTimeout(timer);
      client.off("message", onMessage);
      resolve(received);
    }
    client.on("message", onMessage);
  });
}

module.exports = { startTestBroker, skipUnlessMosquitto, skipWithoutMosquitto, connectClient, nextMessages };
