"use strict";
// When the main thread may end an inference worker (native-section.ts): only
// once every call into ONNX Runtime has returned, and then no new one starts.
// Both sides run here on one thread; the word they share is the same.
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { newNativeSectionFlag, insideNative, lockOut, isInside } = require("../dist/nodes/mnist-infer/inference/native-section.js");

/** A call that stays inside until `finish()`. */
function heldCall(flag) {
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  const call = insideNative(flag, () => done.then(() => "ran"));
  return { call, finish };
}

/** Lets every pending callback and wake-up run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

function watch(promise) {
  const state = { settled: false };
  promise.then(() => (state.settled = true));
  return state;
}

describe("the native section of an inference worker", { timeout: 30000 }, () => {
  it("lets a worker that is outside be locked out at once, after which no call starts", async () => {
    const flag = newNativeSectionFlag();
    assert.equal(await insideNative(flag, async () => 42), 42, "a call runs and returns its value");
    assert.equal(isInside(flag), false);
    await lockOut(flag);
    let started = false;
    const late = watch(insideNative(flag, async () => (started = true)));
    await settle();
    assert.equal(started, false, "a call after the lock-out never starts");
    assert.equal(late.settled, false, "and never settles: the thread is about to end");
  });

  it("waits until every call inside has returned, when two overlap", async () => {
    const flag = newNativeSectionFlag();
    const a = heldCall(flag);
    const b = heldCall(flag);
    await settle();
    assert.equal(isInside(flag), true);
    const lock = lockOut(flag);
    const locked = watch(lock);
    await settle();
    assert.equal(locked.settled, false, "not while two calls are inside");
    a.finish();
    assert.equal(await a.call, "ran");
    await settle();
    assert.equal(locked.settled, false, "not while one is still inside");
    b.finish();
    assert.equal(await b.call, "ran");
    await lock; // once the last has returned (the test times out otherwise)
    assert.equal(isInside(flag), false);
    let started = false;
    watch(insideNative(flag, async () => (started = true)));
    await settle();
    assert.equal(started, false, "and none starts after it");
  });

  it("leaves the section when a call throws", async () => {
    const flag = newNativeSectionFlag();
    await assert.rejects(insideNative(flag, async () => { throw new Error("model failed"); }), /model failed/);
    assert.equal(isInside(flag), false);
    await lockOut(flag);
  });
});
