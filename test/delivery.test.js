"use strict";
// The two pieces that make "answered once, nothing dropped" work over MQTT,
// with a hand-driven clock: DeliveryTracker (send again what mqtt out did not
// publish) and RepeatedRequests (a request sent again gets the first one's answer).
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { DeliveryTracker, MARK } = require("../dist/nodes/shared/delivery.js");
const { RepeatedRequests } = require("../dist/nodes/mnist-infer/request/repeats.js");

/** A tracker on a fake clock, and a record of what it sent again and reported. */
function tracker(options = {}) {
  let now = 0;
  const resent = [];
  const events = [];
  const t = new DeliveryTracker({
    owner: "n1",
    copy: (msg) => structuredClone(msg),
    now: () => now,
    timer: false,
    onResend: (count) => events.push(["resend", count]),
    onGiveUp: (count, why) => events.push(["give-up", count, why]),
    onNeverConfirmed: () => events.push(["never-confirmed"]),
    ...options,
  });
  const send = (payload) => {
    const msg = { payload };
    t.track(msg, (copy) => resent.push(copy));
    return msg;
  };
  /** What a Complete node hands back: a copy of the message as mqtt out saw it. */
  const back = (msg) => t.confirm(structuredClone(msg));
  const advance = (ms) => {
    now += ms;
    t.tick();
  };
  return { t, send, back, advance, resent, events };
}

