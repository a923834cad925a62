// The limits every share in the report is measured against (issue #16): what
// ONNX Runtime alone does with the shipped model on this machine, in this run.
// - native: onnxruntime-node, batch 64, the session's default threads (not the
//   one intra-op thread mnist-infer gives it, which batches instead);
// - WebAssembly: onnxruntime-web, batch 32 and 64, with the threads mnist-infer
//   gives it (loadRuntime("wasm"): MNIST_WASM_THREADS, else the CPUs, at most 4).
// No decode, no preprocessing, no softmax: a session.run on prepared inputs.
import fs from "node:fs";
import os from "node:os";
import type * as Ort from "onnxruntime-web";
import { loadRuntime, type OrtApi } from "../../nodes/mnist-infer/inference/backends";
import { decodePng } from "../../nodes/mnist-infer/image/png";
import { preprocess, SIDE } from "../../nodes/mnist-infer/image/preprocess";
import { MODEL_FILE, type Sample } from "./samples";
import { asyncRate, median } from "./stats";

export interface Limit {
  /** images/s at `batch`, median of the repeats */
  rate: number;
  batch: number;
  /** Threads the session may use ("default" for native: ONNX Runtime's own choice, one per core). */
  threads: number | "default";
  /** images/s at each batch size tried */
  byBatch: Record<number, number>;
}

export interface Limits {
  native?: Limit;
  /** Not a limit: onnxruntime-node at batch 64 on one thread, as mnist-infer runs it. When the
   *  default-threads figure falls below it, other load is slowing ONNX Runtime's thread pool
   *  (each parallel step waits for its slowest thread) and the shares overstate. */
  nativeOneThread?: Limit;
  wasm?: Limit;
  /** The same measured between the stages: on a shared machine the limit moves by a third within seconds. */
  between?: MeasuredLimits[];
  /** The same measured again at the end of the run, when there was time: the machine's load moves. */
  again?: MeasuredLimits;
}

/** One measurement of the limits. */
export type MeasuredLimits = Pick<Limits, "native" | "nativeOneThread" | "wasm">;

/**
 * Both limits; a backend that cannot load here is left out (and the report says so).
 * `pinnedCores` (--cores): ONNX Runtime sizes its default thread pool by the
 * machine's cores, not by the CPU affinity taskset sets, and so would run two
 * threads on one core; on a machine of that many cores it would choose that many.
 */
export async function measureLimits(samples: Sample[], options: { ms: number; repeats: number; pinnedCores?: number }): Promise<MeasuredLimits> {
  const inputs = samples.map((s) => preprocess(decodePng(s.png)).pixels);
  const limits: MeasuredLimits = {};
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const ort = require("onnxruntime-node") as OrtApi;
    const cores = options.pinnedCores;
    const defaults = cores ? { intraOpNumThreads: cores } : {};
    limits.native = await limitOf(ort, { executionProviders: ["cpu"], graphOptimizationLevel: "all", ...defaults }, [64], inputs, options, cores ?? "default");
    const oneThread = { executionProviders: ["cpu"], graphOptimizationLevel: "all", intraOpNumThreads: 1, interOpNumThreads: 1 } as const;
    limits.nativeOneThread = await limitOf(ort, oneThread, [64], inputs, options, 1);
  } catch (err) {
    console.error(`the native limit could not be measured: ${(err as Error).message.split("\n")[0]}`);
  }
  const wasm = loadRuntime("wasm");
  limits.wasm = await limitOf(wasm.ort, wasm.sessionOptions, [32, 64], inputs, options, wasm.info.threads);
  return limits;
}

/** The limit the report divides by: the higher of the two measurements, so a busy moment does not flatter a share. */
export function limitRate(limits: Limits | undefined, backend: "native" | "nativeOneThread" | "wasm"): number | undefined {
  const measured = limits ? [limits, ...(limits.between ?? []), limits.again] : [];
  const rates = measured.map((m) => m?.[backend]?.rate).filter((r): r is number => typeof r === "number" && r > 0);
  return rates.length ? Math.max(...rates) : undefined;
}

async function limitOf(
  ort: OrtApi,
  sessionOptions: Ort.InferenceSession.SessionOptions,
  batches: number[],
  inputs: Float32Array[],
  { ms, repeats }: { ms: number; repeats: number },
  threads: number | "default",
): Promise<Limit> {
  const session = await ort.InferenceSession.create(fs.readFileSync(MODEL_FILE), sessionOptions);
  try {
    const name = session.inputNames[0];
    const byBatch: Record<number, number> = {};
    for (const batch of batches) {
      const pixels = new Float32Array(batch * SIDE * SIDE);
      for (let k = 0; k < batch; k++) pixels.set(inputs[k % inputs.length], k * SIDE * SIDE);
      const feeds = { [name]: new ort.Tensor("float32", pixels, [batch, 1, SIDE, SIDE]) };
      const run = () => session.run(feeds);
      const rates: number[] = [];
      for (let r = 0; r < repeats; r++) rates.push(await asyncRate(run, batch, ms));
      byBatch[batch] = median(rates);
    }
    const best = batches.reduce((a, b) => (byBatch[b] > byBatch[a] ? b : a));
    return { rate: byBatch[best], batch: best, threads, byBatch };
  } finally {
    await session.release();
  }
}

/** How many cores ONNX Runtime's default threads get here (its intra-op pool sizes itself to them). */
export function coresHere(): number {
  return os.availableParallelism?.() ?? os.cpus().length;
}
