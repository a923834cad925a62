"use strict";
// The published package as users install it: `npm pack`'s tarball, installed
// into a fresh Node-RED user folder the palette manager's way (its npm
// arguments, the file in <userDir>/nodes/), with none of the user's settings,
// then loaded by a real Node-RED from that folder, which classifies the 500
// held-out digits with the package's own nodes. Without onnxruntime-node,
// mnist-infer must fall back to WebAssembly and say why:
// - npm 10 (the palette manager's own, in Node-RED 4.1) and the npm on PATH (11 here) where
//   api.nuget.org cannot be reached (offline, as here): onnxruntime-node's install script
//   fails, and npm removes that optional dependency and carries on;
// - --omit=optional, which leaves onnxruntime-node out (and sharp: the samples are PNGs,
//   which mnist-infer reads without it);
// - npm 12 with no setting installs onnxruntime-node without running the script.
// npm 12 and the Node 22 it needs come from the npm registry (or the npm cache);
// without them the npm 12 case is skipped, except in CI.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");
const { startInstalledNodeRed, writeUserDirSettings } = require("./support/installed-node-red");
const { paletteNpm, userNpm, userEnv, run, packTarball, newUserDir, paletteInstall, diskMegabytes } = require("./support/package-install");
const { loadSamples } = require("./support/samples");

const PACKAGE = "node-red-contrib-mnist";
const SAMPLES = loadSamples().length;
/** Platforms onnxruntime-node 1.30 has a binding for. */
const NATIVE = ["linux/x64", "linux/arm64", "win32/x64", "win32/arm64", "darwin/arm64"].includes(`${process.platform}/${process.arch}`);

/** `npm --version` of the npm that `npm` ([command, ...args]) runs. */
async function npmVersion(npm) {
  return (await run(npm[0], [...npm.slice(1), "--version"])).stdout.trim();
}

/** A local port nothing listens on: a free port, released again. */
async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A flow of the installed package's own nodes: the source sends the 500 bundled
 * digits once (labelled envelopes), mnist-infer classifies them, and a function
 * prints one line summing up the results (and any errors a Catch node sees).
 */
function classifyAllFlow() {
  const collect = `
const results = context.get("results") || [];
results.push(msg.payload);
context.set("results", results);
if (results.length === ${SAMPLES}) {
  const summary = {
    count: results.length,
    correct: results.filter((r) => r.correct).length,
    backends: [...new Set(results.map((r) => r.model && r.model.backend))],
    reasons: [...new Set(results.map((r) => r.model && r.model.backendReason))],
  };
  node.warn("INSTALL-TEST-SUMMARY " + JSON.stringify(summary));
}
return null;`;
  return [
    { id: "t-install", type: "tab", label: "install test" },
    { id: "n-source", type: "mnist-image-source", z: "t-install", mode: "interval", interval: 1, autoStart: true, loop: false, limit: 0, output: "envelope", wires: [["n-infer"]] },
    { id: "n-infer", type: "mnist-infer", z: "t-install", backend: "auto", wires: [["n-collect"]] },
    { id: "n-collect", type: "function", z: "t-install", name: "collect", func: collect, outputs: 1, wires: [[]] },
    { id: "n-catch", type: "catch", z: "t-install", scope: null, uncaught: false, wires: [["n-errors"]] },
    { id: "n-errors", type: "function", z: "t-install", name: "errors", func: 'node.warn("INSTALL-TEST-ERROR " + JSON.stringify(msg.error)); return null;', outputs: 1, wires: [[]] },
  ];
}

/** Starts Node-RED on `userDir` with the flow above; resolves the summary line's object, the output and the package's node sets. */
async function classifyInstalled(userDir) {
  fs.writeFileSync(path.join(userDir, "flows.json"), JSON.stringify(classifyAllFlow()));
  writeUserDirSettings(userDir);
  const nodeRed = await startInstalledNodeRed({ userDir });
  try {
    // A node type that failed to load leaves the flow waiting for it: fail at once, with the reason.
    await nodeRed.printed(/Started flows|Waiting for missing types/);
    const nodes = await (await fetch(`${nodeRed.editor}/nodes`, { headers: { accept: "application/json" } })).json();
    const sets = nodes.filter((set) => set.module === PACKAGE);
    assertLoaded(sets, nodeRed.output());
    await nodeRed.printed(/model mnist-cnn loaded/);
    await nodeRed.printed(/INSTALL-TEST-SUMMARY /, 90000);
    const output = nodeRed.output();
    const summary = JSON.parse(output.slice(output.indexOf("INSTALL-TEST-SUMMARY ") + 21).split("\n")[0]);
    return { summary, output };
  } finally {
    await nodeRed.kill();
  }
}

/** The three node sets, each enabled and without a loading error. */
function assertLoaded(sets, output) {
  const failed = sets.filter((set) => set.err).map((set) => `${set.name}: ${set.err.message ?? JSON.stringify(set.err)}`);
  assert.deepEqual(failed, [], `node sets that failed to load:\n${failed.join("\n")}\n${output.slice(-3000)}`);
  assert.deepEqual(sets.map((set) => [set.name, set.enabled]).sort(), [
    ["mnist-image-source", true],
    ["mnist-infer", true],
    ["mnist-result", true],
  ]);
}

/** The results of an install without onnxruntime-node: WebAssembly, with the reason, as accurate as native. */
function assertWasmFallback({ summary, output }) {
  console.log(`# WebAssembly: ${summary.correct} of ${summary.count} right; reason: ${summary.reasons[0]}`);
  assert.match(output, /model mnist-cnn loaded .*WebAssembly/, "the log names the backend");
  assert.equal(summary.count, SAMPLES);
  assert.ok(summary.correct >= 0.97 * SAMPLES, `${summary.correct} of ${SAMPLES} right on WebAssembly`);
  assert.deepEqual(summary.backends, ["wasm"]);
  assert.equal(summary.reasons.length, 1);
  assert.match(summary.reasons[0], /onnxruntime-node is not installed/, "the reason says what was missing");
  assert.doesNotMatch(output, /INSTALL-TEST-ERROR/);
}

