"use strict";
// The secured broker of mosquitto/secure/ (TLS, passwords, acl.conf) on a real
// Mosquitto, and the example flows logging in to it from environment variables.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, spawnSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const mqtt = require("mqtt");
const { startSecureMosquitto, generateSecureFiles, ROLES } = require("../dist/scripts/secure-broker.js");
const { freePort, REPO_ROOT } = require("../dist/scripts/broker.js");
const { findMosquitto } = require("../dist/scripts/mosquitto-process.js");
const { prepareUserDir } = require("../dist/scripts/user-folder.js");
const { loadSamples } = require("./support/samples");

const FLOWS = path.join(REPO_ROOT, "flows");
const [sample] = loadSamples(1);

/** What is missing to run these tests (Mosquitto, OpenSSL), or "" ; in CI a missing tool fails the run. */
function missingTools() {
  const missing = [];
  if (!findMosquitto()) missing.push("mosquitto");
  if (spawnSync("openssl", ["version"]).status !== 0) missing.push("openssl");
  if (missing.length && process.env.CI) throw new Error(`${missing.join(" and ")} not installed, and CI must run the security tests (apt-get install ${missing.join(" ")})`);
  return missing.join(" and ");
}

/** How a connection attempt ends: "connected", or the error's message. Never throws, never reconnects. */
function tryConnect(url, options) {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 3000, ...options });
    const finish = (outcome) => {
      client.removeAllListeners();
      client.on("error", () => {});
      client.end(true);
      resolve(outcome);
    };
    client.once("connect", () => finish("connected"));
    client.once("error", (err) => finish(err.message));
    client.once("close", () => finish("closed before CONNACK"));
  });
}

