// The held-out digits the package ships (models/samples), for tests and benchmarks.
"use strict";
const fs = require("fs");
const path = require("path");

const SAMPLES = path.resolve(__dirname, "..", "..", "models", "samples");

/** [{ file, label, bytes }] from models/samples/labels.txt. */
function loadSamples(limit = Infinity) {
  const lines = fs.readFileSync(path.join(SAMPLES, "labels.txt"), "utf8").split("\n").filter(Boolean);
  return lines.slice(0, limit).map((line) => {
    const [file, label] = line.trim().split(" ");
    return { file, label: Number(label), bytes: fs.readFileSync(path.join(SAMPLES, file)) };
  });
}

module.exports = { SAMPLES, loadSamples };
