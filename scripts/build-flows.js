"use strict";
// Writes the example flows in flows/ from one description of the three stages,
// so the single-stage flows and the chain stay identical where they overlap.
// Run `node scripts/build-flows.js` after changing a stage; the JSON is committed.
const fs = require("fs");
const crypto = require("crypto");
const out = process.argv[2] || require("path").join(__dirname, "..", "flows");
const ids = {};
const id = (name) => (ids[name] ||= crypto.createHash("sha1").update(name).digest("hex").slice(0, 16));

const envDefault = (name, fallback) => ({ name, type: "jsonata", value: `$env("${name}") ? $env("${name}") : "${fallback}"` });
const COMMON_ENV = [
  envDefault("MQTT_URL", "mqtt://127.0.0.1:1883"),
  envDefault("MQTT_PROTOCOL_VERSION", "4"),
  envDefault("MNIST_REQUEST_TOPIC", "mnist"),
  envDefault("MNIST_RESULT_TOPIC", "result"),
  envDefault("MNIST_ERROR_TOPIC", "result/error"),
];

function tab(key, label, info, extraEnv = []) {
  return { id: id(key), type: "tab", label, disabled: false, info, env: [...COMMON_ENV, ...extraEnv] };
}
/**
 * A broker connection. Delivery settings (docs/reliability.md):
 * - `persistent`: a fixed client id (MQTT_CLIENT_ID, default per flow) with
 *   clean session off, and subscriptions kept when the flow stops
 *   (autoUnsubscribe off), so the broker queues QoS 1 requests and results
 *   while Node-RED is disconnected: broker restarts, Node-RED restarts and
 *   redeploys (what is in Node-RED's hands at that moment is another matter).
 *   The MQTT 5 session lasts a day, like persistent_client_expiration.
 * - otherwise (the shared-subscription flow): a clean session. Mosquitto keeps
 *   handing an offline persistent member of a share group its share of the
 *   requests, where they wait until it returns; a clean member leaves the group
 *   when it disconnects, so the others take all the requests.
 * One connection per flow, on purpose: with separate connections for mqtt in and
 * mqtt out, after a broker restart the receiving one can be back before the
 * sending one, and Node-RED drops every result published meanwhile.
 * Credentials never appear here: put ${MQTT_USERNAME} / ${MQTT_PASSWORD} in the
 * broker's Security tab (stored in flows_cred.json); for mqtts:// URLs the
 * server certificate is verified, against NODE_EXTRA_CA_CERTS for a private CA
 * (docs/security.md).
 */
function broker(key, tabKey, name, { persistent = true } = {}) {
  return {
    id: id(key), type: "mqtt-broker", z: id(tabKey), name, broker: "${MQTT_URL}", port: "", clientid: "${MQTT_CLIENT_ID}", autoConnect: true,
    usetls: false, verifyservercert: true,
    protocolVersion: "${MQTT_PROTOCOL_VERSION}", keepalive: 60, cleansession: !persistent, autoUnsubscribe: !persistent,
    birthTopic: "", birthQos: "0", birthRetain: "false", birthPayload: "", birthMsg: {},
    closeTopic: "", closeQos: "0", closeRetain: "false", closePayload: "", closeMsg: {},
    willTopic: "", willQos: "0", willRetain: "false", willPayload: "", willMsg: {},
    userProps: "", sessionExpiry: persistent ? "86400" : "",
  };
}
/** MQTT_CLIENT_ID with a per-flow default; "" lets Node-RED pick a random id. */
const clientIdEnv = (fallback) => envDefault("MQTT_CLIENT_ID", fallback);
const comment = (key, tabKey, name, info, x, y) => ({ id: id(key), type: "comment", z: id(tabKey), name, info, x, y, wires: [] });
const inject = (key, tabKey, name, props, x, y, wires) => ({
  id: id(key), type: "inject", z: id(tabKey), name, props: props.map(([p, v, vt]) => (vt ? { p, v, vt } : { p })),
  repeat: "", crontab: "", once: false, onceDelay: 0.1, topic: "",
  x, y, wires: [wires.map(id)],
});
const mqttIn = (key, tabKey, brokerKey, name, topic, x, y, wires) => ({
  id: id(key), type: "mqtt in", z: id(tabKey), name, topic, qos: "1", datatype: "buffer", broker: id(brokerKey),
  nl: false, rap: true, rh: 0, inputs: 0, x, y, wires: [wires.map(id)],
});
// QoS 1 even when the topic comes with the message (replies): a blank qos would publish at msg.qos or 0.
const mqttOut = (key, tabKey, brokerKey, name, topic, x, y) => ({
  id: id(key), type: "mqtt out", z: id(tabKey), name, topic, qos: "1", retain: "false", respTopic: "", contentType: "",
  userProps: "", correl: "", expiry: "", broker: id(brokerKey), x, y, wires: [],
});
const fn = (key, tabKey, name, func, x, y, wires) => ({
  id: id(key), type: "function", z: id(tabKey), name, func, outputs: 1, timeout: 0, noerr: 0, initialize: "", finalize: "", libs: [], x, y, wires: [wires.map(id)],
});
/**
 * Hands back what `watched` (an mqtt out) has published to the node that sent
 * it, which has "confirm delivery" on: Node-RED's mqtt out drops messages while
 * its connection is down without a word, and the sender sends again what does
 * not come back (docs/reliability.md).
 */