/** One line for the test log: what an install took. */
function report(label, userDir, installed) {
  const present = fs.existsSync(path.join(userDir, "node_modules", "onnxruntime-node"));
  console.log(`# ${label}: ${(installed.ms / 1000).toFixed(1)} s, node_modules ${diskMegabytes(path.join(userDir, "node_modules"))} MB, onnxruntime-node ${present ? "installed" : "not installed"}`);
}

describe("the packed package, installed as Node-RED's palette manager installs it", { timeout: 180000 }, () => {
  let work;
  let tarball;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-install-"));
    tarball = await packTarball(work);
  });

  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  for (const [who, npm] of [
    ["the palette manager's npm (Node-RED's own)", paletteNpm()],
    ["the npm on PATH", userNpm()],
  ]) {
    it(`${who}, no setting, api.nuget.org unreachable: onnxruntime-node's script fails, npm drops it, the package runs on WebAssembly`, async (t) => {
      // Only on linux x64 does onnxruntime-node's install script download anything (CUDA libraries).
      if (`${process.platform}/${process.arch}` !== "linux/x64") return t.skip("onnxruntime-node's install script downloads only on linux x64");
      const userDir = newUserDir(path.join(work, `no-nuget-${npm.length}`));
      // The script reaches NuGet through global-agent: a proxy on a closed port makes
      // api.nuget.org unreachable wherever this runs, as it is on an offline machine.
      const env = userEnv({ GLOBAL_AGENT_HTTPS_PROXY: `http://127.0.0.1:${await closedPort()}` });
      const installed = await paletteInstall({ userDir, tarball, npm, env, extraArgs: ["--loglevel=verbose", "--foreground-scripts"] });
      assert.equal(installed.code, 0, installed.output);
      assert.match(installed.output, /run onnxruntime-node@[\d.]+ postinstall \{ code: 1/, "the download was tried and failed");
      assert.match(installed.output, /failed optional dependency .*onnxruntime-node/);
      assert.ok(!fs.existsSync(path.join(userDir, "node_modules", "onnxruntime-node")), "npm removed onnxruntime-node");
      report(`${who}: npm ${await npmVersion(npm)}, no setting, no NuGet`, userDir, installed);
      const dependency = JSON.parse(fs.readFileSync(path.join(userDir, "package.json"), "utf8")).dependencies[PACKAGE];
      assert.equal(dependency, `file:nodes/${path.basename(tarball)}`, "saved as the palette manager saves an upload");
      assertWasmFallback(await classifyInstalled(userDir));
    });
  }

  it("--omit=optional: installs without onnxruntime-node (and sharp), and the package runs on WebAssembly", async () => {
    const userDir = newUserDir(path.join(work, "omit-optional"));
    const installed = await paletteInstall({ userDir, tarball, npm: userNpm(), extraArgs: ["--omit=optional"] });
    assert.equal(installed.code, 0, installed.output);
    assert.ok(!fs.existsSync(path.join(userDir, "node_modules", "onnxruntime-node")), "onnxruntime-node left out");
    // sharp is optional too: mnist-infer then reads PNGs (all the samples are) with its own decoder.
    assert.ok(!fs.existsSync(path.join(userDir, "node_modules", "sharp")), "sharp left out");
    report(`the npm on PATH: npm ${await npmVersion(userNpm())} --omit=optional`, userDir, installed);
    assertWasmFallback(await classifyInstalled(userDir));
  });

  describe("with npm 12 and no setting", () => {
    let npm12;
    let skip;

    before(async () => {
      // npm 12 supports Node ^22.22.2: both from the registry (or the npm cache), into a temporary prefix.
      const prefix = path.join(work, "npm12");
      const got = await run(userNpm()[0], ["install", "--prefix", prefix, "--no-save", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", "npm@12", "node@22"]);
      const node22 = path.join(prefix, "node_modules", ".bin", "node");
      const cli = path.join(prefix, "node_modules", "npm", "bin", "npm-cli.js");
      if (got.code !== 0 || !fs.existsSync(node22) || !fs.existsSync(cli)) {
        const reason = `npm@12 and node@22 could not be installed from the registry:\n${got.output.slice(-2000)}`;
        if (process.env.CI) throw new Error(reason);
        skip = reason;
        return;
      }
      npm12 = [node22, cli];
    });

    it("installs onnxruntime-node without running its download, and the package loads and classifies", async (t) => {
      if (skip) return t.skip(skip);
      const version = await npmVersion(npm12);
      assert.match(version, /^12\./);
      const userDir = newUserDir(path.join(work, "npm12-user"));
      const installed = await paletteInstall({ userDir, tarball, npm: npm12, env: userEnv() });
      assert.equal(installed.code, 0, installed.output);
      assert.doesNotMatch(installed.output, /EUNKNOWNCONFIG|nuget/i);
      report(`npm ${version}, no setting`, userDir, installed);

      const { summary, output } = await classifyInstalled(userDir);
      console.log(`# ${summary.backends.join(", ")}: ${summary.correct} of ${summary.count} right`);
      assert.equal(summary.count, SAMPLES);
      assert.ok(summary.correct >= 0.97 * SAMPLES, `${summary.correct} of ${SAMPLES} right`);
      // Where onnxruntime-node has a binding, npm 12 installs it whole (its install script only adds CUDA files).
      assert.deepEqual(summary.backends, [NATIVE ? "native" : "wasm"], output.slice(-2000));
    });
  });
});
