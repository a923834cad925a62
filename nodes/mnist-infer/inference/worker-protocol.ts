// Messages between an mnist-infer node (main thread) and its inference worker.
import type { BackendSetting } from "./backends";
import type { ModelInfo } from "./classifier";
import type { InputErrorCode } from "../errors";
import type { WorkerImage } from "../image/image-decoder";

export type ToWorker =
  | { type: "load"; file: string; backend: BackendSetting }
  | { type: "batch"; batchId: number; images: WorkerImage[]; preview: boolean }
  | { type: "close" };

export type ItemResult =
  | {
      ok: true;
      probabilities: Float32Array;
      preprocessMs: number;
      inverted: boolean;
      /** The 28×28 input the model saw, as a greyscale PNG, when asked for. */
      preview?: Uint8Array;
    }
  | { ok: false; code: InputErrorCode; message: string; /** For a fault of the worker's own ("internal"). */ stack?: string };

export type FromWorker =
  | { type: "ready"; info: ModelInfo }
  | { type: "load-failed"; message: string }
  | { type: "batch-done"; batchId: number; results: ItemResult[]; inferenceMs: number }
  | { type: "closed" };
