// Images/s of ONNX models in onnxruntime-node at one batch size, measured in
// alternating rounds in the same process (the machine is shared, so rounds
// interleave to see the same load).  Usage: node bench_onnx.js 64 a.onnx b.onnx
const path = require("path");
const ort = require(require.resolve("onnxruntime-node", { paths: [path.resolve(__dirname, "..", "..")] }));

(async () => {
  const [batchArg, ...models] = process.argv.slice(2);
  const batch = Number(batchArg);
  const x = new Float32Array(batch * 784).map((_, i) => ((i * 7919) % 255) / 255);
  const tensor = new ort.Tensor("float32", x, [batch, 1, 28, 28]);
  const sessions = await Promise.all(models.map((m) => ort.InferenceSession.create(m)));
  const best = models.map(() => []);
  for (const s of sessions) for (let i = 0; i < 50; i++) await s.run({ image: tensor }); // warm-up
  for (let round = 0; round < 10; round++) {
    for (let k = 0; k < sessions.length; k++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 200; i++) await sessions[k].run({ image: tensor });
      const sec = Number(process.hrtime.bigint() - t0) / 1e9;
      best[k].push((200 * batch) / sec);
    }
  }
  const med = (a) => a.slice().sort((p, q) => p - q)[a.length >> 1];
  console.log(JSON.stringify(models.map((m, k) => ({ model: m, batch, imagesPerSecondMedian: Math.round(med(best[k])),
    imagesPerSecondBest: Math.round(Math.max(...best[k])) }))));
})().catch((e) => { console.error(e); process.exit(1); });
