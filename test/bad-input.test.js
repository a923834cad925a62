"use strict";
// Bad input through the broker: flows/mnist-infer.json in a real Node-RED
// runtime with its own mqtt nodes, on a real Mosquitto. Every bad request gets
// an error reply on result/error (with its id when it had one), and the next
// good request is still answered. Also: the size limit at the broker and in the
// node, file paths that must not be followed, and a broken model.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("child_process");
const fs = require("fs");
const http = require("http");
const os = require("os");
const path = require("path");
const { FLOW_NODES: NODES, mqttConnected, load, startServer, stopServer, unload, helper } = require("./support/flow");
const { startTestBroker, skipUnlessMosquitto } = require("./support/broker");
const { connect } = require("./support/mqtt-client");
const { loadSamples } = require("./support/samples");

const STATUS_NODE = require("@node-red/nodes/core/common/25-status.js");
const FLOW_FILE = path.resolve(__dirname, "..", "flows", "mnist-infer.json");
const BROKER_LIMIT = 8 * 1024 * 1024; // message_size_limit in mosquitto/mosquitto.conf
const [good, other] = loadSamples(2);

function readFlow() {
  return JSON.parse(fs.readFileSync(FLOW_FILE, "utf8"));
}

/** Everything a plain client receives on result/#, and a way to wait for the next matching message. */
function inbox(client) {
  const messages = [];
  const waiters = new Set();
  client.on("message", (topic, payload) => {
    let json;
    try {
      json = JSON.parse(payload);
    } catch {
      json = undefined;
    }
    messages.push({ topic, json });
    for (const waiter of waiters) waiter();
  });
  return {
    messages,
    /** The first message from index `from` on that satisfies `test`. */
    next(test, from, timeoutMs = 15000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = messages.slice(from).find(test);
          if (!found) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching reply within ${timeoutMs} ms; received since: ${JSON.stringify(messages.slice(from)).slice(0, 500)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}

/** A PNG whose header claims `width`×`height` pixels. */
function pngClaiming(width, height) {
  const bytes = Buffer.from(good.bytes);
  bytes.writeUInt32BE(width, 16);
  bytes.writeUInt32BE(height, 20);
  return bytes;
}

/** Whether some process holds `fifo` open for reading, i.e. tried to read it (open blocks until a writer comes). */
function fifoHasReader(fifo) {
  try {
    fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    return true;
  } catch (err) {
    if (err.code === "ENXIO") return false;
    throw err;
  }
}

describe("bad input through the broker (flows/mnist-infer.json)", { timeout: 120000 }, () => {
  let broker;
  let client;
  let replies;
  let served = 0;
  // A web server and a named pipe that a followed reference would touch.
  const fetched = [];
  let web;
  let trap;
  let trapDir;

  before(async () => {
    trapDir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-trap-"));
    trap = path.join(trapDir, "digit.png");
    const made = spawnSync("mkfifo", [trap]);
    if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr}`);
    web = http.createServer((request, response) => {
      fetched.push(request.url);
      response.end();
    });
    await new Promise((resolve) => web.listen(0, "127.0.0.1", resolve));

    broker = await startTestBroker();
    process.env.MQTT_URL = broker.url;
    await startServer();
    const flow = readFlow();
    await load(NODES, flow);
    await mqttConnected(flow);
    client = await connect(broker.url);
    // mqtt.js leaves Nagle's algorithm on: each QoS 1 publish would wait ~40 ms for a delayed ACK.
    client.stream.setNoDelay?.(true);
    replies = inbox(client);
    await client.subscribeAsync("result/#", { qos: 1 });
  });
  after(async () => {
    await client?.endAsync();
    await unload();
    await stopServer();
    await broker?.stop();
    delete process.env.MQTT_URL;
    web?.close();
    if (trapDir) fs.rmSync(trapDir, { recursive: true, force: true });
  });

  /** Publishes `payload`; resolves with its error reply (or undefined when `expectNone`), after checking a good request is then answered. */
  async function send(payload, { expectNone = false } = {}) {
    const from = replies.messages.length;
    await client.publishAsync("mnist", payload, { qos: 1 });
    const error = expectNone ? undefined : await replies.next((m) => m.topic === "result/error", from);
    const id = `good-${++served}`;
    const sample = served % 2 ? good : other;
    await client.publishAsync("mnist", JSON.stringify({ id, label: sample.label, image: sample.bytes.toString("base64") }), { qos: 1 });
    const answer = await replies.next((m) => m.topic === "result" && m.json?.id === id, from);
    assert.equal(answer.json.digit, sample.label, "the next good request is still answered correctly");
    const errors = replies.messages.slice(from).filter((m) => m.topic === "result/error");
    assert.equal(errors.length, expectNone ? 0 : 1, `error replies: ${JSON.stringify(errors)}`);
    if (error) {
      assert.equal(typeof error.json.error.code, "string");
      assert.ok(error.json.error.message.length > 20 && !/^\w*Error:/.test(error.json.error.message), `a clear message: ${error.json.error.message}`);
    }
    return error?.json;
  }

  /** [name, payload, code, message pattern, id the reply must carry] */
  const cases = [
    ["an empty payload", () => Buffer.alloc(0), "empty"],
    ["one byte", () => Buffer.from([0x89]), "unsupported"],
    ["random bytes", () => Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 97 + 13) % 256)), "unsupported"],
    ["plain text", () => "hello, is this a digit?", "bad-base64", /neither JSON nor valid base64/],
    ["HTML", () => "<!doctype html><html><body><img src=x onerror=alert(1)>7</body></html>", "bad-base64"],
    ["a PDF", () => Buffer.concat([Buffer.from("%PDF-1.7\n"), Buffer.alloc(200, 0xe2)]), "unsupported", /PDF/],
    ["a truncated PNG", () => good.bytes.subarray(0, 60), "truncated"],
    ["a PNG whose header claims 60000×60000 pixels", () => pngClaiming(60000, 60000), "too-large", /60000×60000/],
    ["a PNG one pixel over maxPixels (24,000,000)", () => pngClaiming(6000, 4001), "too-large", /6000×4001/],
    ["a corrupt JPEG", () => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(100, 7)]), "corrupt"],
    ["JSON without an image", () => JSON.stringify({ id: "no-image", label: 3 }), "bad-envelope", /no "image" field/, "no-image"],
    ["broken JSON", () => '{"id": "broken", "image": ', "bad-json"],
    ["invalid base64 in an envelope", () => JSON.stringify({ id: "b64", image: "***not base64***" }), "bad-base64", undefined, "b64"],
    ["an envelope whose image is a number", () => JSON.stringify({ id: "num", image: 7 }), "bad-envelope", /number/, "num"],
    ["a label that is not a digit", () => JSON.stringify({ id: "lbl", label: 12, image: good.bytes.toString("base64") }), "bad-label", undefined, "lbl"],
    ["an id of 10,000 characters", () => JSON.stringify({ id: "x".repeat(10000), image: good.bytes.toString("base64") }), "bad-envelope", /id/],
    ["a pixel array of the wrong length", () => JSON.stringify(new Array(100).fill(0)), "bad-pixels", /784 values/],
    ["NaN pixels (not JSON)", () => `[${new Array(784).fill("NaN").join(",")}]`, "bad-json"],
    ["pixels of 1e309 (Infinity once parsed)", () => `[${new Array(784).fill("1e309").join(",")}]`, "bad-pixels", /Infinity/],
    ["pixels of 1e308", () => JSON.stringify(new Array(784).fill(1e308)), "bad-pixels"],
    ["negative pixels", () => JSON.stringify(new Array(784).fill(-1)), "bad-pixels"],
    ["pixels that are strings", () => JSON.stringify(new Array(784).fill("7")), "bad-pixels"],
    ["{data,width,height} claiming 100000×100000", () => JSON.stringify({ data: [0, 0, 0, 0], width: 100000, height: 100000 }), "too-large"],
    ["a blank image", () => JSON.stringify(new Array(784).fill(0)), "no-ink"],
    ["arrays nested 400,000 deep (800 KB)", () => "[".repeat(400000) + "]".repeat(400000), "bad-pixels"],
    ["envelopes nested 50,000 deep", () => '{"image":'.repeat(50000) + '"x"' + "}".repeat(50000), "bad-envelope"],
    ["a JSON object of 60,000 keys", () => JSON.stringify(Object.fromEntries(Array.from({ length: 60000 }, (_, i) => [`k${i}`, i]))), "bad-envelope", /no "image" field/],
    ["a JSON array of 400,000 numbers", () => `[${new Array(400000).fill(0).join(",")}]`, "bad-pixels"],
    ["JSON just over maxBytes (1 MiB)", () => JSON.stringify({ id: "big", image: "A".repeat(1024 * 1024) }), "too-large"],
  ];
  for (const [name, payload, code, pattern, id] of cases) {
    it(`refuses ${name} (${code})`, async () => {
      const reply = await send(payload());
      assert.equal(reply.error.code, code, reply.error.message);
      if (pattern) assert.match(reply.error.message, pattern);
      if (id) assert.equal(reply.id, id, "the error reply names the request");
    });
  }

  it("size limit: 8 MiB (the broker's limit) reaches the node and is refused there as too-large; 1 byte more is dropped by the broker, unanswered", async (t) => {
    if (skipUnlessMosquitto(t, broker, "message_size_limit")) return;
    const atLimit = await send(Buffer.alloc(BROKER_LIMIT, 1));
    assert.equal(atLimit.error.code, "too-large");
    assert.match(atLimit.error.message, /8388608 bytes, over the limit of 1048576 bytes/);
    // Over the limit Mosquitto drops the message and completes the QoS 1 handshake: no reply can come.
    await send(Buffer.alloc(BROKER_LIMIT + 1, 1), { expectNone: true });
    const inEnvelope = await send(JSON.stringify({ id: "big-envelope", image: Buffer.alloc(5 * 1024 * 1024, 1).toString("base64") }));
    assert.equal(inEnvelope.error.code, "too-large");
  });

  it("SVG that refers to a web address and a file is refused, and nothing is fetched or read", async () => {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="28" height="28">` +
      `<image href="http://127.0.0.1:${web.address().port}/digit.png" width="28" height="28"/>` +
      `<image xlink:href="file://${trap}" width="28" height="28"/></svg>`;
    const asText = await send(svg);
    assert.equal(asText.error.code, "bad-base64", "raw SVG text is neither an image nor base64");
    const asBase64 = await send(JSON.stringify({ id: "svg", image: Buffer.from(svg).toString("base64") }));
    assert.equal(asBase64.error.code, "unsupported");
    assert.match(asBase64.error.message, /SVG/);
    // The same SVG behind a byte-order mark, which librsvg would still render.
    const withBom = await send(JSON.stringify({ id: "svg-bom", image: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(svg)]).toString("base64") }));
    assert.equal(withBom.error.code, "unsupported");
    assert.deepEqual(fetched, [], "no request reached the web server");
    assert.equal(fifoHasReader(trap), false, "nobody opened the referenced file");
  });

  it("file paths and file: URLs in a request are not followed: refused as bad input, and no file is read", async () => {
    const paths = ["/etc/passwd", "file:///etc/passwd", trap, `file://${trap}`, "../../../../etc/shadow", "C:\\Windows\\win.ini"];
    for (const value of paths) {
      for (const payload of [value, JSON.stringify({ id: "path", image: value })]) {
        const reply = await send(payload);
        assert.equal(reply.error.code, "file-path", `${payload}: ${reply.error.code} ${reply.error.message}`);
        assert.match(reply.error.message, /looks like a file path .*never reads files named in messages/);
        assert.ok(!/root:|\[fonts\]/.test(reply.error.message), "no file content in the reply");
      }
    }
    assert.equal(fifoHasReader(trap), false, "nobody opened the named pipe given as a path");
  });
});

