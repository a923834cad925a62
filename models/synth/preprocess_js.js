// Runs the node's own preprocessing (compiled dist/) over image files and
// writes the 28x28 results as float32, for models/synth/check_preprocess.py.
// Usage: node preprocess_js.js out.bin file1.png file2.jpg ...
const fs = require("fs");
const path = require("path");
const root = path.resolve(__dirname, "..", "..");
// The image code lives in nodes/mnist-infer/image/ (nodes/shared/ before the layout change).
const dir = ["dist/nodes/mnist-infer/image", "dist/nodes/shared"].map((d) => path.join(root, d))
  .find((d) => fs.existsSync(path.join(d, "preprocess.js")));
const { decodePng } = require(path.join(dir, "png.js"));
const { preprocess } = require(path.join(dir, "preprocess.js"));
const [out, ...files] = process.argv.slice(2);
const result = new Float32Array(files.length * 784).fill(NaN);
files.forEach((f, i) => {
  try {
    result.set(preprocess(decodePng(fs.readFileSync(f))).pixels, i * 784);
  } catch (e) {
    if (e.code !== "no-ink") throw e; // stays NaN
  }
});
fs.writeFileSync(out, Buffer.from(result.buffer));