const delivered = (key, tabKey, watched, sender, x, y) => ({
  id: id(key), type: "complete", z: id(tabKey), name: "delivered", scope: [id(watched)], uncaught: false, x, y, wires: [[id(sender)]],
});
const debug = (key, tabKey, name, x, y, complete = "payload") => ({
  id: id(key), type: "debug", z: id(tabKey), name, active: true, tosidebar: true, console: false, tostatus: false,
  complete, targetType: complete === "true" ? "full" : "msg", statusVal: "", statusType: "auto", x, y, wires: [],
});

// Results are addressed by mnist-infer itself (its Reply topic); error replies by
// this function after the Catch node. The topic is kept in msg.replyTopic: an
// error reply that mnist-infer raises again (it never came back through
// "delivered") then goes the same way, although the first pass removed
// msg.responseTopic.
const ERROR_REPLY = `// A request that could not be classified still gets an answer,
// so its sender learns why instead of waiting forever.
const error = msg.error || {};
msg.payload = {
    error: {
        code: error.code || "error",
        message: String(error.message || "unknown error").replace(/^\\w*Error: /, "")
    }
};
if (msg.id !== undefined) msg.payload.id = msg.id;
msg.replyTopic = msg.replyTopic || msg.responseTopic || env.get("MNIST_ERROR_TOPIC");
msg.topic = msg.replyTopic;
delete msg.responseTopic;
msg.retain = false;
msg.contentType = "application/json";
return msg;`;

// ---- the three stages, each a function of the tab it lives on
/**
 * The image source. With `resendAfter` (seconds) it also sends again, with the
 * same id, a request no answer came back for: only where the answers are wired
 * into it (the chain, from the output stage's mqtt in nodes).
 */