describe("secured Mosquitto (mosquitto/secure/)", { timeout: 90000 }, () => {
  let broker;
  let ca;
  const clients = [];

  /** A connected client logged in as `role` (a key of ROLES), trusting the demo CA. */
  async function as(role, options = {}) {
    const { username, password } = broker.files.users[role];
    const client = await mqtt.connectAsync(broker.url, { ca, username, password, reconnectPeriod: 0, connectTimeout: 5000, ...options });
    client.on("error", () => {});
    clients.push(client);
    return client;
  }

  let missing = "";
  before(async () => {
    missing = missingTools();
    if (missing) return;
    broker = await startSecureMosquitto();
    ca = fs.readFileSync(broker.files.caFile);
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.endAsync(true).catch(() => {})));
    await broker?.stop();
  });

  it("generates a CA, a certificate for localhost, a hashed password file and per-role credentials, secrets kept private", (t) => {
    if (!broker) return t.skip(`${missing} not installed (apt-get install ${missing.replace(" and ", " ")})`);
    const { files } = broker;
    const passwd = fs.readFileSync(files.passwordFile, "utf8");
    for (const [role, username] of Object.entries(ROLES)) {
      const { password } = files.users[role];
      assert.match(passwd, new RegExp(`^${username}:\\$7\\$`, "m"), `${username} has a PBKDF2 hash`);
      assert.ok(!passwd.includes(password), "no password is stored in clear");
      const env = fs.readFileSync(files.envFiles[role], "utf8");
      assert.match(env, new RegExp(`^MQTT_USERNAME=${username}$`, "m"));
      assert.match(env, /^MQTT_URL=mqtts:\/\/127\.0\.0\.1:8883$/m);
      assert.equal(fs.statSync(files.envFiles[role]).mode & 0o077, 0, `${role}.env is private`);
    }
    for (const secret of [files.passwordFile, files.keyFile, path.join(files.dir, "ca.key")]) {
      assert.equal(fs.statSync(secret).mode & 0o077, 0, `${path.basename(secret)} is readable by its owner only`);
    }
    assert.throws(() => generateSecureFiles({ dir: files.dir }), /--force/, "existing credentials are not replaced by accident");
  });

  it("refuses anonymous clients, a wrong password and an unknown user", async (t) => {
    if (!broker) return t.skip(`${missing} not installed (apt-get install ${missing.replace(" and ", " ")})`);
    const { username } = broker.files.users.infer;
    assert.match(await tryConnect(broker.url, { ca }), /Not authorized/);
    assert.match(await tryConnect(broker.url, { ca, username, password: "wrong" }), /Not authorized/);
    assert.match(await tryConnect(broker.url, { ca, username: "intruder", password: broker.files.users.infer.password }), /Not authorized/);
    assert.match(await tryConnect(broker.url, { ca, protocolVersion: 5 }), /Not authorized/);
    assert.match(await tryConnect(broker.url, { ca, protocolVersion: 5, username, password: "wrong" }), /Not authorized/);
    assert.equal(await tryConnect(broker.url, { ca, username, password: broker.files.users.infer.password }), "connected");
  });

  it("TLS: the demo CA verifies the broker; without it the client refuses; plain MQTT on the TLS port fails", async (t) => {
    if (!broker) return t.skip(`${missing} not installed (apt-get install ${missing.replace(" and ", " ")})`);
    const login = broker.files.users.viewer;
    assert.equal(await tryConnect(broker.url, { ca, ...login }), "connected");
    assert.equal(await tryConnect(broker.url.replace("127.0.0.1", "localhost"), { ca, ...login }), "connected", "the certificate names localhost too");
    // Only the system's CAs: the demo certificate is not trusted, nothing is sent.
    assert.match(await tryConnect(broker.url, login), /self[- ]signed|unable to verify|certificate/i);
    // Another CA (a second generated one) is not trusted either.
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-other-ca-"));
    try {
      const foreign = generateSecureFiles({ dir: other });
      assert.match(await tryConnect(broker.url, { ca: fs.readFileSync(foreign.caFile), ...login }), /certificate|verify|self[- ]signed/i);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
    // Plain TCP to the TLS port: the broker reads the CONNECT as a broken TLS handshake and hangs up.
    const plain = await tryConnect(`mqtt://127.0.0.1:${broker.port}`, login);
    assert.notEqual(plain, "connected");
    assert.ok(!/Not authorized/.test(plain), `no MQTT answer at all (${plain})`);
  });

  it("each role publishes only where acl.conf lets it (denied publishes never reach a permitted subscriber)", async (t) => {
    if (!broker) return t.skip(`${missing} not installed (apt-get install ${missing.replace(" and ", " ")})`);
    // The chain role may read both topics: it observes what gets through.
    const observer = await as("chain");
    const seen = [];
    observer.on("message", (topic, payload) => seen.push(`${topic} ${payload}`));
    await observer.subscribeAsync(["mnist", "result/#"], { qos: 1 });
    const publishers = { source: await as("source"), infer: await as("infer"), viewer: await as("viewer") };
    const topics = ["mnist", "result", "result/error"];
    for (const [role, client] of Object.entries(publishers)) {
      for (const topic of topics) await client.publishAsync(topic, `from ${role}`, { qos: 1 });
    }
    // A last permitted message: delivery keeps order per publisher, so once it arrives nothing else is coming.
    await publishers.infer.publishAsync("result", "end", { qos: 1 });
    const deadline = Date.now() + 5000;
    while (!seen.includes("result end") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(seen.filter((m) => m !== "result end").sort(), ["mnist from source", "result from infer", "result/error from infer"]);

    // MQTT 5 publishers are told: reason code 0x87 (not authorized) in the PUBACK.
    const v5 = await as("source", { protocolVersion: 5 });
    await assert.rejects(v5.publishAsync("result", "from source over MQTT 5", { qos: 1 }), (err) => err.code === 0x87);
    await v5.publishAsync("mnist", "allowed over MQTT 5", { qos: 1 });
  });

  it("each role reads only what acl.conf lets it, also through a shared subscription", async (t) => {
    if (!broker) return t.skip(`${missing} not installed (apt-get install ${missing.replace(" and ", " ")})`);
    const got = { source: [], infer: [], viewer: [], shared: [] };
    const readers = { source: await as("source"), infer: await as("infer"), viewer: await as("viewer"), shared: await as("infer") };
    for (const [name, client] of Object.entries(readers)) {
      client.on("message", (topic, payload) => got[name].push(`${topic} ${payload}`));
      // Mosquitto 2.0 grants every subscription in the SUBACK and filters at delivery.
      if (name === "shared") await client.subscribeAsync("$share/mnist-infer/mnist", { qos: 1 });
      else await client.subscribeAsync(["#", "mnist", "result/#"], { qos: 1 });
    }
    const writer = await as("chain");
    for (const topic of ["mnist", "result", "result/error"]) await writer.publishAsync(topic, "x", { qos: 1 });
    await writer.publishAsync("result/end", "x", { qos: 1 });
    const deadline = Date.now() + 5000;
    while (!got.viewer.some((m) => m.startsWith("result/end")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    const unique = (list) => [...new Set(list)].filter((m) => !m.startsWith("result/end")).sort();
    assert.deepEqual(unique(got.source), [], "the source reads nothing");
    assert.deepEqual(unique(got.infer), ["mnist x"], "inference reads requests only");
    assert.deepEqual(unique(got.viewer), ["result x", "result/error x"], "a viewer reads results only");
    assert.deepEqual(got.shared, ["mnist x"], "inference reads requests through $share/<group>/mnist");
  });

  it("flows/mnist-infer.json logs in with ${MQTT_USERNAME}/${MQTT_PASSWORD} from the environment and verifies TLS with NODE_EXTRA_CA_CERTS", { timeout: 60000 }, async (t) => {
    if (!broker) return t.skip(`${missing} not installed (apt-get install ${missing.replace(" and ", " ")})`);
    // The shipped flows hold no credentials: only names of environment variables.
    for (const file of fs.readdirSync(FLOWS).filter((f) => f.endsWith(".json"))) {
      const text = fs.readFileSync(path.join(FLOWS, file), "utf8");
      assert.ok(!/"credentials"|"password"\s*:|"user"\s*:/.test(text), `${file} carries no credentials`);
    }
    const flow = JSON.parse(fs.readFileSync(path.join(FLOWS, "mnist-infer.json"), "utf8"));
    const brokerNodes = flow.filter((n) => n.type === "mqtt-broker");
    for (const node of brokerNodes) assert.equal(node.verifyservercert, true, "the server certificate is verified for mqtts:// URLs");

    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-secure-red-"));
    const port = await freePort();
    prepareUserDir(userDir);
    fs.writeFileSync(path.join(userDir, "flows.json"), JSON.stringify(flow));
    // What a user stores (plain here, encrypted by Node-RED otherwise): placeholders, not secrets.
    const placeholders = { user: "${MQTT_USERNAME}", password: "${MQTT_PASSWORD}" };
    fs.writeFileSync(path.join(userDir, "flows_cred.json"), JSON.stringify(Object.fromEntries(brokerNodes.map((node) => [node.id, placeholders]))));
    fs.writeFileSync(path.join(userDir, "settings.js"), `module.exports = ${JSON.stringify({
      uiHost: "127.0.0.1", uiPort: port, flowFile: "flows.json", credentialSecret: false, mqttReconnectTime: 500,
      telemetry: { enabled: false, updateNotification: false }, logging: { console: { level: "info" } },
    })};\n`);
    const { username, password } = broker.files.users.infer;
    const env = { ...process.env, MQTT_URL: broker.url, MQTT_USERNAME: username, MQTT_PASSWORD: password, NODE_EXTRA_CA_CERTS: broker.files.caFile, MQTT_CLIENT_ID: "secure-infer-test" };
    const red = spawn(process.execPath, [require.resolve("node-red/red.js"), "--userDir", userDir, "--settings", path.join(userDir, "settings.js")], { env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    red.stdout.on("data", (chunk) => (output += chunk));
    red.stderr.on("data", (chunk) => (output += chunk));
    try {
      const viewer = await as("viewer");
      const source = await as("source");
      const results = [];
      viewer.on("message", (topic, payload) => results.push(JSON.parse(payload)));
      await viewer.subscribeAsync("result/#", { qos: 1 });
      // Node-RED connects a few seconds after start: resend until the first answer.
      const request = JSON.stringify({ id: "over-tls", label: sample.label, image: sample.bytes.toString("base64") });
      const deadline = Date.now() + 45000;
      while (!results.length && Date.now() < deadline && red.exitCode === null) {
        await source.publishAsync("mnist", request, { qos: 1 });
        for (let i = 0; i < 10 && !results.length; i++) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(results.length, `no result from Node-RED over TLS:\n${output}\n--- broker ---\n${broker.log()}`);
      assert.equal(results[0].id, "over-tls");
      assert.equal(results[0].digit, sample.label);
      assert.match(output, new RegExp(`Connected to broker: secure-infer-test@${broker.url.replace(/[.]/g, "\\.")}`));
      assert.ok(!output.includes(password), "Node-RED never logs the password");
      assert.match(broker.log(), /as secure-infer-test \(p2, c0, k60, u'mnist-infer'\)/, "logged in as mnist-infer, persistent session");
    } finally {
      red.kill("SIGTERM");
      await new Promise((resolve) => (red.exitCode !== null ? resolve() : red.once("exit", resolve)));
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });
});
