"use strict";
// Edge to central over the shipped Mosquitto bridge (mosquitto/bridge/), on
// loopback: an image source publishes through the edge broker, two Node-RED
// inference instances share the requests on the central broker, results come
// back to the edge. Then the link fails twice while requests keep coming:
//   1. the network between the brokers drops for a few seconds (central keeps
//      running): the edge holds the requests and forwards them when the link
//      returns, so every one is answered, once;
//   2. the central broker itself stops and restarts (restart() keeps its port and
//      database): the edge again holds and forwards every request, but Mosquitto
//      2.0 does not save $share subscriptions, so requests that reach central
//      before an inference instance has subscribed again have nobody to go to.
//      The test counts them from central's log and checks that every other
//      request is answered once (docs/deployment.md, "When the central broker restarts");
//   3. the same restart with one inference instance on a persistent session
//      (flows/mnist-infer.json): central restores its plain subscription from its
//      database and queues for it, so every request is answered, once.
// The figures (sent, answered, lost, duplicated, time to recover) are printed.
// One file: the tests run in turn on one set-up (two brokers, the link, two Node-REDs).
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");
const mqtt = require("mqtt");
const { startMosquitto, freePort, REPO_ROOT } = require("../dist/scripts/broker.js");
const { findMosquitto } = require("../dist/scripts/mosquitto-process.js");
const { skipWithoutMosquitto } = require("./support/broker");
const { loadSamples } = require("./support/samples");
const { startNodeRed: startNodeRedProcess } = require("./support/node-red-process");

const EDGE_CONFIG = path.join(REPO_ROOT, "mosquitto", "bridge", "edge.conf");
const CENTRAL_CONFIG = path.join(REPO_ROOT, "mosquitto", "bridge", "central.conf");
const SHARE_SUBSCRIPTION = "$share/mnist-infer/mnist";
const REQUEST_EVERY_MS = 50;
const OUTAGE_MS = 3000;
const samples = loadSamples();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The shipped edge config with the bridge pointed at `port`: the one
 * `address` line is the only change (scripts/broker.ts then replaces the
 * listener port, the data folder and the log stream, as for every config).
 */
function edgeConfigFor(port, dir) {
  const shipped = fs.readFileSync(EDGE_CONFIG, "utf8");
  const addresses = shipped.split("\n").filter((line) => /^address\s/.test(line));
  assert.equal(addresses.length, 1, "edge.conf has one bridge address");
  const file = path.join(dir, "edge.conf");
  fs.writeFileSync(file, shipped.replace(/^address\s.*$/m, `address 127.0.0.1:${port}`));
  return file;
}

/** The shipped central config, also logging every packet, so the test can see who got each request. */
function centralConfigFor(dir) {
  const file = path.join(dir, "central.conf");
  fs.writeFileSync(file, `${fs.readFileSync(CENTRAL_CONFIG, "utf8")}\nlog_type all\n`);
  return file;
}

/**
 * A TCP pipe the bridge connects through, standing for the network between the
 * two sites: cut() drops it (both brokers keep running), restore() brings it back.
 */