function inputStage(t, b, y0, interval, { resendAfter = "" } = {}) {
  const answers = resendAfter
    ? `\nThe results and error replies are wired back into the source too: a request\nstill unanswered after ${resendAfter} s (an inference instance died holding it) is\nsent again with the same id, at most 3 times.`
    : "";
  return [
    comment(`${t}-c-in`, t, "1 · Input: labelled digits to the broker", `\`mnist-image-source\` sends a held-out MNIST digit as a JSON envelope\n(id, label, base64 PNG, sentAt) to the request topic. Use the inject\nnodes to start, stop or send a burst. "delivered" hands each published\nrequest back to the source, which sends again any that Node-RED dropped\nwhile the broker was unreachable.${answers}`, 200, y0),
    inject(`${t}-start`, t, "start", [["payload", "start", "str"]], 130, y0 + 40, [`${t}-source`]),
    inject(`${t}-stop`, t, "stop", [["payload", "stop", "str"]], 130, y0 + 80, [`${t}-source`]),
    inject(`${t}-burst`, t, "burst of 500", [["payload", "burst", "str"], ["count", "500", "num"]], 150, y0 + 120, [`${t}-source`]),
    {
      id: id(`${t}-source`), type: "mnist-image-source", z: id(t), name: "", folder: "", listFile: "labels.txt", mode: "interval",
      interval: String(interval), autoStart: true, burstCount: "100", loop: true, shuffle: true, seed: "42", limit: "0", output: "envelope",
      confirmDelivery: true, resendAfter: resendAfter, resendTimes: "3", maxFileSize: "5", x: 380, y: y0 + 80, wires: [[id(`${t}-req-out`)]],
    },
    mqttOut(`${t}-req-out`, t, b, "requests", "${MNIST_REQUEST_TOPIC}", 620, y0 + 80),
    delivered(`${t}-req-delivered`, t, `${t}-req-out`, `${t}-source`, 140, y0 + 160),
  ];
}
function inferStage(t, b, y0, subscription = "${MNIST_REQUEST_TOPIC}") {
  return [
    comment(`${t}-c-infer`, t, "2 · Inference: classify each request, reply on the result topic", "Requests are raw image bytes or JSON envelopes. Results go to the result\ntopic (or an MQTT 5 request's response topic, with its correlation data);\nrequests that cannot be classified get an error reply on result/error.\n\"delivered\" hands each reply the mqtt out has published back to\nmnist-infer, which sends again any reply Node-RED dropped while the\nbroker was unreachable; a request the broker delivers twice is answered once.", 250, y0),
    mqttIn(`${t}-req-in`, t, b, "requests", subscription, 130, y0 + 60, [`${t}-infer`]),
    {
      id: id(`${t}-infer`), type: "mnist-infer", z: id(t), name: "", property: "payload", output: "payload", model: "", backend: "auto",
      maxBatch: 64, queueSize: 1000, queueMemory: 64, overflow: "reject-newest", maxBytes: 1048576, maxPixels: 24000000, preview: false,
      // Reply topic: results go where the request asked (MQTT 5) or to the result topic, not retained.
      replyTopic: "${MNIST_RESULT_TOPIC}", repeatWindow: 60, confirmDelivery: true, x: 340, y: y0 + 60, wires: [[id(`${t}-res-out`)]],
    },
    { id: id(`${t}-catch`), type: "catch", z: id(t), name: "infer errors", scope: [id(`${t}-infer`)], uncaught: false, x: 340, y: y0 + 120, wires: [[id(`${t}-error-reply`)]] },
    fn(`${t}-error-reply`, t, "to error topic", ERROR_REPLY, 550, y0 + 120, [`${t}-res-out`]),
    mqttOut(`${t}-res-out`, t, b, "replies", "", 760, y0 + 90),
    delivered(`${t}-res-delivered`, t, `${t}-res-out`, `${t}-infer`, 140, y0 + 120),
  ];
}
// Rows of nodes that show a status are 50-60 px apart: the status line takes the
// 16 px under its node, and must not touch the next row (the editor test checks).
// `answersTo`: a node (the chain's source) that also gets every result and error reply.
function outputStage(t, b, y0, answersTo = []) {
  return [
    comment(`${t}-c-out`, t, "3 · Output: live accuracy from the results", "`mnist-result` reads results (and the original chain's `tensor([7])`\ntext), keeps running accuracy, a confusion matrix and latency, and sends\na summary every 100 results or when asked. \"unsure?\" routes results the\nmodel was not sure of (result.unsure: probably not a digit) apart.", 220, y0),
    mqttIn(`${t}-res-in`, t, b, "results", "${MNIST_RESULT_TOPIC}", 130, y0 + 60, [`${t}-result`, ...answersTo]),
    mqttIn(`${t}-err-in`, t, b, "error replies", "${MNIST_ERROR_TOPIC}", 140, y0 + 120, [`${t}-result`, ...answersTo]),
    inject(`${t}-summary`, t, "summary", [["payload", "summary", "str"]], 130, y0 + 180, [`${t}-result`]),
    inject(`${t}-reset`, t, "reset", [["payload", "reset", "str"]], 130, y0 + 220, [`${t}-result`]),
    { id: id(`${t}-result`), type: "mnist-result", z: id(t), name: "", summaryEvery: "100", perResult: true, x: 400, y: y0 + 120, wires: [[id(`${t}-sure`)], [id(`${t}-dbg-summary`)]] },
    // Results the model was not sure of (probably not a digit) take their own way: here a
    // debug node of their own; in a real flow, a person's check or a request to write again.
    {
      id: id(`${t}-sure`), type: "switch", z: id(t), name: "unsure?", property: "result.unsure", propertyType: "msg",
      rules: [{ t: "true" }, { t: "else" }], checkall: "false", repair: false, outputs: 2, x: 630, y: y0 + 100,
      wires: [[id(`${t}-dbg-unsure`)], [id(`${t}-dbg-result`)]],
    },
    debug(`${t}-dbg-unsure`, t, "not sure it is a digit", 860, y0 + 80),
    debug(`${t}-dbg-result`, t, "each result", 830, y0 + 120),
    debug(`${t}-dbg-summary`, t, "statistics", 660, y0 + 160),
  ];
}

