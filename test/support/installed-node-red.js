// Node-RED's own command line (red.js) on a user folder, as a user runs it
// after installing the package: no launcher, the package loaded from
// <userDir>/node_modules like anything from the palette.
"use strict";
const { spawn } = require("child_process");
const { once } = require("events");
const fs = require("fs");
const path = require("path");
const { freePort, REPO_ROOT } = require("../../dist/scripts/broker.js");
const { withDeathSignal } = require("../../dist/scripts/mosquitto-process.js");

const REPO_RED_JS = path.join(REPO_ROOT, "node_modules", "node-red", "red.js");

/** Copies a shipped flow into `userDir` as flows.json and writes a quiet settings.js. */
function writeUserDirSettings(userDir, flow) {
  if (flow) fs.copyFileSync(path.isAbsolute(flow) ? flow : path.join(REPO_ROOT, "flows", flow), path.join(userDir, "flows.json"));
  fs.writeFileSync(
    path.join(userDir, "settings.js"),
    `module.exports = { flowFile: "flows.json", uiHost: "127.0.0.1", telemetry: { enabled: false, updateNotification: false }, ` +
      `editorTheme: { projects: { enabled: false }, tours: false }, logging: { console: { level: "info", metrics: false, audit: false } } };\n`,
  );
}

/**
 * Starts red.js (`redJs`, run by `nodeBinary`) on `userDir`, which must hold
 * settings.js (see writeUserDirSettings) and the package under node_modules.
 */
async function startInstalledNodeRed({ userDir, redJs = REPO_RED_JS, nodeBinary = process.execPath, env = {} }) {
  const port = await freePort();
  // Stops with the test process even if that is killed outright.
  const [command, args] = withDeathSignal(nodeBinary, [redJs, "--userDir", userDir, "--settings", path.join(userDir, "settings.js"), "--port", String(port)]);
  const child = spawn(command, args, {
    cwd: userDir,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const exited = once(child, "exit");
  return {
    child,
    exited,
    editor: `http://127.0.0.1:${port}`,
    output: () => output,
    /** Resolves once the output matches `pattern`; fails with the output's tail if it never does. */
    async printed(pattern, timeoutMs = 60000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(output)) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`Node-RED did not print ${pattern}:\n${output.slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
}

module.exports = { startInstalledNodeRed, writeUserDirSettings };
