// The MQTT contract between the chain's stages, as types: what mnist-infer
// publishes. Requests are parsed in mnist-infer/request/envelope.ts. This file
// imports nothing, so the contract does not depend on how it is implemented.

/** Where a result's time went, in milliseconds, and how many images shared its batch. */
export interface Timings {
  preprocessMs: number;
  queueMs: number;
  inferenceMs: number;
  batchSize: number;
}

/** A result, on topic `result`. */
export interface InferResult {
  digit: number;
  confidence: number;
  probabilities: number[];
  /**
   * True when the image is probably not a digit, or too ambiguous to trust: the model's first
   * answer had a confidence below `threshold`.
   */
  unsure: boolean;
  /** Present when the first answer was unsure: digit, confidence and probabilities are then averaged over the image and four copies moved by a pixel. */
  secondLook?: true;
  /** The confidence below which this result counts as unsure (the request's, the node's or the model card's). */
  threshold: number;
  id?: string | number;
  label?: number;
  correct?: boolean;
  /** Copied from the request, so the result node can measure end-to-end latency. */
  sentAt?: number;
  /** The model, the ONNX Runtime backend it ran on, and (for the `auto` setting) why that one. */
  model: { name: string; sha256: string; backend: "native" | "wasm"; backendReason?: string };
  timings: Timings;
  inverted: boolean;
}

/** One image's answer in a batch reply: its result (without the model, said once for all), or its error. */
export type BatchItem = Omit<InferResult, "id" | "sentAt" | "model"> | { error: { code: string; message: string } };

/** The reply to a batch request `{"id", "images": [...]}`, on topic `result`: one item per image, in order. */
export interface InferBatchResult {
  results: BatchItem[];
  id?: string | number;
  sentAt?: number;
  model: InferResult["model"];
}

/** An error reply, on topic `result/error`. */
export interface ErrorReply {
  error: { code: string; message: string };
  id?: string | number;
}
