// The MQTT contract between the chain's stages, as types. Requests are parsed
// in envelope.ts; these are the messages mnist-infer publishes.
import type { Prediction } from "./inference-service";

/** A result, on topic `result`. */
export interface InferResult {
  digit: number;
  confidence: number;
  probabilities: number[];
  id?: string | number;
  label?: number;
  correct?: boolean;
  /** Copied from the request, so the result node can measure end-to-end latency. */
  sentAt?: number;
  model: { name: string; sha256: string };
  timings: Prediction["timings"];
  inverted: boolean;
}

/** An error reply, on topic `result/error`. */
export interface ErrorReply {
  error: { code: string; message: string };
  id?: string | number;
}
