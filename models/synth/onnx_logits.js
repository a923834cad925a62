// Logits of an ONNX model (input "image" [N,1,28,28] float32) with
// onnxruntime-node, for evaluate.py (Debian has no Python onnxruntime).
// Usage: node onnx_logits.js model.onnx images.f32 out.f32
const fs = require("fs");
const path = require("path");
const ort = require(require.resolve("onnxruntime-node", { paths: [path.resolve(__dirname, "..", "..")] }));

(async () => {
  const [modelPath, inPath, outPath] = process.argv.slice(2);
  const buf = fs.readFileSync(inPath);
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const n = x.length / 784;
  const session = await ort.InferenceSession.create(modelPath);
  const out = new Float32Array(n * 10);
  for (let s = 0; s < n; s += 256) {
    const b = Math.min(256, n - s);
    const t = new ort.Tensor("float32", x.slice(s * 784, (s + b) * 784), [b, 1, 28, 28]);
    const r = await session.run({ image: t });
    out.set(r.logits.data, s * 10);
  }
  fs.writeFileSync(outPath, Buffer.from(out.buffer));
})().catch((e) => { console.error(e); process.exit(1); });