const ABOUT = "Set MQTT_URL (default mqtt://127.0.0.1:1883), MQTT_PROTOCOL_VERSION (4 or 5),\nMNIST_REQUEST_TOPIC (mnist), MNIST_RESULT_TOPIC (result) and MNIST_ERROR_TOPIC (result/error)\nin Node-RED's environment to change the broker and topics. MQTT_CLIENT_ID names this flow's\nMQTT session; for a broker with passwords and TLS see docs/security.md.";
const clientIdNote = (name) => `MQTT_CLIENT_ID defaults to ${name}: give each Node-RED running this flow its own.`;
const flows = {
  "mnist-chain.json": [
    tab("chain", "MNIST chain", `All three stages of the MNIST chain in one Node-RED, talking through the broker\nwith the built-in mqtt nodes: image source → mnist → inference → result → live accuracy.\n\n${ABOUT}\n${clientIdNote("mnist-chain")}`, [clientIdEnv("mnist-chain")]),
    broker("chain-broker", "chain", "MNIST broker"),
    ...inputStage("chain", "chain-broker", 40, 500, { resendAfter: "10" }),
    ...inferStage("chain", "chain-broker", 260),
    ...outputStage("chain", "chain-broker", 490, ["chain-source"]),
  ],
  "mnist-input.json": [
    tab("input", "MNIST input", `The input stage alone: publishes labelled digits to the request topic, like the\noriginal input service (which sent one raw PNG a second).\n\n${ABOUT}\n${clientIdNote("mnist-input")}`, [clientIdEnv("mnist-input")]),
    broker("input-broker", "input", "MNIST broker"),
    ...inputStage("input", "input-broker", 40, 1000),
  ],
  "mnist-infer.json": [
    tab("infer", "MNIST inference", `The inference stage alone: answers every request on the request topic. Any MQTT\nclient can use it, e.g. mosquitto_pub -t mnist -f digit.png and\nmosquitto_sub -t 'result/#'.\n\n${ABOUT}\n${clientIdNote("mnist-infer")}`, [clientIdEnv("mnist-infer")]),
    broker("infer-broker", "infer", "MNIST broker"),
    ...inferStage("infer", "infer-broker", 40),
  ],
  "mnist-infer-shared.json": [
    tab("shared", "MNIST inference (shared)", `The inference stage for several Node-RED instances at once: each subscribes to\n$share/<group>/<request topic>, so the broker (Mosquitto 2, MQTT 3.1.1 or 5) hands each\nrequest to exactly one of them. Deploy this flow on every instance.\nMNIST_SHARE_GROUP (default mnist-infer) names the group. Each instance has a clean\nsession (a random client id unless MQTT_CLIENT_ID is set), so when one stops the broker\ngives the others all the requests.\n\n${ABOUT}`, [
      clientIdEnv(""),
      { name: "MNIST_SUBSCRIPTION", type: "jsonata", value: '"$share/" & ($env("MNIST_SHARE_GROUP") ? $env("MNIST_SHARE_GROUP") : "mnist-infer") & "/" & ($env("MNIST_REQUEST_TOPIC") ? $env("MNIST_REQUEST_TOPIC") : "mnist")' },
    ]),
    broker("shared-broker", "shared", "MNIST broker", { persistent: false }),
    ...inferStage("shared", "shared-broker", 40, "${MNIST_SUBSCRIPTION}"),
  ],
  "mnist-output.json": [
    tab("output", "MNIST output", `The output stage alone: prints each result and keeps live accuracy, like the\noriginal output service (which printed tensor([7])), which it can also read.\n\n${ABOUT}\n${clientIdNote("mnist-output")}`, [clientIdEnv("mnist-output")]),
    broker("output-broker", "output", "MNIST broker"),
    ...outputStage("output", "output-broker", 40),
  ],
};
for (const [file, nodes] of Object.entries(flows)) fs.writeFileSync(`${out}/${file}`, JSON.stringify(nodes, null, 4) + "\n");

