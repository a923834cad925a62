// Stage 1: how fast each step of the inference path can go on its own, in
// this process, one thread, on the shipped samples. These are ceilings: the
// node cannot beat the slowest step its worker thread runs.
import sharp from "sharp";
import { Classifier } from "../../nodes/mnist-infer/inference/classifier";
import { lookAgainWhereUnsure } from "../../nodes/mnist-infer/inference/second-look";
import { modelThreshold } from "../../nodes/mnist-infer/inference/unsure-below";
import { parseRequest } from "../../nodes/mnist-infer/request/envelope";
import { decodePng } from "../../nodes/mnist-infer/image/png";
import { preprocess, SIDE } from "../../nodes/mnist-infer/image/preprocess";
import type { RawImage } from "../../nodes/mnist-infer/image/raw-image";
import { envelope, MODEL_FILE, type Reference, type Sample } from "./samples";
import { asyncRate, median, rateOf } from "./stats";

export const BATCH_SIZES = [1, 8, 32, 128];

export interface Ceilings {
  /** images/s, median of `repeats` runs */
  parse: number;
  decode: number;
  decodeSharp: number;
  preprocess: number;
  inference: Record<number, number>;
  /** decode + preprocess + inference at batch 32, one thread: what one inference worker can do. */
  worker32: number;
  /** The same on onnxruntime-web's WebAssembly build, with the threads mnist-infer gives it. */
  wasm: { threads: number; inference: Record<number, number>; worker32: number };
  references: Reference[];
}

export async function measureCeilings(samples: Sample[], options: { ms: number; repeats: number }): Promise<Ceilings> {
  const { ms, repeats } = options;
  const n = samples.length;
  const repeat = (fn: () => number) => median(Array.from({ length: repeats }, fn));
  const limits = { maxBytes: 1024 * 1024, maxPixels: 24_000_000, maxBatchImages: 256 };
  const envelopes = samples.map((s, i) => Buffer.from(envelope(`c-${i}`, s, Date.now())));
  const decoded: RawImage[] = samples.map((s) => decodePng(s.png));
  const inputs = decoded.map((image) => preprocess(image).pixels);

  const parse = repeat(() => rateOf((i) => parseRequest(envelopes[i % n], {}, limits), ms));
  const decode = repeat(() => rateOf((i) => decodePng(samples[i % n].png), ms));
  const prep = repeat(() => rateOf((i) => preprocess(decoded[i % n]), ms));
  const decodeSharp = await sharpRate(samples, Math.min(ms, 500));

  const classifier = await Classifier.create(MODEL_FILE, "native");
  const wasm = await Classifier.create(MODEL_FILE, "wasm");
  try {
    // What mnist-infer answers for each sample: the model's first answer, or its second look when that is unsure.
    const references: Reference[] = [];
    const threshold = modelThreshold(classifier.info);
    for (const pixels of inputs) {
      const answers = await classifier.predict(pixels, 1);
      await lookAgainWhereUnsure((input, count) => classifier.predict(input, count), pixels, answers, [threshold], classifier.info.maxBatch);
      const [probabilities] = answers;
      let digit = 0;
      for (let d = 1; d < probabilities.length; d++) if (probabilities[d] > probabilities[digit]) digit = d;
      references.push({ digit, confidence: probabilities[digit] });
    }
    const native = await modelRates(classifier, samples, inputs, ms, repeats);
    const onWasm = await modelRates(wasm, samples, inputs, ms, repeats);
    return { parse, decode, decodeSharp, preprocess: prep, ...native, wasm: { threads: wasm.info.backend.threads, ...onWasm }, references };
  } finally {
    await classifier.release();
    await wasm.release();
  }
}

/** Inference alone at each batch size, and a worker's whole job at batch 32, on one classifier. */
async function modelRates(classifier: Classifier, samples: Sample[], inputs: Float32Array[], ms: number, repeats: number) {
  const n = samples.length;
  const inference: Record<number, number> = {};
  for (const batch of BATCH_SIZES) {
    const pixels = new Float32Array(batch * SIDE * SIDE);
    for (let k = 0; k < batch; k++) pixels.set(inputs[k % n], k * SIDE * SIDE);
    const runs: number[] = [];
    for (let r = 0; r < repeats; r++) runs.push(await asyncRate(() => classifier.predict(pixels, batch), batch, ms));
    inference[batch] = median(runs);
  }
  // The worker's whole job for a batch of 32 PNGs, as inference-worker.ts does it.
  let next = 0;
  const worker32 = await asyncRateMedian(
    async () => {
      const pixels = new Float32Array(32 * SIDE * SIDE);
      for (let k = 0; k < 32; k++) pixels.set(preprocess(decodePng(samples[next++ % n].png)).pixels, k * SIDE * SIDE);
      await classifier.predict(pixels, 32);
    },
    32,
    ms,
    repeats,
  );
  return { inference, worker32 };
}

async function asyncRateMedian(fn: () => Promise<unknown>, perCall: number, ms: number, repeats: number): Promise<number> {
  const runs: number[] = [];
  for (let r = 0; r < repeats; r++) runs.push(await asyncRate(fn, perCall, ms));
  return median(runs);
}

/** sharp, one call at a time, as mnist-infer used it before the pure-JS PNG path (still used for other formats). */
async function sharpRate(samples: Sample[], ms: number): Promise<number> {
  let i = 0;
  return asyncRate(() => sharp(samples[i++ % samples.length].png).raw().toBuffer(), 1, ms);
}
