"use strict";
// Across hosts (issue 15, item 4): four hosts on this machine, each a network
// namespace of its own joined by veth pairs to a bridge in a fifth ("switch")
// namespace, addresses 10.77.0.0/24 only inside them (test/support/netns.js):
//   broker   10.77.0.1   Mosquitto, a minimal config of the test's own
//   infer-1  10.77.0.11  Node-RED on flows/mnist-infer-shared.json
//   infer-2  10.77.0.12  Node-RED on flows/mnist-infer-shared.json
//   edge     10.77.0.21  one Node-RED on flows/mnist-input.json and flows/mnist-output.json
// The source on the edge sends a digit every SEND_EVERY_MS, with Resend
// unanswered on (off with MNIST_MULTI_HOST_RESEND=0). Under that load:
// infer-1's link is cut (eth0 down on its side); infer-2's Node-RED is killed
// (SIGKILL) and started again; then infer-1's link comes back. The test
// counts, at mnist-result, what every id the source sent came to: shown once,
// shown twice, or never, and prints the times to recover.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { REPO_ROOT } = require("../dist/scripts/broker.js");
const { findMosquitto } = require("../dist/scripts/mosquitto-process.js");
const { skipWithoutMosquitto } = require("./support/broker");
const { Network, netnsProblem } = require("./support/netns");

const START = path.join(REPO_ROOT, "dist", "scripts", "start.js");
const SEND_EVERY_MS = 15;
const SUBNET = "10.77.0";
const HOSTS = { broker: `${SUBNET}.1`, "infer-1": `${SUBNET}.11`, "infer-2": `${SUBNET}.12`, edge: `${SUBNET}.21` };
const MQTT_URL = `mqtt://${HOSTS.broker}:1883`;
const SHARE = "$share/mnist-infer/mnist";
/** Output of a Node-RED running an inference flow that can answer: flows started, model loaded, broker connected. */
const INFER_READY = [/Started flows/, /model \S+ loaded/, /Connected to broker/];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const readFlow = (file) => JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "flows", file), "utf8"));

/** Resolves with the time `condition()` became true; throws after `timeoutMs` saying `what`. */
async function until(condition, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
  return Date.now();
}

/** The broker host's config: listens on its namespace address only, queues as mosquitto/mosquitto.conf does. */
function brokerConfig(dir) {
  const file = path.join(dir, "mosquitto.conf");
  fs.writeFileSync(
    file,
    [
      `listener 1883 ${HOSTS.broker}`,
      "allow_anonymous true",
      "set_tcp_nodelay true",
      "max_queued_messages 10000",
      "max_queued_bytes 134217728",
      "max_inflight_messages 100",
      "persistence false",
      "log_dest stderr", // stdout into a pipe is not flushed line by line
      "log_type error",
      "log_type warning",
      "log_type notice",
      "log_type information",
      "log_type subscribe",
      "connection_messages true",
      "",
    ].join("\n"),
  );
  return file;
}

/**
 * The edge's flow: flows/mnist-input.json and flows/mnist-output.json as two
 * tabs of one Node-RED (each tab keeps its own MQTT_CLIENT_ID default,
 * mnist-input and mnist-output), the source sending every SEND_EVERY_MS once
 * told to start, and three function nodes that log what the test counts: each
 * id the source sends (sends again included), each result or error reply
 * mnist-result passes on, and its summaries.
 */
function edgeFlow(dir) {
  const input = readFlow("mnist-input.json");
  const output = readFlow("mnist-output.json");
  const source = input.find((n) => n.type === "mnist-image-source");
  const result = output.find((n) => n.type === "mnist-result");
  source.interval = String(SEND_EVERY_MS);
  source.autoStart = false;
  const atLeastOnce = enableAtLeastOnce(source, input, output);
  const tap = (id, z, name, func) => ({ id, type: "function", z, name, func, outputs: 1, timeout: 0, noerr: 0, initialize: "", finalize: "", libs: [], x: 900, y: 400, wires: [[]] });
  const taps = [
    tap("0000mhtapsent001", source.z, "mh sent", 'node.log("MH sent " + JSON.stringify({ id: msg.id, at: Date.now() }));\nreturn null;'),
    tap("0000mhtapshown01", result.z, "mh shown", 'const r = msg.result || {};\nnode.log("MH shown " + JSON.stringify({ id: r.id, error: r.error ? r.error.code : undefined, correct: r.correct, at: Date.now() }));\nreturn null;'),
    tap("0000mhtapsumm001", result.z, "mh summary", 'const s = msg.payload;\nnode.log("MH summary " + JSON.stringify({ count: s.count, duplicates: s.duplicates, errors: s.errors, accuracy: s.accuracy, at: Date.now() }));\nreturn null;'),
  ];
  source.wires[0].push(taps[0].id);
  result.wires[0].push(taps[1].id);
  result.wires[1].push(taps[2].id);
  const injectNamed = (flow, name) => flow.find((n) => n.type === "inject" && n.name === name).id;
  const file = path.join(dir, "edge-flow.json");
  fs.writeFileSync(file, JSON.stringify([...input, ...output, ...taps], null, 2));
  return { file, atLeastOnce, inject: { start: injectNamed(input, "start"), stop: injectNamed(input, "stop"), summary: injectNamed(output, "summary") } };
}

