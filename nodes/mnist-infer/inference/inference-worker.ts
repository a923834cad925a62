// The worker thread that owns the ONNX session: it decodes small PNGs,
// preprocesses, and runs each batch, so Node-RED's event loop stays free.
import { parentPort, workerData, type MessagePort } from "worker_threads";
import { performance } from "perf_hooks";
import { backendSetting } from "./backends";
import { Classifier } from "./classifier";
import { InputError } from "../errors";
import { decodePng, encodeGreyPng } from "../image/png";
import { preprocess, SIDE } from "../image/preprocess";
import { warmUpDigitPng } from "../image/warm-up-digit";
import { insideNative } from "./native-section";
import { lookAgainWhereUnsure, MOVES } from "./second-look";
import { DEFAULT_MAX_BATCH } from "./service-options";
import { outcomeTransfer, unpackImages, type BatchOutcome, type FromWorker, type ToWorker, type WorkerData } from "./worker-protocol";

if (!parentPort) throw new Error("inference-worker must run in a worker thread");
const port: MessagePort = parentPort;
const { nativeSection } = workerData as WorkerData;
/** Runs ONNX Runtime's code where the main thread will not end this thread (native-section.ts). */
const native = <T>(work: () => Promise<T>) => insideNative(nativeSection, work);

let classifier: Classifier | undefined;
/** Batches under way: a close waits for them, so no run meets a released session. */
const running = new Set<Promise<void>>();
const reply = (message: FromWorker) => port.postMessage(message);

port.on("message", (message: ToWorker) => {
  handle(message).catch((err) => {
    // Unexpected: let the owning node see it as a worker error and restart us.
    setImmediate(() => { throw err; });
  });
});

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case "load":
      try {
        classifier = await native(() => Classifier.create(message.file, backendSetting(message.backend)));
        await warmUp(classifier);
        reply({ type: "ready", info: classifier.info });
      } catch (err) {
        reply({ type: "load-failed", message: (err as Error).message });
      }
      return;
    case "batch": {
      const run = runBatch(message);
      running.add(run);
      return run.finally(() => running.delete(run));
    }
    case "close": {
      await Promise.allSettled([...running]);
      const closing = classifier;
      classifier = undefined;
      if (closing) await native(() => closing.release());
      reply({ type: "closed" });
      port.close();
      return;
    }
  }
}

async function runBatch({ batchId, images: packed, preview, lookAgainBelow }: Extract<ToWorker, { type: "batch" }>): Promise<void> {
  const images = unpackImages(packed);
  const count = images.length;
  const outcome: BatchOutcome = {
    probabilities: new Float32Array(count * 10),
    preprocessMs: new Float32Array(count),
    inverted: new Uint8Array(count),
    lookedAgain: new Uint8Array(count),
    failures: [],
    previews: preview ? new Array(count) : undefined,
    inferenceMs: 0,
  };
  const pixels = new Float32Array(count * SIDE * SIDE);
  const slots: number[] = []; // which images go to the model, in batch order
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    try {
      const image = images[i];
      // Written straight into the batch tensor, in the next free slot.
      const prepared = preprocess(image.kind === "png" ? decodePng(image.bytes) : image.image, pixels, slots.length * SIDE * SIDE);
      slots.push(i);
      outcome.preprocessMs[i] = performance.now() - started;
      outcome.inverted[i] = prepared.inverted ? 1 : 0;
      if (outcome.previews) outcome.previews[i] = toPreview(prepared.pixels);
    } catch (err) {
      // Input the decoder or preprocessing refused is the sender's; anything else is ours, with its stack.
      outcome.failures.push([i, err instanceof InputError ? { code: err.code, message: err.message } : { code: "internal", message: String((err as Error)?.message ?? err), stack: (err as Error)?.stack }]);
    }
  }
  if (slots.length > 0) {
    if (!classifier) throw new Error("batch before the model was loaded");
    const started = performance.now();
    const model = classifier;
    const predict = (input: Float32Array, n: number) => native(() => model.predict(input, n));
    const probabilities = await predict(pixels.subarray(0, slots.length * SIDE * SIDE), slots.length);
    const lookedAgain = await lookAgainWhereUnsure(predict, pixels, probabilities, slots.map((slot) => lookAgainBelow[slot]), model.info.maxBatch);
    for (const k of lookedAgain) outcome.lookedAgain[slots[k]] = 1;
    outcome.inferenceMs = performance.now() - started;
    slots.forEach((slot, k) => outcome.probabilities.set(probabilities[k], slot * 10));
  }
  port.postMessage({ type: "batch-done", batchId, outcome } satisfies FromWorker, outcomeTransfer(outcome));
}

/**
 * Runs the whole path once before saying "ready": the first run of a session
 * (and of each batch shape) allocates and compiles, and the first request after
 * a deploy should be answered about as fast as the hundredth.
 */
async function warmUp(model: Classifier): Promise<void> {
  const { pixels } = preprocess(decodePng(warmUpDigitPng()));
  // The largest batch a node sends unless its Max batch is set higher.
  const largest = Math.min(DEFAULT_MAX_BATCH, model.info.maxBatch);
  const batch = new Float32Array(largest * SIDE * SIDE);
  for (let i = 0; i < largest; i++) batch.set(pixels, i * SIDE * SIDE);
  // One image, the largest batch, a second look's four copies of one image, one image again.
  for (const count of [1, largest, Math.min(MOVES.length, largest), 1]) await native(() => model.predict(batch.subarray(0, count * SIDE * SIDE), count));
}

function toPreview(pixels: Float32Array): Uint8Array {
  const bytes = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) bytes[i] = Math.round(pixels[i] * 255);
  return encodeGreyPng(bytes, SIDE, SIDE);
}
