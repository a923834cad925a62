"use strict";
// Waiting in tests without asserting on time: poll a condition, and fail with what was awaited.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until check() returns something truthy; fails with a description instead of a runner timeout. */
async function waitFor(check, what, timeoutMs = 3000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

module.exports = { sleep, waitFor };
