"use strict";
// Every worker thread started once this is required, so a test can find the
// inference workers and make one crash. The nodes look Worker up on the module
// when they start one, so replacing it here reaches them.
const workerThreads = require("worker_threads");

const workers = [];
workerThreads.Worker = class extends workerThreads.Worker {
  constructor(...args) {
    super(...args);
    workers.push(this);
  }
};

/**
 * Makes an inference worker crash the way a fault of its own would: a batch it
 * cannot unpack throws, and the worker rethrows what it did not expect. The
 * message waits its turn, so the crash never lands inside a model run (ending a
 * thread there aborts the process; pool-member.ts never does). Resolves once it exited.
 */
function crash(worker) {
  const exited = new Promise((resolve) => worker.once("exit", resolve));
  worker.postMessage({ type: "batch", batchId: -1, images: null, preview: false });
  return exited;
}

module.exports = { workers, crash };