describe("a broken model through the broker", { timeout: 60000 }, () => {
  let broker;
  let client;
  let dir;
  before(async () => {
    broker = await startTestBroker();
    process.env.MQTT_URL = broker.url;
    await startServer();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-bad-model-"));
    // The models are in the user directory: the only place (with the package's models) a model may come from.
    helper.settings({ userDir: dir });
  });
  after(async () => {
    helper.settings({});
    await client?.endAsync();
    await stopServer();
    await broker.stop();
    delete process.env.MQTT_URL;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, model, pattern] of [
    ["missing", () => "no-such-model.onnx", /not found/],
    ["not ONNX", () => {
      fs.writeFileSync(path.join(dir, "bogus.onnx"), "this is not a model");
      return "bogus.onnx";
    }, /not a loadable ONNX model/],
  ]) {
    it(`a ${name} model: red status, a clear error reply for each request, Node-RED keeps running`, async () => {
      const flow = readFlow();
      const infer = flow.find((n) => n.type === "mnist-infer");
      infer.model = model();
      // A Status node sees the infer node's status from the start.
      flow.push({ id: "watch-status", type: "status", z: infer.z, scope: [infer.id], wires: [["statuses"]] }, { id: "statuses", type: "helper", z: infer.z });
      await load([...NODES, STATUS_NODE], flow);
      try {
        const statusSeen = new Promise((resolve) => {
          helper.getNode("statuses").on("input", (msg) => {
            if (msg.status.fill === "red") resolve(msg.status);
          });
        });
        await mqttConnected(flow);
        client = await connect(broker.url);
        const replies = inbox(client);
        await client.subscribeAsync("result/#", { qos: 1 });
        for (let i = 0; i < 3; i++) {
          await client.publishAsync("mnist", JSON.stringify({ id: `m${i}`, image: good.bytes.toString("base64") }), { qos: 1 });
          const reply = await replies.next((m) => m.topic === "result/error" && m.json?.id === `m${i}`, 0);
          assert.equal(reply.json.error.code, "model");
          assert.match(reply.json.error.message, pattern);
        }
        const status = await Promise.race([statusSeen, new Promise((resolve) => setTimeout(resolve, 5000, { fill: "none" }))]);
        assert.equal(status.fill, "red", "the node shows the failure");
        assert.equal(status.text, "mnist-infer.status.model-failed");
        assert.equal(replies.messages.filter((m) => m.topic === "result").length, 0);
      } finally {
        await client?.endAsync();
        client = undefined;
        await unload();
      }
    });
  }
});
