// What the inference service answers for one image: the digit, its
// confidence, all ten probabilities, and where the time went.
import type { Timings } from "../../shared/contract";
import type { ItemResult } from "./worker-protocol";

export interface Prediction {
  digit: number;
  confidence: number;
  probabilities: number[];
  inverted: boolean;
  preview?: Buffer;
  timings: Timings;
}

/** The worker's result for one image of a batch that took `inferenceMs`, `waitedMs` after it was queued. */
export function toPrediction(result: Extract<ItemResult, { ok: true }>, waitedMs: number, inferenceMs: number, batchSize: number): Prediction {
  const probabilities = Array.from(result.probabilities);
  let digit = 0;
  for (let d = 1; d < probabilities.length; d++) if (probabilities[d] > probabilities[digit]) digit = d;
  return {
    digit,
    confidence: probabilities[digit],
    probabilities,
    inverted: result.inverted,
    preview: result.preview ? Buffer.from(result.preview) : undefined,
    timings: {
      preprocessMs: result.preprocessMs,
      // Time waiting for the worker: everything but its own work on this batch.
      queueMs: Math.max(0, waitedMs - inferenceMs - result.preprocessMs),
      inferenceMs,
      batchSize,
    },
  };
}