// The dashboard flow is written by hand (its ui-* nodes hold the page's templates);
// only where its nodes sit, and settings the other flows share, are set here.
// Left to right as messages go, every "delivered" left of the node it hands back
// to, rows with a status 60 px apart.
const DASHBOARD_LAYOUT = {
  // Draw → mnist-infer → prediction and probabilities
  b35c845bcf08cc4f: [240, 40], // comment
  "5fdf500999e55053": [130, 100], // drawing pad
  "9aca30aeb80239aa": [330, 100], // mnist infer
  "51472f0df0c69663": [550, 100], // to card and bars
  bd3a89386eae9e9f: [780, 80], // prediction
  "683a4966c9edfae1": [780, 140], // probabilities
  dea962f896bd1e58: [340, 160], // catch: unreadable drawing
  "1308975281b01388": [550, 160], // say why
  // The MQTT chain → live accuracy and confusion matrix
  e1ac0c3c455822ce: [250, 240], // comment
  "88b62a17190b61fa": [110, 300], // delivered → source
  "2049edac91e4cca7": [330, 300], // mnist-image-source
  bcf2f50991c3ec47: [570, 300], // mqtt out: requests
  e447b05a76ce2dba: [110, 380], // mqtt in: requests
  e58dac0a1c0a63b6: [330, 380], // mnist infer
  d4e5ea6822d15960: [110, 440], // delivered → mnist infer
  "5d1f8b0954c4dc8f": [330, 440], // catch: infer errors
  "192787bf946cc70c": [550, 440], // to error topic
  "1e371ff28ecbd73e": [770, 410], // mqtt out: replies
  "13e2efd2aba16ad9": [110, 520], // mqtt in: results
  a8a0df7b53cb142f: [110, 580], // mqtt in: error replies
  "3b3970fe7089b92b": [110, 640], // reset button
  "1dc6db4065406371": [390, 580], // mnist-result
  d70ced76fee81ee8: [690, 580], // accuracy and confusion matrix
};
const dashboardFile = `${out}/mnist-dashboard.json`;
const dashboardIn = require("path").join(__dirname, "..", "flows", "mnist-dashboard.json");
const dashboard = JSON.parse(fs.readFileSync(fs.existsSync(dashboardFile) ? dashboardFile : dashboardIn, "utf8"));
for (const node of dashboard) {
  if (node.x === undefined) continue;
  const at = DASHBOARD_LAYOUT[node.id];
  if (!at) throw new Error(`mnist-dashboard.json: node ${node.id} (${node.type} ${node.name}) has no place in DASHBOARD_LAYOUT`);
  [node.x, node.y] = at;
  if (node.type === "mnist-infer") node.backend ??= "auto";
}
fs.writeFileSync(dashboardFile, JSON.stringify(dashboard, null, 4) + "\n");
console.log([...Object.keys(flows), "mnist-dashboard.json (layout)"].join(" "));
