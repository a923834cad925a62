"use strict";
// `npm start` (dist/scripts/start.js): its user-folder and flow-copy rules,
// then the real launcher as a child process, from start to Ctrl-C (what it
// builds first: build-if-stale.test.js).
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("child_process");
const { once } = require("events");
const fs = require("fs");
const http = require("http");
const os = require("os");
const path = require("path");
const mqtt = require("mqtt");
const { parseArgs, resolveFlowFile } = require("../dist/scripts/start.js");
const { prepareUserDir, copyFlow } = require("../dist/scripts/user-folder.js");
const { probeBroker, freePort, ensureBroker, REPO_ROOT } = require("../dist/scripts/broker.js");
const { skipWithoutMosquitto, nextMessages } = require("./support/broker");

const FIXTURE = path.join(__dirname, "fixtures", "echo-flow.json");
const START = path.join(REPO_ROOT, "dist", "scripts", "start.js");

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "mnist-start-test-"));
}

describe("start.js pieces", () => {
  let dir;
  before(() => {
    dir = tempDir();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("parses a flow file and flags, and rejects unknown options", () => {
    assert.deepEqual(parseArgs(["flows/a.json", "--reset"]), { flow: "flows/a.json", reset: true, externalBroker: false, help: false });
    assert.deepEqual(parseArgs([]), { reset: false, externalBroker: false, help: false });
    assert.throws(() => parseArgs(["--bogus"]), /unknown option --bogus/);
    assert.throws(() => parseArgs(["a.json", "b.json"]), /only one flow file/);
  });

  it("finds a flow file from the working directory or the repository, and names the shipped ones when it cannot", () => {
    assert.equal(resolveFlowFile(FIXTURE), FIXTURE);
    assert.equal(resolveFlowFile(path.relative(REPO_ROOT, FIXTURE)), FIXTURE);
    assert.throws(() => resolveFlowFile("flows/no-such-flow.json"), /flow file not found: flows\/no-such-flow\.json/);
  });

  it("links the repository into <userDir>/node_modules and lists it in package.json, idempotently", () => {
    const userDir = path.join(dir, "user");
    prepareUserDir(userDir);
    prepareUserDir(userDir);
    const link = path.join(userDir, "node_modules", "node-red-contrib-mnist");
    assert.ok(fs.lstatSync(link).isSymbolicLink());
    assert.equal(fs.realpathSync(link), fs.realpathSync(REPO_ROOT));
    const pkg = JSON.parse(fs.readFileSync(path.join(userDir, "package.json"), "utf8"));
    assert.match(pkg.dependencies["node-red-contrib-mnist"], /^file:/);

    fs.unlinkSync(link);
    fs.symlinkSync(dir, link); // a link to another checkout is replaced
    prepareUserDir(userDir);
    assert.equal(fs.realpathSync(link), fs.realpathSync(REPO_ROOT));

    fs.unlinkSync(link);
    fs.mkdirSync(link); // a real installed copy is not deleted
    assert.throws(() => prepareUserDir(userDir), /real folder/);
  });

  it("copies the flow, keeps an edited copy, and replaces it only with --reset", () => {
    const userDir = path.join(dir, "flows-user");
    fs.mkdirSync(userDir);
    const shipped = fs.readFileSync(FIXTURE, "utf8");
    const copy = path.join(userDir, "echo-flow.json");

    assert.deepEqual(copyFlow(FIXTURE, userDir, false), { copy, outcome: "copied" });
    assert.equal(fs.readFileSync(copy, "utf8"), shipped);
    assert.deepEqual(copyFlow(FIXTURE, userDir, false), { copy, outcome: "unchanged" });

    fs.writeFileSync(copy, "[]"); // as if deployed from the editor
    assert.deepEqual(copyFlow(FIXTURE, userDir, false), { copy, outcome: "kept" });
    assert.equal(fs.readFileSync(copy, "utf8"), "[]");

    assert.deepEqual(copyFlow(FIXTURE, userDir, true), { copy, outcome: "reset", backup: `${copy}.bak` });
    assert.equal(fs.readFileSync(copy, "utf8"), shipped);
    assert.equal(fs.readFileSync(`${copy}.bak`, "utf8"), "[]");
    assert.equal(fs.readFileSync(FIXTURE, "utf8"), shipped);
  });

  it("updates an unedited copy when the shipped flow changes", () => {
    const userDir = path.join(dir, "update-user");
    fs.mkdirSync(userDir);
    const shipped = path.join(dir, "evolving-flow.json");
    const copy = path.join(userDir, "evolving-flow.json");
    fs.writeFileSync(shipped, "[]");
    assert.equal(copyFlow(shipped, userDir, false).outcome, "copied");
    fs.writeFileSync(shipped, '[{"id":"n1","type":"tab"}]'); // a newer version of the repository
    assert.equal(copyFlow(shipped, userDir, false).outcome, "updated");
    assert.equal(fs.readFileSync(copy, "utf8"), '[{"id":"n1","type":"tab"}]');
  });

  it("refuses a flow file that is not a JSON array", () => {
    const bad = path.join(dir, "bad.json");
    fs.writeFileSync(bad, '{"not": "a flow"}');
    assert.throws(() => copyFlow(bad, dir, false), /not a Node-RED flow/);
  });
});

/** Pids of `pid` and all its descendants, from /proc. */
function processTree(pid) {
  const parents = new Map();
  for (const entry of fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // the process ended while we looked
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  return tree;
}

function isRunning(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** The status code of a request (undefined if it fails); `form` makes it a urlencoded POST. */
function httpStatus(url, form) {
  return new Promise((resolve) => {
    const body = form && new URLSearchParams(form).toString();
    const headers = body ? { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body) } : {};
    const request = http.request(url, { method: body ? "POST" : "GET", headers, timeout: 2000 }, (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve(undefined));
    request.end(body);
  });
}

/** Runs start.js; `output()` is everything it printed so far. */
function launch(args, env) {
  const child = spawn(process.execPath, [START, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stdout.on("data", (chunk) => (text += chunk));
  child.stderr.on("data", (chunk) => (text += chunk));
  const exited = once(child, "exit");
  return { child, exited, output: () => text };
}

describe("npm start", { timeout: 120000 }, () => {
  it("runs the flow copy on Node-RED with a broker it starts, behind a password, and Ctrl-C stops everything", async (t) => {
    if (skipWithoutMosquitto(t)) return;
    const userDir = tempDir();
    const port = await freePort();
    const mqttUrl = `mqtt://127.0.0.1:${await freePort()}`;
    const shippedBefore = fs.readFileSync(FIXTURE, "utf8");
    const mtimeBefore = fs.statSync(FIXTURE).mtimeMs;
    const password = "test-password";
    const env = { PORT: String(port), MQTT_URL: mqttUrl, NODE_RED_USER_DIR: userDir, HOST: "", NODE_RED_ADMIN_PASSWORD: password };
    const run = launch([path.relative(REPO_ROOT, FIXTURE)], env);
    const fail = (message) => assert.fail(`${message}\n--- start.js output ---\n${run.output()}`);
    let client;
    try {
      // The editor answers once Node-RED has started.
      const deadline = Date.now() + 60000;
      let status;
      while (status !== 200 && Date.now() < deadline && run.child.exitCode === null) {
        status = await httpStatus(`http://127.0.0.1:${port}/`);
        if (status !== 200) await new Promise((r) => setTimeout(r, 250));
      }
      if (status !== 200) fail(`the editor did not answer 200 on / (last status ${status})`);
      if (!(await probeBroker(mqttUrl))) fail("no broker answers at MQTT_URL");
      assert.match(run.output(), /Broker : started Mosquitto at mqtt:\/\/127\.0\.0\.1:\d+/);
      assert.match(run.output(), new RegExp(`Editor : http://127\\.0\\.0\\.1:${port}/`));

      // With NODE_RED_ADMIN_PASSWORD the editor page loads, but its admin API wants a login as admin.
      const editor = `http://127.0.0.1:${port}`;
      assert.equal(await httpStatus(`${editor}/flows`), 401);
      const login = { client_id: "node-red-editor", grant_type: "password", scope: "*", username: "admin" };
      assert.equal(await httpStatus(`${editor}/auth/token`, { ...login, password: "wrong" }), 403);
      assert.equal(await httpStatus(`${editor}/auth/token`, { ...login, password }), 200);

      // The copy is what runs; the shipped file is untouched.
      const copy = path.join(userDir, "echo-flow.json");
      assert.equal(fs.readFileSync(copy, "utf8"), shippedBefore);
      assert.equal(fs.readFileSync(FIXTURE, "utf8"), shippedBefore);
      assert.equal(fs.statSync(FIXTURE).mtimeMs, mtimeBefore);
      assert.ok(fs.lstatSync(path.join(userDir, "node_modules", "node-red-contrib-mnist")).isSymbolicLink());

      // The flow got MQTT_URL and the topic defaults: a request on `mnist` comes back on `result`.
      client = await mqtt.connectAsync(mqttUrl, { reconnectPeriod: 0 });
      client.on("error", () => {});
      await client.subscribeAsync("result", { qos: 1 });
      const echoed = nextMessages(client, 1, 15000);
      // The flow's `mqtt in` may subscribe just after the editor answers: repeat until echoed.
      const repeat = setInterval(() => client.publish("mnist", "ping", { qos: 1 }), 250);
      try {
        client.publish("mnist", "ping", { qos: 1 });
        assert.equal((await echoed)[0].payload.toString(), "ping");
      } finally {
        clearInterval(repeat);
      }
      client.end(true);

      const tree = processTree(run.child.pid);
      assert.ok(tree.length >= 2, `start.js runs mosquitto as a child (${tree.join(", ")})`);
      run.child.kill("SIGINT");
      let timer;
      const late = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("start.js did not exit within 30 s of SIGINT")), 30000)));
      const [code] = await Promise.race([run.exited, late]).finally(() => clearTimeout(timer));
      assert.equal(code, 0, run.output());
      assert.match(run.output(), /SIGINT: stopping Node-RED and the mosquitto broker/);
      assert.match(run.output(), /Stopped\./);
      assert.deepEqual(tree.filter(isRunning), [], "no process of the launcher is left");
      assert.equal(await probeBroker(mqttUrl, 500), false);
    } finally {
      client?.end(true);
      if (run.child.exitCode === null) run.child.kill("SIGKILL");
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });

  it("says that MOSQUITTO names a path it cannot run, and runs the embedded broker instead", async () => {
    const userDir = tempDir();
    const port = await freePort();
    const run = launch([path.relative(REPO_ROOT, FIXTURE)], { PORT: String(port), MQTT_URL: `mqtt://127.0.0.1:${await freePort()}`, NODE_RED_USER_DIR: userDir, MOSQUITTO: "/nonexistent/mosquitto" });
    try {
      const deadline = Date.now() + 60000;
      while (!/Editor : http/.test(run.output()) && run.child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      const output = run.output();
      assert.match(output, /MOSQUITTO is set to \/nonexistent\/mosquitto, but there is no such file: starting the embedded aedes broker instead\. To use Mosquitto, correct the path/);
      assert.doesNotMatch(output, /Mosquitto is not installed/);
      assert.match(output, /Broker : started the embedded aedes broker at mqtt:\/\/127\.0\.0\.1:\d+ \(MOSQUITTO=\/nonexistent\/mosquitto: there is no such file\)/);
      run.child.kill("SIGINT");
      const [code] = await run.exited;
      assert.equal(code, 0, run.output());
    } finally {
      if (run.child.exitCode === null) run.child.kill("SIGKILL");
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });

  it("tells a MOSQUITTO that is a folder or not executable from a missing one", async () => {
    const saved = process.env.MOSQUITTO;
    const dir = tempDir();
    const plain = path.join(dir, "mosquitto");
    fs.writeFileSync(plain, "#!/bin/sh\n", { mode: 0o644 });
    try {
      for (const [given, problem] of [[dir, "it is a folder"], [plain, "it is not executable"]]) {
        process.env.MOSQUITTO = given;
        const said = [];
        const ensured = await ensureBroker({ url: `mqtt://127.0.0.1:${await freePort()}`, allowStart: true, say: (line) => said.push(line) });
        await ensured.stop();
        assert.equal(ensured.kind, "aedes");
        assert.match(said[0], new RegExp(`^MOSQUITTO is set to ${given.replace(/[.]/g, "\\.")}, but ${problem}: starting the embedded aedes broker instead`));
        if (problem === "it is not executable") assert.match(said[0], new RegExp(`chmod \\+x ${plain.replace(/[.]/g, "\\.")}`));
      }
    } finally {
      if (saved === undefined) delete process.env.MOSQUITTO;
      else process.env.MOSQUITTO = saved;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("with --external-broker, exits with a clear message when no broker answers", async () => {
    const userDir = tempDir();
    try {
      const mqttUrl = `mqtt://127.0.0.1:${await freePort()}`;
      const run = launch([path.relative(REPO_ROOT, FIXTURE), "--external-broker"], { PORT: String(await freePort()), MQTT_URL: mqttUrl, NODE_RED_USER_DIR: userDir });
      const [code] = await run.exited;
      assert.equal(code, 1);
      assert.match(run.output(), new RegExp(`no MQTT broker answers at ${mqttUrl.replace(/[.:/]/g, "\\$&")}`));
    } finally {
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });
});
