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
  /** The model, the ONNX Runtime backend it ran on, and (for the `auto` setting) why that one. */
  model: { name: string; sha256: string; backend: "native" | "wasm"; backendReason?: string };
  timings: Prediction["timings"];
  inverted: boolean;
}

/** An error reply, on topic `result/error`. */
export interface ErrorReply {
  error: { code: string; message: string };
  id?: string | number;
}
