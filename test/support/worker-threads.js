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

module.exports = { workers };
