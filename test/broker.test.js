"use strict";
// scripts/broker.ts against real brokers: Mosquitto from the shipped config
// (its limits, shared subscriptions, persistence across restart) and aedes.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");
const { once } = require("events");
const mqtt = require("mqtt");
const { probeBroker, freePort, ensureBroker, startMosquitto, SHIPPED_CONFIG } = require("../dist/scripts/broker.js");
const { startTestBroker, skipUnlessMosquitto, skipWithoutMosquitto, connectClient, nextMessages } = require("./support/broker");

const MESSAGE_SIZE_LIMIT = 8 * 1024 * 1024; // message_size_limit in mosquitto/mosquitto.conf

function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return !fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].startsWith("Z");
  } catch {
    return false;
  }
}

describe("broker (default kind)", { timeout: 60000 }, () => {
  let broker;
  before(async () => {
    broker = await startTestBroker();
  });
  after(async () => {
    await broker?.stop();
  });

  it("Mosquitto runs the shipped config on a free port", (t) => {
    if (skipUnlessMosquitto(t, broker, "running the shipped config")) return;
    assert.notEqual(broker.port, 1883);
    assert.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);
    const config = fs.readFileSync(broker.configPath, "utf8");
    const settings = (text) => text.split("\n").filter((line) => /^[a-z]/.test(line));
    const shipped = settings(fs.readFileSync(SHIPPED_CONFIG, "utf8"));
    // Every shipped setting is kept except the listener port, the data folder and the log stream.
    assert.deepEqual(
      settings(config).filter((line) => !/^(listener|persistence_location|log_dest)/.test(line)),
      shipped.filter((line) => !/^(listener|persistence_location|log_dest)/.test(line)),
    );
    assert.ok(settings(config).includes(`listener ${broker.port} 127.0.0.1`));
    assert.ok(settings(config).includes(`persistence_location ${broker.dataDir}/`));
    assert.ok(isRunning(broker.pid));
  });

  it("delivers a published message to a subscriber (QoS 0 and 1)", async () => {
    const subscriber = await connectClient(broker.url);
    const publisher = await connectClient(broker.url);
    try {
      await subscriber.subscribeAsync("mnist", { qos: 1 });
      const received = nextMessages(subscriber, 2);
      await publisher.publishAsync("mnist", "qos0", { qos: 0 });
      await publisher.publishAsync("mnist", "qos1", { qos: 1 });
      assert.deepEqual((await received).map((m) => m.payload.toString()).sort(), ["qos0", "qos1"]);
    } finally {
      subscriber.end(true);
      publisher.end(true);
    }
  });

  it("drops a message over message_size_limit, keeps the connection, and passes one at the limit", async (t) => {
    if (skipUnlessMosquitto(t, broker, "message_size_limit")) return;
    const subscriber = await connectClient(broker.url);
    const publisher = await connectClient(broker.url); // MQTT 3.1.1, as the chain uses
    try {
      await subscriber.subscribeAsync("mnist", { qos: 1 });
      const received = nextMessages(subscriber, 1);
      // Mosquitto completes QoS 1 for the dropped message: a 3.1.1 publisher sees a normal PUBACK.
      await publisher.publishAsync("mnist", Buffer.alloc(MESSAGE_SIZE_LIMIT + 1, 1), { qos: 1 });
      assert.ok(publisher.connected, "the publisher stays connected");
      await publisher.publishAsync("mnist", Buffer.alloc(MESSAGE_SIZE_LIMIT, 2), { qos: 1 });
      // Delivery keeps publish order, so the first message to arrive shows whether the oversize one got through.
      const [message] = await received;
      assert.equal(message.payload.length, MESSAGE_SIZE_LIMIT);
      assert.equal(message.payload[0], 2);
    } finally {
      subscriber.end(true);
      publisher.end(true);
    }
  });

  it("splits a shared subscription ($share/<group>/mnist) between two subscribers, each message exactly once", async (t) => {
    if (skipUnlessMosquitto(t, broker, "shared subscriptions")) return;
    const workers = [await connectClient(broker.url), await connectClient(broker.url)];
    const publisher = await connectClient(broker.url);
    try {
      const got = [[], []];
      workers.forEach((worker, i) => worker.on("message", (topic, payload) => got[i].push(payload.toString())));
      for (const worker of workers) await worker.subscribeAsync("$share/infer/mnist", { qos: 1 });
      const count = 40;
      for (let i = 0; i < count; i++) await publisher.publishAsync("mnist", `request-${i}`, { qos: 1 });
      const deadline = Date.now() + 5000;
      while (got[0].length + got[1].length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200)); // room for a duplicate to show up
      const all = [...got[0], ...got[1]].sort();
      assert.deepEqual(all, Array.from({ length: count }, (_, i) => `request-${i}`).sort());
      assert.ok(got[0].length > 0 && got[1].length > 0, `both workers get messages (${got[0].length} / ${got[1].length})`);
    } finally {
      workers.forEach((worker) => worker.end(true));
      publisher.end(true);
    }
  });

  it("restart keeps the port and a persistent session's queue (a 3,000-request burst)", async () => {
    const session = { clientId: `restart-test-${process.pid}`, clean: false };
    const subscriber = await connectClient(broker.url, session);
    await subscriber.subscribeAsync("mnist", { qos: 1 });
    await subscriber.endAsync();

    const publisher = await connectClient(broker.url);
    const count = 3000;
    await Promise.all(Array.from({ length: count }, (_, i) => publisher.publishAsync("mnist", String(i), { qos: 1 })));
    publisher.end(true);

    const { port, url } = broker;
    const pidBefore = broker.pid;
    await broker.restart();
    assert.equal(broker.port, port);
    assert.equal(broker.url, url);
    if (broker.kind === "mosquitto") assert.notEqual(broker.pid, pidBefore, "a new mosquitto process");
    assert.equal(await probeBroker(url), true);

    // Listen before connecting: the queue arrives right behind the CONNACK.
    const resumed = mqtt.connect(url, { ...session, reconnectPeriod: 0 });
    resumed.on("error", () => {});
    try {
      const received = nextMessages(resumed, count, 20000);
      await once(resumed, "connect");
      assert.equal(new Set((await received).map((m) => m.payload.toString())).size, count);
    } finally {
      await resumed.endAsync();
      // Leave no persistent session behind for the other tests.
      (await connectClient(url, { clientId: session.clientId, clean: true })).end(true);
    }
  });
});

