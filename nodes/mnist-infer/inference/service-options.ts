// What a node's inference service is set up with, and what it counts.
import type { BackendSetting } from "./backends";

export type OverflowPolicy = "reject-newest" | "drop-oldest";

/**
 * Max batch when a node sets none. Not larger for ONNX Runtime's sake (it costs the same per
 * image from 16 to 64): each batch's hand-overs and wake-ups are paid once for more images.
 */
export const DEFAULT_MAX_BATCH = 64;

export interface ServiceOptions {
  modelFile: string;
  /** Why the model file may not be used (see model-file.ts): no worker is started, every request fails with it. */
  refusal?: string;
  backend: BackendSetting;
  maxBatch: number;
  queueLimit: number;
  /** Bytes the queue may hold: a decoded photo is far larger than an MNIST PNG. */
  queueBytes: number;
  overflow: OverflowPolicy;
  maxPixels: number;
  preview: boolean;
  /** Look again at images below their threshold (second-look.ts): on unless false. */
  secondLook?: boolean;
}

export type ServiceState = "loading" | "ready" | "failed" | "closed";

export interface ServiceStats {
  accepted: number;
  completed: number;
  failed: number;
  rejected: number;
  dropped: number;
  batches: number;
  largestBatch: number;
  workerRestarts: number;
}
