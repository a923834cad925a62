// What the inference service answers for one image: the digit, its
// confidence, all ten probabilities, and where the time went.
import type { Timings } from "../../shared/contract";
import type { BatchOutcome } from "./worker-protocol";

export interface Prediction {
  digit: number;
  confidence: number;
  probabilities: number[];
  inverted: boolean;
  /** The first answer was below the image's threshold: these are the second look's (second-look.ts), and unsure. */
  lookedAgain: boolean;
  preview?: Buffer;
  timings: Timings;
}

/**
 * Probabilities to 8 decimals, times to 0.1 µs: a float32 read as a double prints
 * 17 digits of noise (0.0012345678359270096), which made every reply a third to
 * a half longer to write, send and parse, and told no one anything.
 */
export const roundProbability = (p: number): number => Math.round(p * 1e8) / 1e8;
const roundMs = (ms: number): number => Math.round(ms * 1e4) / 1e4;

/** Image `i` of a batch the worker answered with `outcome`, `waitedMs` after it was queued. */
export function toPrediction(outcome: BatchOutcome, i: number, waitedMs: number, batchSize: number): Prediction {
  // Copied by index into a packed array: Array.from over a view cost 20 times as much, once per result.
  const probabilities = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  let digit = 0;
  for (let d = 0; d < 10; d++) {
    probabilities[d] = roundProbability(outcome.probabilities[i * 10 + d]);
    if (probabilities[d] > probabilities[digit]) digit = d;
  }
  const preview = outcome.previews?.[i];
  const { inferenceMs } = outcome;
  const preprocessMs = outcome.preprocessMs[i];
  return {
    digit,
    confidence: probabilities[digit],
    probabilities,
    inverted: outcome.inverted[i] === 1,
    lookedAgain: outcome.lookedAgain[i] === 1,
    preview: preview ? Buffer.from(preview) : undefined,
    timings: {
      preprocessMs: roundMs(preprocessMs),
      // Time waiting for the worker: everything but its own work on this batch.
      queueMs: roundMs(Math.max(0, waitedMs - inferenceMs - preprocessMs)),
      inferenceMs: roundMs(inferenceMs),
      batchSize,
    },
  };
}