describe("Mosquitto process handling", { timeout: 60000 }, () => {
  it("stop ends the process and removes the temporary data folder", async (t) => {
    if (skipWithoutMosquitto(t)) return;
    const broker = await startMosquitto();
    const { pid, dataDir, url } = broker;
    assert.ok(isRunning(pid));
    await broker.stop();
    assert.equal(isRunning(pid), false);
    assert.equal(fs.existsSync(dataDir), false);
    assert.equal(await probeBroker(url, 500), false);
    await broker.stop(); // a second stop is harmless
  });

  it("reports Mosquitto's own error when the port is taken", async (t) => {
    if (skipWithoutMosquitto(t)) return;
    const blocker = net.createServer();
    await new Promise((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    try {
      await assert.rejects(startMosquitto({ port: blocker.address().port }), /exited.*\n[\s\S]*Address already in use/);
    } finally {
      blocker.close();
    }
  });
});

describe("aedes fallback", { timeout: 30000 }, () => {
  it("starts, carries messages, restarts on the same port and stops", async () => {
    const broker = await startTestBroker({ kind: "aedes" });
    assert.equal(broker.kind, "aedes");
    const subscriber = await connectClient(broker.url);
    const publisher = await connectClient(broker.url);
    await subscriber.subscribeAsync("result", { qos: 1 });
    const received = nextMessages(subscriber, 1);
    await publisher.publishAsync("result", "7", { qos: 1 });
    assert.equal((await received)[0].payload.toString(), "7");
    subscriber.end(true);
    publisher.end(true);

    const { port } = broker;
    await broker.restart();
    assert.equal(broker.port, port);
    assert.equal(await probeBroker(broker.url), true);
    await broker.stop();
    assert.equal(await probeBroker(broker.url, 500), false);
  });
});

describe("probeBroker", { timeout: 30000 }, () => {
  it("is false for a closed port", async () => {
    const started = Date.now();
    assert.equal(await probeBroker(`mqtt://127.0.0.1:${await freePort()}`, 1000), false);
    assert.ok(Date.now() - started < 5000, "the probe gives up instead of hanging");
  });

  it("is false, within its timeout, for a port that accepts TCP but does not speak MQTT", async () => {
    const silent = net.createServer(() => {}); // accepts and never answers
    await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const started = Date.now();
      assert.equal(await probeBroker(`mqtt://127.0.0.1:${silent.address().port}`, 800), false);
      assert.ok(Date.now() - started < 5000, "the probe gives up instead of hanging");
    } finally {
      silent.close();
    }
  });

  it("is true for a broker that answers but refuses anonymous clients", async (t) => {
    if (skipWithoutMosquitto(t)) return;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-probe-"));
    fs.chmodSync(dir, 0o755); // mosquitto drops to its own user before reading the password file
    const config = path.join(dir, "secured.conf");
    fs.writeFileSync(path.join(dir, "passwords"), "");
    fs.writeFileSync(config, `listener 1883 127.0.0.1\nallow_anonymous false\npassword_file ${path.join(dir, "passwords")}\n`);
    const broker = await startMosquitto({ config });
    try {
      assert.equal(await probeBroker(broker.url), true);
    } finally {
      await broker.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("ensureBroker", { timeout: 60000 }, () => {
  it("uses a broker that already answers, and leaves it running", async () => {
    const broker = await startTestBroker();
    try {
      const ensured = await ensureBroker({ url: broker.url, allowStart: true });
      assert.equal(ensured.kind, "external");
      assert.equal(ensured.started, false);
      await ensured.stop();
      assert.equal(await probeBroker(broker.url), true);
    } finally {
      await broker.stop();
    }
  });

  it("starts Mosquitto on the URL's port when nothing answers there", async (t) => {
    if (skipWithoutMosquitto(t)) return;
    const port = await freePort();
    const ensured = await ensureBroker({ url: `mqtt://127.0.0.1:${port}`, allowStart: true });
    try {
      assert.equal(ensured.kind, "mosquitto");
      assert.equal(ensured.started, true);
      assert.equal(ensured.url, `mqtt://127.0.0.1:${port}`);
      assert.match(ensured.summary, /started Mosquitto/);
      assert.equal(await probeBroker(ensured.url), true);
    } finally {
      await ensured.stop();
    }
    assert.equal(await probeBroker(ensured.url, 500), false);
  });

  it("falls back to aedes, and says so, when MOSQUITTO names no Mosquitto", async () => {
    const saved = process.env.MOSQUITTO;
    process.env.MOSQUITTO = "/nonexistent/mosquitto"; // findMosquitto() honours this override
    const said = [];
    try {
      const port = await freePort();
      const ensured = await ensureBroker({ url: `mqtt://localhost:${port}`, allowStart: true, say: (line) => said.push(line) });
      try {
        assert.equal(ensured.kind, "aedes");
        assert.equal(ensured.started, true);
        assert.match(said.join("\n"), /MOSQUITTO is set to \/nonexistent\/mosquitto, but there is no such file: starting the embedded aedes broker instead/);
        assert.match(ensured.summary, /aedes/);
        assert.equal(await probeBroker(ensured.url), true);
      } finally {
        await ensured.stop();
      }
    } finally {
      if (saved === undefined) delete process.env.MOSQUITTO;
      else process.env.MOSQUITTO = saved;
    }
  });

  it("does not start a broker when not allowed, or for a URL on another host", async () => {
    const closed = `mqtt://127.0.0.1:${await freePort()}`;
    await assert.rejects(ensureBroker({ url: closed, allowStart: false, probeTimeoutMs: 500 }), /not allowed/);
    // Loopback, so nothing leaves the machine, but not an address the shipped listener binds.
    await assert.rejects(ensureBroker({ url: `mqtt://127.0.0.2:${await freePort()}`, allowStart: true, probeTimeoutMs: 500 }), /only be started/);
  });
});