/** Seconds without an answer before the source sends a request again, and how many times at most. */
const RESEND_AFTER_S = 5;
const RESEND_TIMES = 5;

/**
 * mnist-image-source's Resend unanswered (issue 15, item 3: a request that got
 * no answer is sent again, same id, after a timeout, up to N times), switched on,
 * with mnist-result's output (each answer once) wired back into the source
 * through a pair of link nodes, as the two stages are on separate tabs.
 * MNIST_MULTI_HOST_RESEND=0 leaves it off, to measure what is lost without it.
 * Returns a description of the settings, or undefined when off.
 */
function enableAtLeastOnce(source, input, output) {
  if (process.env.MNIST_MULTI_HOST_RESEND === "0") return undefined;
  source.resendAfter = String(RESEND_AFTER_S);
  source.resendTimes = String(RESEND_TIMES);
  const result = output.find((n) => n.type === "mnist-result");
  const linkOut = { id: "0000mhlinkout001", type: "link out", z: result.z, name: "answers to the source", mode: "link", links: ["0000mhlinkin0001"], x: 900, y: 460, wires: [] };
  const linkIn = { id: "0000mhlinkin0001", type: "link in", z: source.z, name: "answers", links: [linkOut.id], x: 120, y: 460, wires: [[source.id]] };
  result.wires[0].push(linkOut.id);
  input.push(linkIn);
  output.push(linkOut);
  return `resendAfter ${RESEND_AFTER_S} s, resendTimes ${RESEND_TIMES}`;
}

