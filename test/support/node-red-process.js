// A real Node-RED process running one of the shipped flows through the
// `npm start` launcher, as a user (or a systemd unit) would run an instance.
"use strict";
const { spawn } = require("child_process");
const { once } = require("events");
const fs = require("fs");
const http = require("http");
const os = require("os");
const path = require("path");
const { freePort, REPO_ROOT } = require("../../dist/scripts/broker.js");
const { withDeathSignal } = require("../../dist/scripts/mosquitto-process.js");

const START = path.join(REPO_ROOT, "dist", "scripts", "start.js");

/** What an inference flow prints once it can answer: flows started, model loaded, broker connected. */
const INFER_READY = [/Started flows/, /model \S+ loaded/, /Connected to broker/];

/** GET (or POST with a JSON body); resolves { status, body } or { status: undefined } on failure. */
function request(url, { method = "GET", json, headers = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve) => {
    const body = json === undefined ? undefined : JSON.stringify(json);
    const allHeaders = body ? { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers } : headers;
    const req = http.request(url, { method, headers: allHeaders, timeout: timeoutMs }, (res) => {
      let text = "";
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode, body: text }));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve({ status: undefined, body: "" }));
    req.end(body);
  });
}

/**
 * Starts Node-RED on `flow` (a path under flows/ or absolute) against the broker
 * at `mqttUrl`, and resolves once it has printed each of `ready` in turn (by
 * default: an inference flow able to answer). Every instance gets its own user
 * directory and editor port, unless `userDir` names one to start again on
 * (a restart): that one is left in place when the instance stops.
 */
async function startNodeRed({ flow, mqttUrl, env = {}, ready = INFER_READY, readyTimeoutMs = 60000, userDir: keptUserDir }) {
  const userDir = keptUserDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "mnist-nr-"));
  const port = await freePort();
  const args = [START, flow, "--external-broker"];
  // Stops with the test process even if that is killed outright.
  const [command, commandArgs] = withDeathSignal(process.execPath, args);
  const child = spawn(command, commandArgs, {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: String(port), MQTT_URL: mqttUrl, NODE_RED_USER_DIR: userDir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const exited = once(child, "exit");
  const instance = {
    pid: child.pid,
    port,
    userDir,
    editor: `http://127.0.0.1:${port}`,
    output: () => output,
    /** Resolves once the output matches `pattern` (a fresh match after `from` characters). */
    async waitFor(pattern, timeoutMs = 20000, from = 0) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(output.slice(from))) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`Node-RED (${flow}) did not print ${pattern}:\n${output.slice(-3000)}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    /** SIGINT (Ctrl-C), as a user stops it; SIGKILL after a grace period. */
    async stop(signal = "SIGINT") {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
        await exited;
        clearTimeout(timer);
      }
      if (!keptUserDir) fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
  try {
    const deadline = Date.now() + readyTimeoutMs;
    for (const pattern of ready) await instance.waitFor(pattern, Math.max(0, deadline - Date.now()));
  } catch (err) {
    await instance.stop("SIGKILL");
    throw err;
  }
  return instance;
}

module.exports = { startNodeRed, request };