async function startLink(targetPort) {
  const port = await freePort();
  const sockets = new Set();
  let server;
  const track = (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  const listen = () =>
    new Promise((resolve, reject) => {
      server = net.createServer((client) => {
        const upstream = net.connect(targetPort, "127.0.0.1");
        track(client);
        track(upstream);
        client.once("close", () => upstream.destroy());
        upstream.once("close", () => client.destroy());
        client.pipe(upstream).pipe(client);
      });
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
  await listen();
  return {
    port,
    async cut() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
    restore: listen,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/**
 * A Node-RED instance as the deployment guide runs one: `node dist/scripts/start.js <flow>`
 * with its own MQTT_URL, MQTT_CLIENT_ID, PORT and NODE_RED_USER_DIR. Resolves once
 * every output of `ready` has been printed.
 */
async function startNodeRed({ name, flow, mqttUrl, clientId, ready }) {
  const instance = await startNodeRedProcess({ flow, mqttUrl, ready, readyTimeoutMs: 45000, env: { MQTT_CLIENT_ID: clientId, NODE_RED_ADMIN_PASSWORD: "" } });
  return { ...instance, name };
}

/** Central's log since its last start, as lines (the file gathers every run). */
function centralLogSinceStart(file) {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  let start = 0;
  lines.forEach((line, i) => {
    if (/mosquitto version \S+ starting/.test(line)) start = i;
  });
  return lines.slice(start);
}

/** Client ids that have subscribed to the share group in `lines` of central's log, in order. */
function shareSubscribers(lines) {
  const ids = [];
  for (let i = 0; i + 1 < lines.length; i++) {
    const match = /Received SUBSCRIBE from (\S+)/.exec(lines[i]);
    if (match && lines[i + 1].includes(SHARE_SUBSCRIPTION) && !ids.includes(match[1])) ids.push(match[1]);
  }
  return ids;
}

/**
 * Requests (PUBLISH on `mnist` from the bridge) that central received before
 * the first inference instance subscribed again: with nobody in the share group,
 * Mosquitto drops them (it keeps QoS 1 messages only for subscriptions it has).
 */
function requestsBeforeGroupReformed(lines, bridgeId) {
  let count = 0;
  for (let i = 0; i < lines.length; i++) {
    if (/Received SUBSCRIBE from /.test(lines[i]) && lines[i + 1]?.includes(SHARE_SUBSCRIPTION)) return count;
    if (new RegExp(`Received PUBLISH from ${bridgeId} \\(d\\d, q1, r0, m\\d+, 'mnist'`).test(lines[i])) count++;
  }
  return count;
}

/** Requests per inference client id, from `Sending PUBLISH to <id> ... 'mnist'` lines (first sends only). */
function deliveriesByClient(lines) {
  const counts = {};
  for (const line of lines) {
    const match = /Sending PUBLISH to (\S+) \(d0, q\d, r0, m\d+, 'mnist'/.exec(line);
    if (match) counts[match[1]] = (counts[match[1]] || 0) + 1;
  }
  return counts;
}

describe("edge and central brokers joined by the shipped Mosquitto bridge", { timeout: 120000 }, () => {
  let dir;
  let central;
  let edge;
  let link;
  let edgeClient;
  const instances = [];
  /** Every request seen at the edge: id -> { sentAt, via }; its results there: id -> count, id -> time of the first. */
  const requests = new Map();
  const answers = new Map();
  const answerTimes = new Map();
  let linkState = "";
  let lastFlowRequestAt = 0;
  let bridgeId;

  before(async () => {
    if (!findMosquitto()) return; // each test then skips, or fails in CI (skipWithoutMosquitto)
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-bridge-"));
    central = await startMosquitto({ config: centralConfigFor(dir), logFile: path.join(dir, "central.log") });
    link = await startLink(central.port);
    edge = await startMosquitto({ config: edgeConfigFor(link.port, dir), logFile: path.join(dir, "edge.log") });
    bridgeId = /^remote_clientid\s+(\S+)/m.exec(fs.readFileSync(EDGE_CONFIG, "utf8"))[1];

    // What an operator would watch at the edge: every request, every result, the bridge's state.
    edgeClient = await mqtt.connectAsync(edge.url, { clientId: `bridge-test-watch-${process.pid}`, reconnectPeriod: 0 });
    edgeClient.on("error", () => {});
    edgeClient.on("message", (topic, payload) => {
      if (topic.startsWith("$SYS/broker/connection/")) {
        linkState = payload.toString();
        return;
      }
      let body;
      try {
        body = JSON.parse(payload);
      } catch {
        return;
      }
      if (topic === "mnist" && body.id !== undefined && !requests.has(body.id)) {
        const via = body.id.startsWith("client-") ? "client" : "flow";
        requests.set(body.id, { sentAt: Date.now(), via });
        if (via === "flow") lastFlowRequestAt = Date.now();
      }
      if (topic.startsWith("result") && body.id !== undefined) {
        answers.set(body.id, (answers.get(body.id) || 0) + 1);
        if (!answerTimes.has(body.id)) answerTimes.set(body.id, Date.now());
      }
    });
    await edgeClient.subscribeAsync({ mnist: { qos: 1 }, "result/#": { qos: 1 }, "$SYS/broker/connection/+/state": { qos: 1 } });

    // Two inference instances on central, each its own Node-RED (own PORT and user folder).
    const infer = [1, 2].map((n) =>
      startNodeRed({
        name: `infer-${n}`,
        flow: "flows/mnist-infer-shared.json",
        mqttUrl: central.url,
        clientId: `mnist-infer-${n}`,
        ready: [/Started flows/, /model \S+ loaded/, /Connected to broker/],
      }),
    );
    instances.push(...(await Promise.all(infer)));
    // The shared-subscription flow subscribes right after connecting; wait until central has both.
    const deadline = Date.now() + 10000;
    while (shareSubscribers(centralLogSinceStart(path.join(dir, "central.log"))).length < 2) {
      if (Date.now() > deadline) throw new Error("the inference instances did not subscribe to the share group");
      await sleep(50);
    }
  });

  after(async () => {
    await Promise.all(instances.map((instance) => instance.stop()));
    await edgeClient?.endAsync(true);
    link?.close();
    await edge?.stop();
    await central?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Ids of the requests first seen at the edge since `since`. */
  const seenSince = (since) => [...requests.entries()].filter(([, r]) => r.sentAt >= since).map(([id]) => id);

  /** Publishes labelled envelopes through the edge every REQUEST_EVERY_MS until stop(). */
  async function startPublisher(prefix) {
    const client = await mqtt.connectAsync(edge.url, { clientId: `bridge-test-${prefix}-${process.pid}`, reconnectPeriod: 0 });
    client.on("error", () => {});
    const startedAt = Date.now();
    let n = 0;
    let timer;
    const publishNext = () => {
      const sample = samples[n % samples.length];
      const id = `client-${prefix}-${n++}`;
      client.publish("mnist", JSON.stringify({ id, label: sample.label, image: sample.bytes.toString("base64"), sentAt: Date.now() }), { qos: 1 });
    };
    const run = () => (timer = setInterval(publishNext, REQUEST_EVERY_MS));
    run();
    return {
      /**
       * Runs `action` between two requests: once every request so far has been
       * answered and the last acknowledgements have had time to arrive. A broker
       * stopped or a link cut while a message is in flight can lose or repeat that
       * one message, which QoS 1 allows (seen here: a result whose PUBACK central had
       * not read before it stopped, sent again after the restart); the test is about
       * the requests sent during the outage.
       */
      async between(action) {
        clearInterval(timer);
        const deadline = Date.now() + 5000;
        const quiet = () => {
          // The mnist-input flow sends one every second: stay clear of its next one too.
          const sinceFlow = (Date.now() - lastFlowRequestAt) % 1000;
          return sinceFlow > 150 && sinceFlow < 600 && seenSince(startedAt).every((id) => answers.has(id));
        };
        while (!quiet() && Date.now() < deadline) await sleep(2);
        await sleep(100);
        await action();
        run();
      },
      async stop() {
        clearInterval(timer);
        await client.endAsync(); // after the edge's last PUBACK
      },
    };
  }

  /** Resolves with the time `condition()` became true, polling every 10 ms. */
  async function when(condition, what, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
      await sleep(10);
    }
    return Date.now();
  }

  /** Waits until all but `expectedMissing` of `ids` have an answer (or `timeoutMs`), then 1 s more for duplicates. */
  async function waitForAnswers(ids, timeoutMs, expectedMissing = 0) {
    const deadline = Date.now() + timeoutMs;
    while (ids.filter((id) => !answers.has(id)).length > expectedMissing && Date.now() < deadline) await sleep(50);
    await sleep(1000);
  }

  /**
   * One outage while requests flow: a second of requests, `down()` between two of
   * them, OUTAGE_MS of requests held at the edge, `up()`, then requests until the
   * bridge is back, `settle()` has resolved and a second more. Returns the times and the request ids.
   */
  async function outage(label, down, up, settle = async () => {}) {
    const publisher = await startPublisher(label);
    const windowStart = Date.now();
    await sleep(1000);
    let downAt;
    await publisher.between(async () => {
      downAt = Date.now();
      await down();
    });
    linkState = ""; // Mosquitto 2.0.11 does not always report the failure at the edge: wait for a fresh "1"
    await sleep(OUTAGE_MS);
    const upAt = Date.now();
    await up();
    const linkUpAt = await when(() => linkState === "1", "the bridge reconnecting", 30000);
    await settle();
    await sleep(1000);
    await publisher.stop();
    const sent = seenSince(windowStart);
    const during = sent.filter((id) => requests.get(id).sentAt >= downAt && requests.get(id).sentAt < linkUpAt);
    return { downAt, upAt, linkUpAt, sent, during };
  }

  /** SIGTERM, as systemd stops it: Mosquitto saves its database, which restart() starts from. */
  async function stopCentral() {
    process.kill(central.pid, "SIGTERM");
    await when(() => central.pid === undefined, "central stopping", 10000);
  }

  function figures(label, run, extra = {}) {
    const answered = run.sent.filter((id) => answers.has(id));
    const heldAnswered = run.during.filter((id) => answers.has(id));
    const result = {
      sent: run.sent.length,
      fromFlow: run.sent.filter((id) => requests.get(id).via === "flow").length,
      answered: answered.length,
      duplicated: run.sent.filter((id) => answers.get(id) > 1).length,
      during: run.during.length,
      duringAnswered: heldAnswered.length,
      // From the link's (or central's) return: the bridge reconnected, the last held request answered.
      linkBackMs: run.linkUpAt - run.upAt,
      recoverMs: heldAnswered.length ? Math.max(...heldAnswered.map((id) => answerTimes.get(id))) - run.upAt : undefined,
    };
    console.log(
      `# ${label}: ${result.sent} requests sent (${result.fromFlow} by the mnist-input flow), ${result.answered} answered, ` +
        `${result.duplicated} answered twice; ${result.during} sent while the link was down, ${result.duringAnswered} of them answered; ` +
        `after ${extra.what || "the link"} returned: bridge back in ${result.linkBackMs} ms` +
        (result.recoverMs !== undefined ? `, the held requests all answered in ${result.recoverMs} ms` : "") +
        (extra.note ? `; ${extra.note}` : ""),
    );
    return result;
  }

  it("carries requests from the edge to the inference instances and results back", async (t) => {
    if (skipWithoutMosquitto(t)) return;
    // The real input stage, on the edge: mnist-input.json publishes a labelled digit every second.
    instances.push(
      await startNodeRed({ name: "input", flow: "flows/mnist-input.json", mqttUrl: edge.url, clientId: "mnist-input-edge-1", ready: [/Started flows/, /Connected to broker/] }),
    );
    const publisher = await startPublisher("warmup");
    await sleep(2000);
    await publisher.stop();
    const sent = [...requests.keys()];
    await waitForAnswers(sent, 10000);
    const missing = sent.filter((id) => !answers.has(id));
    assert.deepEqual(missing, [], "every request sent through the edge is answered at the edge");
    assert.ok(sent.some((id) => requests.get(id).via === "flow"), "the mnist-input flow's requests went through the bridge");
    const counts = Object.values(deliveriesByClient(centralLogSinceStart(path.join(dir, "central.log"))));
    assert.equal(counts.length, 2, "both inference instances took requests");
    console.log(`# before any outage: ${sent.length} requests through the bridge, all answered; requests per inference instance: ${counts.join(" / ")}`);
  });

  it("holds requests at the edge while the link is down and has each answered once when it returns", async (t) => {
    if (skipWithoutMosquitto(t)) return;
    const run = await outage("link", () => link.cut(), () => link.restore());
    await waitForAnswers(run.sent, 20000);
    const result = figures("link down for 3 s, central running", run);
    assert.ok(result.during >= OUTAGE_MS / REQUEST_EVERY_MS / 2, `requests were sent during the outage (${result.during})`);
    assert.equal(result.duringAnswered, result.during, "every request sent while the link was down is answered");
    assert.equal(result.answered, result.sent, "every request is answered");
    assert.equal(result.duplicated, 0, "no request is answered twice");
  });

  it("holds requests at the edge while the central broker restarts; all that reach an inference instance are answered, once", async (t) => {
    if (skipWithoutMosquitto(t)) return;
    const logFile = path.join(dir, "central.log");
    let groupBack;
    const run = await outage(
      "central",
      stopCentral,
      async () => {
        await central.restart();
        // Node-RED retries every 5 s; each instance subscribes to the share group again when it reconnects.
        groupBack = when(() => shareSubscribers(centralLogSinceStart(logFile)).length === 2, "both inference instances subscribing again", 15000);
      },
      () => groupBack, // keep sending until they are back
    );
    const groupBackAt = await groupBack;
    const lost = requestsBeforeGroupReformed(centralLogSinceStart(logFile), bridgeId);
    await waitForAnswers(run.sent, 15000, lost);
    const unanswered = run.sent.filter((id) => !answers.has(id));
    const result = figures("central broker stopped for 3 s and restarted", run, {
      what: "central",
      note:
        `both inference instances back in ${groupBackAt - run.upAt} ms; ` +
        `${lost} requests reached central before an inference instance had subscribed again and were dropped ` +
        `(Mosquitto 2.0 does not keep $share subscriptions across a restart), ${unanswered.length} unanswered`,
    });
    assert.ok(result.during >= OUTAGE_MS / REQUEST_EVERY_MS / 2, `requests were sent during the outage (${result.during})`);
    assert.equal(result.duplicated, 0, "no request is answered twice");
    // Every request reached central (the edge held the ones sent during the outage):
    // each is either answered or one of those central had nobody to give to.
    assert.equal(unanswered.length, lost, "every request that reached central after the share group re-formed is answered");
    assert.equal(result.answered + lost, result.sent);
  });

  it("with one inference instance on a persistent session (mnist-infer.json), answers every request once across a central restart", async (t) => {
    if (skipWithoutMosquitto(t)) return;
    // The shared instances leave (clean sessions: their subscriptions go with them); one
    // mnist-infer.json takes over, whose fixed client id and clean session off make central
    // keep its plain subscription and queue its requests, in its database too.
    await Promise.all(instances.filter((instance) => instance.name.startsWith("infer-")).map((instance) => instance.stop()));
    const single = await startNodeRed({
      name: "infer-single",
      flow: "flows/mnist-infer.json",
      mqttUrl: central.url,
      clientId: "mnist-infer-central",
      ready: [/Started flows/, /model \S+ loaded/, /Connected to broker/],
    });
    instances.push(single);
    let back;
    const run = await outage(
      "single",
      stopCentral,
      async () => {
        await central.restart();
        back = when(() => /Connected to broker[\s\S]*Connected to broker/.test(single.output()), "the inference instance reconnecting", 15000);
      },
      () => back,
    );
    const backAt = await back;
    await waitForAnswers(run.sent, 15000);
    const result = figures("one persistent inference instance, central stopped for 3 s and restarted", run, {
      what: "central",
      note: `the inference instance back in ${backAt - run.upAt} ms`,
    });
    assert.ok(result.during >= OUTAGE_MS / REQUEST_EVERY_MS / 2, `requests were sent during the outage (${result.during})`);
    assert.equal(result.duringAnswered, result.during, "every request sent during the outage is answered");
    assert.equal(result.answered, result.sent, "every request is answered");
    assert.equal(result.duplicated, 0, "no request is answered twice");
  });
});