describe("across hosts: three Node-RED hosts and a Mosquitto host, each in its own network namespace", { timeout: 300000 }, () => {
  let problem;
  let network;
  let dir;
  let broker;
  let edge;
  let edgeSetup;
  const infer = {};
  /** What the edge's taps logged: id -> first time sent; id -> every pass through mnist-result; summaries. */
  const sent = new Map();
  const shown = new Map();
  const shownTimes = [];
  const summaries = [];
  let sends = 0;
  let lastShownAt = 0;

  /** Node-RED (the launcher, as `npm start` runs it) on `host`, with its own user folder. */
  async function startNodeRed(host, flow, { clientId, ready }) {
    const userDir = fs.mkdtempSync(path.join(dir, `${host}-`));
    const env = { ...process.env, MQTT_URL, PORT: "1880", NODE_RED_USER_DIR: userDir, NODE_RED_ADMIN_PASSWORD: "" };
    delete env.HOST; // the editor on the namespace's own loopback
    if (clientId) env.MQTT_CLIENT_ID = clientId;
    else delete env.MQTT_CLIENT_ID;
    const instance = network.spawn(host, process.execPath, [START, flow, "--external-broker"], { env, cwd: REPO_ROOT, label: `Node-RED on ${host}` });
    const deadline = Date.now() + 120000;
    for (const pattern of ready) await instance.waitFor(pattern, Math.max(0, deadline - Date.now()));
    return instance;
  }

  const startInfer = (n) => startNodeRed(`infer-${n}`, "flows/mnist-infer-shared.json", { clientId: `mh-infer-${n}`, ready: INFER_READY });

  /** Resolves once the broker has logged `clientId` subscribing to `topic` after `from` characters of its output. */
  const subscribed = (clientId, topic, from = 0) => broker.waitFor(new RegExp(`\\b${clientId} \\d ${topic.replace(/[$/]/g, "\\$&")}\\s*$`, "m"), 30000, from);

  /** Presses an inject node of the edge's flow, through its Node-RED's admin API on the edge's own loopback. */
  async function inject(id) {
    const script = `fetch("http://127.0.0.1:1880/inject/${id}", { method: "POST" }).then((r) => process.exit(r.status === 200 ? 0 : 2), (e) => { console.error(e.message); process.exit(1); })`;
    const outcome = await network.exec("edge", process.execPath, ["-e", script]);
    assert.equal(outcome.code, 0, `inject ${id} on the edge: ${outcome.stderr}`);
  }

  before(async () => {
    problem = netnsProblem();
    if (problem || !findMosquitto()) return; // the test skips, or fails in CI
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-multi-host-"));
    fs.chmodSync(dir, 0o755);
    network = new Network();
    process.once("exit", () => network.destroySync());
    for (const [name, address] of Object.entries(HOSTS)) network.addHost(name, `${address}/24`);

    broker = network.spawn("broker", findMosquitto(), ["-c", brokerConfig(dir)], { label: "mosquitto on broker" });
    await broker.waitFor(/mosquitto version \S+ running/, 10000);

    [infer[1], infer[2]] = await Promise.all([startInfer(1), startInfer(2)]);
    await Promise.all([subscribed("mh-infer-1", SHARE), subscribed("mh-infer-2", SHARE)]);

    edgeSetup = edgeFlow(dir);
    edge = await startNodeRed("edge", edgeSetup.file, { ready: [/Started flows/, /Connected to broker[\s\S]*Connected to broker/] });
    await Promise.all([subscribed("mnist-output", "result"), subscribed("mnist-output", "result/error")]);
    edge.onLine((line) => {
      const match = /MH (sent|shown|summary) (\{.*\})\s*$/.exec(line);
      if (!match) return;
      let event;
      try {
        event = JSON.parse(match[2]);
      } catch {
        return; // a line cut short; the counts then show it
      }
      if (match[1] === "sent") {
        sends++;
        if (!sent.has(event.id)) sent.set(event.id, event.at);
      } else if (match[1] === "shown") {
        if (!shown.has(event.id)) shown.set(event.id, []);
        shown.get(event.id).push(event);
        shownTimes.push(event.at);
        lastShownAt = Date.now();
      } else {
        summaries.push(event);
      }
    });
  });

  after(async () => {
    await network?.destroy();
    if (network) assert.deepEqual(network.existingNamespaces(), [], "every namespace the test made is gone");
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a cut link and a killed inference host under load: every image the source sends is counted once at mnist-result", async (t) => {
    if (problem) {
      if (process.env.CI) throw new Error(`CI must run the multi-host test: ${problem}`);
      t.skip(problem);
      return;
    }
    if (skipWithoutMosquitto(t)) return;

    await inject(edgeSetup.inject.start);
    await until(() => shown.size >= 100, "answers flowing across the hosts before any fault", 60000);

    // 1. infer-1's link is cut: the broker cannot tell yet and keeps handing it its share.
    const cutAt = Date.now();
    network.cut("infer-1");
    await sleep(3000);

    // 2. infer-2's Node-RED is killed outright, and started again.
    const brokerLogMark = broker.output().length;
    const killedAt = Date.now();
    process.kill(infer[2].pid, "SIGKILL");
    await infer[2].exited;
    await broker.waitFor(/Client mh-infer-2 (closed its connection|disconnected)/, 30000, brokerLogMark);
    const brokerNoticedAt = Date.now();
    infer[2] = await startInfer(2);
    await subscribed("mh-infer-2", SHARE, brokerLogMark);
    const backAt = Date.now();
    await sleep(3000);

    // 3. infer-1's link comes back.
    const restoredAt = Date.now();
    network.restore("infer-1");
    await sleep(3000);
    await inject(edgeSetup.inject.stop);
    const stoppedAt = Date.now();

    // Everything sent is answered once infer-1's TCP connection retransmits, which
    // can take a while after a long cut (the retransmission timer backs off). Without
    // sending again, what infer-2 held when it was killed never comes: then wait until
    // infer-1 has caught up (every request sent between the cut and a second before
    // the kill, which infer-2 had long answered or infer-1 holds, is answered) and
    // nothing has come for 5 s.
    const missing = () => [...sent.keys()].filter((id) => !shown.has(id));
    const beforeKill = [...sent].filter(([, at]) => at >= cutAt && at < killedAt - 1000).map(([id]) => id);
    const settled = () =>
      missing().length === 0 || (!edgeSetup.atLeastOnce && beforeKill.every((id) => shown.has(id)) && Date.now() - lastShownAt > 5000);
    await until(settled, "every request answered", 120000).catch(() => {}); // the assertions below say what is missing
    await sleep(1500); // room for a late repeat to show up
    const summariesBefore = summaries.length;
    await inject(edgeSetup.inject.summary);
    await until(() => summaries.length > summariesBefore, "mnist-result's summary", 10000);
    const summary = summaries.at(-1);

    const lost = missing();
    const passedTwice = [...shown].filter(([, passes]) => passes.length > 1).map(([id]) => id);
    const results = [...shown.values()].filter((passes) => !passes[0].error).length;
    const errorReplies = [...shown.values()].filter((passes) => passes[0].error).length;
    // Times to recover: the first answer to a request sent after each event, and when the held ones came.
    const firstAnswerSentAfter = (time) => Math.min(...[...shown].filter(([id]) => sent.get(id) >= time).map(([, passes]) => passes[0].at));
    const heldIds = [...sent].filter(([id, at]) => at >= cutAt && at < restoredAt && shown.get(id)?.[0].at >= restoredAt).map(([id]) => id);
    const heldAnswers = heldIds.map((id) => shown.get(id)[0].at);
    const gaps = shownTimes.filter((at) => at >= cutAt).sort((a, b) => a - b);
    let longestSilence = 0;
    for (let i = 1; i < gaps.length; i++) longestSilence = Math.max(longestSilence, gaps[i] - gaps[i - 1]);
    const figures = {
      sent: sent.size,
      sentAgain: sends - sent.size,
      lost: lost.length,
      lostSentBeforeBrokerNoticedKill: lost.filter((id) => sent.get(id) < brokerNoticedAt).length,
      passedTwice: passedTwice.length,
      counted: summary.count,
      repeatsIgnored: summary.duplicates,
      errorReplies,
      accuracy: summary.accuracy,
      cutToFirstAnswerMs: firstAnswerSentAfter(cutAt) - cutAt,
      killToBrokerNoticedMs: brokerNoticedAt - killedAt,
      killToInfer2BackMs: backAt - killedAt,
      killToFirstAnswerMs: firstAnswerSentAfter(killedAt) - killedAt,
      heldOnCutHost: heldIds.length,
      restoreToFirstHeldAnswerMs: heldAnswers.length ? Math.min(...heldAnswers) - restoredAt : undefined,
      restoreToLastHeldAnswerMs: heldAnswers.length ? Math.max(...heldAnswers) - restoredAt : undefined,
      cutMs: restoredAt - cutAt,
      longestSilenceMs: longestSilence,
      loadMs: stoppedAt - cutAt,
    };
    console.log(
      `# across hosts (${edgeSetup.atLeastOnce ? `at-least-once: ${edgeSetup.atLeastOnce}` : "no sending again"}): ` +
        `${figures.sent} images sent every ${SEND_EVERY_MS} ms (${figures.sentAgain} sends again), ${figures.lost} lost ${JSON.stringify(lost.slice(0, 20))} ` +
        `(${figures.lostSentBeforeBrokerNoticedKill} of them sent before the broker saw infer-2 go), ` +
        `${figures.passedTwice} passed on twice by mnist-result, ${figures.counted} counted, ${figures.repeatsIgnored} repeated answers ignored, ` +
        `${figures.errorReplies} error replies, accuracy ${figures.accuracy}`,
    );
    console.log(
      `# recovery: after the cut the first answer to a new request in ${figures.cutToFirstAnswerMs} ms; ` +
        `after the kill the broker saw infer-2 go in ${figures.killToBrokerNoticedMs} ms, infer-2 was back in ${figures.killToInfer2BackMs} ms, ` +
        `answers flowed again ${figures.killToFirstAnswerMs} ms after the kill; infer-1's link was down ${figures.cutMs} ms and held ${figures.heldOnCutHost} requests, ` +
        `answered from ${figures.restoreToFirstHeldAnswerMs} ms to ${figures.restoreToLastHeldAnswerMs} ms after it came back; longest time without an answer ${figures.longestSilenceMs} ms (the source sent for ${figures.loadMs} ms from the cut on)`,
    );

    assert.ok(figures.heldOnCutHost > 0, "the cut held requests on infer-1 (the broker kept giving it its share), answered once its link came back");
    assert.ok(Number.isFinite(figures.killToFirstAnswerMs), "answers flowed again after the kill");
    assert.deepEqual(passedTwice, [], "mnist-result passes each id on once");
    assert.equal(summary.count, results, "and counts each result once");
    assert.equal(errorReplies, 0, "no request got an error reply");
    assert.ok(summary.accuracy >= 0.97, `accuracy ${summary.accuracy}`);
    if (edgeSetup.atLeastOnce) {
      assert.deepEqual(lost, [], "every image sent is counted at mnist-result: the source sent again what the killed host held");
    } else {
      // Without sending again, only what infer-2 had taken when it was killed can be lost.
      assert.deepEqual(lost.filter((id) => sent.get(id) >= brokerNoticedAt), [], "every image sent after the broker saw infer-2 go is counted");
      if (lost.length) t.diagnostic(`${lost.length} lost without the source's at-least-once option: the requests infer-2 held when it was killed`);
    }
  });
});