describe("DeliveryTracker: what mqtt out dropped is sent again, and only that", () => {
  it("marks each message with its owner, and recognises only its own coming back", () => {
    const { t, send } = tracker();
    const msg = send("a");
    assert.deepEqual(msg[MARK], { by: "n1", seq: 0, send: 0 });
    assert.equal(t.isReturn(structuredClone(msg)), true);
    assert.equal(t.isReturn({ payload: "a", [MARK]: { by: "other", seq: 0, send: 0 } }), false);
    assert.equal(t.isReturn({ payload: "a" }), false);
    assert.equal(t.isReturn(null), false);
  });

  it("sends nothing again while everything comes back", () => {
    const { t, send, back, advance, resent } = tracker();
    for (let i = 0; i < 100; i++) back(send(i));
    advance(60_000);
    assert.deepEqual(resent, []);
    assert.deepEqual(t.stats, { tracked: 100, confirmed: 100, resent: 0, givenUp: 0, waiting: 0 });
  });

  it("a message overtaken by one that came back is sent again, one tick after the proof, with a new sending number", () => {
    const { t, send, back, advance, resent, events } = tracker();
    const a = send("a");
    send("dropped-1");
    send("dropped-2");
    const d = send("d");
    back(a);
    back(d);
    advance(500);
    assert.deepEqual(resent, [], "MQTT.js gets one tick to send again what it held across a reconnect");
    advance(500);
    assert.deepEqual(resent.map((m) => m.payload), ["dropped-1", "dropped-2"]);
    assert.deepEqual(resent.map((m) => m[MARK].seq), [1, 2], "the same message");
    assert.deepEqual(resent.map((m) => m[MARK].send), [4, 5], "a new sending");
    assert.deepEqual(events, [["resend", 2]]);
    for (const m of resent) back(m);
    advance(60_000);
    assert.equal(resent.length, 2, "confirmed copies are not sent again");
    assert.deepEqual(t.stats, { tracked: 4, confirmed: 4, resent: 2, givenUp: 0, waiting: 0 });
  });

  it("waits longer while messages take longer to come back (a busy Node-RED, or the longer path of error replies)", () => {
    const { send, back, advance, resent } = tracker();
    const slow = send("slow");
    advance(1500);
    back(slow); // took 1.5 s
    const e = send("error reply, on a longer path");
    back(send("result"));
    advance(500);
    advance(500);
    assert.deepEqual(resent, [], "overtaken, but not yet twice the slowest round trip old");
    back(e);
    advance(5000);
    assert.deepEqual(resent, []);
    send("dropped");
    back(send("later"));
    advance(500);
    advance(500);
    assert.deepEqual(resent, [], "1 s old: within 2 × the (decaying) slowest round trip");
    advance(1000);
    assert.deepEqual(resent.map((m) => m.payload), ["dropped"]);
  });

  it("a late confirmation of an older sending does not condemn messages sent after it", () => {
    const { send, back, advance, resent } = tracker();
    const a = send("a");
    const b = send("b");
    advance(500);
    advance(500);
    back(a); // MQTT.js's own resend of `a` after a reconnect: it proves nothing about `b`
    advance(500);
    advance(500);
    assert.deepEqual(resent, []);
    back(b);
  });

  it("with nothing coming back at all, nothing is sent again, and a missing Complete wire is reported once", () => {
    const { send, advance, resent, events } = tracker();
    send("a");
    send("b");
    for (let i = 0; i < 100; i++) advance(500);
    assert.deepEqual(resent, [], "no proof that the Complete node is wired: sending again would only repeat");
    assert.deepEqual(events, [["never-confirmed"]]);
  });

  it("once confirmations have been seen, a message left alone for idleMs is sent again (the last replies before an outage)", () => {
    const { send, back, advance, resent } = tracker({ idleMs: 10_000 });
    back(send("first"));
    send("last");
    advance(9_500);
    assert.deepEqual(resent, []);
    advance(500);
    assert.deepEqual(resent.map((m) => m.payload), ["last"]);
    advance(500);
    assert.equal(resent.length, 1, "the copy waits its own idleMs");
    advance(9_500);
    assert.equal(resent.length, 2, "still missing (broker still down): sent again");
    back(resent[1]);
    advance(20_000);
    assert.equal(resent.length, 2);
  });

  it("holds at most `limit` messages; the oldest is given up and counted", () => {
    const { t, send, events } = tracker({ limit: 3 });
    for (let i = 0; i < 5; i++) send(i);
    assert.deepEqual(t.stats, { tracked: 5, confirmed: 0, resent: 0, givenUp: 2, waiting: 3 });
    assert.deepEqual(events, [["give-up", 1, "limit"]], "the first is said at once, the next waits for the summary");
  });

  it("a long outage over the limit is reported as a count every giveUpWarnMs, not a warning per message", () => {
    const { t, send, advance, events } = tracker({ limit: 3, giveUpWarnMs: 10_000, unconfirmedWarnMs: Infinity });
    for (let i = 0; i < 1003; i++) send(i);
    assert.deepEqual(events, [["give-up", 1, "limit"]]);
    advance(9_500);
    assert.deepEqual(events, [["give-up", 1, "limit"]], "not yet: less than giveUpWarnMs since the last report");
    advance(500);
    assert.deepEqual(events, [["give-up", 1, "limit"], ["give-up", 999, "limit"]]);
    send("one more");
    advance(500);
    assert.equal(events.length, 2, "the next report waits its own giveUpWarnMs");
    t.close();
    assert.deepEqual(events.slice(2), [["give-up", 1, "limit"], ["give-up", 3, "closed"]], "close says what was left unsaid, then what it drops");
    assert.equal(t.stats.givenUp, 1004);
  });

  it("close gives up what still waits, and says how many", () => {
    const { t, send, back, events } = tracker();
    back(send("a"));
    send("b");
    send("c");
    t.close();
    assert.deepEqual(events, [["give-up", 2, "closed"]]);
    assert.equal(t.stats.waiting, 0);
    send("after close");
    assert.equal(t.stats.waiting, 0, "what is sent after close is not tracked (no timer outlives the node)");
  });

  it("runs its own timer while messages wait, and stops it when none do", async () => {
    const resent = [];
    const t = new DeliveryTracker({ owner: "n1", copy: (m) => ({ ...m }), tickMs: 10 });
    const a = { payload: "a" };
    const b = { payload: "b" };
    const c = { payload: "c" };
    for (const m of [a, b, c]) t.track(m, (copy) => resent.push(copy));
    t.confirm({ ...c });
    t.confirm({ ...a });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(resent.map((m) => m.payload), ["b"]);
    t.confirm(resent[0]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(t.stats, { tracked: 3, confirmed: 3, resent: 1, givenUp: 0, waiting: 0 });
    t.close();
  });
});

describe("RepeatedRequests: a request sent again gets the first one's answer", () => {
  /** Looks up (id, bytes); when it is new, remembers `answer` for it. Resolves with the earlier answer, or undefined. */
  async function ask(cache, id, bytes, answer = Promise.resolve(`answer to ${id}`)) {
    const { key, answer: earlier } = cache.earlier(id, bytes);
    if (earlier) return earlier;
    cache.remember(key, answer);
    return undefined;
  }

  it("the same id with the same bytes within the window gets the first answer; a new image under an old id does not", async () => {
    let now = 0;
    const cache = new RepeatedRequests(60_000, 10_000, () => now);
    const png = Buffer.from("png bytes");
    assert.equal(await ask(cache, "a1", png), undefined);
    assert.equal(await ask(cache, "a1", Buffer.from("png bytes")), "answer to a1");
    assert.equal(await ask(cache, "a1", Buffer.from("other bytes")), undefined, "a sender may reuse an id for a new image");
    assert.equal(await ask(cache, "a2", png), undefined, "another request with the same image");
    assert.equal(await ask(cache, 7, "{}"), undefined);
    assert.equal(await ask(cache, "7", "{}"), "answer to 7", "ids are compared as text: 7 and \"7\" are one id");
    now = 59_999;
    assert.equal(await ask(cache, "a1", png), "answer to a1");
    now = 60_000;
    assert.equal(await ask(cache, "a1", png), undefined, "after the window it is a new request");
  });

  it("a repeat of a request still in flight waits for its answer", async () => {
    const cache = new RepeatedRequests(60_000);
    let answer;
    await ask(cache, "slow", "x", new Promise((resolve) => (answer = resolve)));
    const waiting = ask(cache, "slow", "x");
    answer("late answer");
    assert.equal(await waiting, "late answer");
  });

  it("forgets a request that failed, so a retry after an error reply is classified again", async () => {
    const cache = new RepeatedRequests(60_000);
    const failed = Promise.reject(new Error("queue-full"));
    await ask(cache, "r1", "x", failed);
    await failed.catch(() => {});
    assert.equal(cache.earlier("r1", "x").answer, undefined);
  });

  it("remembers at most `capacity` requests", async () => {
    const cache = new RepeatedRequests(60_000, 2, () => 0);
    await ask(cache, "a", "x");
    await ask(cache, "b", "x");
    await ask(cache, "c", "x");
    assert.equal(cache.earlier("a", "x").answer, undefined, "the oldest was forgotten");
    assert.equal(await cache.earlier("c", "x").answer, "answer to c");
  });

  it("a window of 0 turns it off", () => {
    assert.equal(new RepeatedRequests(0).enabled, false);
    assert.equal(new RepeatedRequests(1000).enabled, true);
  });
});
