// Messages between the mnist-infer nodes (main thread) and an inference worker.
// A batch crosses the thread boundary as a few flat buffers that are moved, not
// copied: posted as an array of small objects, each image and each result cost
// a structured clone of its own, on the thread that runs Node-RED.
import type { BackendSetting } from "./backends";
import type { ModelInfo } from "./classifier";
import type { InputErrorCode } from "../errors";
import type { NativeSectionFlag } from "./native-section";
import type { WorkerImage } from "../image/image-decoder";
import type { RawImage } from "../image/raw-image";

/** Given to the worker when it starts. */
export interface WorkerData {
  nativeSection: NativeSectionFlag;
}

export type ToWorker =
  | { type: "load"; file: string; backend: BackendSetting }
  | { type: "batch"; batchId: number; images: PackedImages; preview: boolean; lookAgainBelow: Float64Array }
  | { type: "close" };

export type FromWorker =
  | { type: "ready"; info: ModelInfo }
  | { type: "load-failed"; message: string }
  | { type: "batch-done"; batchId: number; outcome: BatchOutcome }
  | { type: "closed" };

/** A batch one node hands the workers, with that node's options for it, before it is packed. */
export interface ClientBatch {
  images: WorkerImage[];
  preview: boolean;
  /** Each image's threshold: below it the worker looks again, and the answer is unsure. */
  lookAgainBelow: Float64Array;
}

/** A batch's images: every PNG's bytes in one buffer, images given as pixels apart. */
export interface PackedImages {
  count: number;
  png: Uint8Array;
  /** Where image i's PNG bytes end in `png`; they start where image i − 1's end. An image of pixels adds none. */
  ends: Uint32Array;
  /** The images given as pixels, by their place in the batch. */
  raw: Array<[number, RawImage]>;
}

/** Why one image of a batch could not be classified. */
export interface ItemFailure {
  code: InputErrorCode;
  message: string;
  /** For a fault of the worker's own ("internal"). */
  stack?: string;
}

/** A batch's answers, image i's at place i of each buffer. */
export interface BatchOutcome {
  /** Ten probabilities per image (zeros for a failed one). */
  probabilities: Float32Array;
  preprocessMs: Float32Array;
  /** 1 where the image had a light background and was inverted. */
  inverted: Uint8Array;
  /** 1 where the first answer was below the image's threshold and the worker looked again (second-look.ts). */
  lookedAgain: Uint8Array;
  failures: Array<[number, ItemFailure]>;
  /** The 28×28 input the model saw, as a greyscale PNG, when asked for. */
  previews?: Array<Uint8Array | undefined>;
  inferenceMs: number;
}

export function packImages(images: WorkerImage[]): { packed: PackedImages; transfer: ArrayBuffer[] } {
  let total = 0;
  for (const image of images) if (image.kind === "png") total += image.bytes.byteLength;
  const png = new Uint8Array(total);
  const ends = new Uint32Array(images.length);
  const raw: Array<[number, RawImage]> = [];
  let offset = 0;
  images.forEach((image, i) => {
    if (image.kind === "png") {
      png.set(image.bytes, offset);
      offset += image.bytes.byteLength;
    } else raw.push([i, image.image]);
    ends[i] = offset;
  });
  return { packed: { count: images.length, png, ends, raw }, transfer: [png.buffer, ends.buffer] };
}

export function unpackImages(packed: PackedImages): WorkerImage[] {
  const images: WorkerImage[] = new Array(packed.count);
  for (const [i, image] of packed.raw) images[i] = { kind: "raw", image };
  for (let i = 0, start = 0; i < packed.count; start = packed.ends[i++]) {
    if (!images[i]) images[i] = { kind: "png", bytes: packed.png.subarray(start, packed.ends[i]) };
  }
  return images;
}

/** The buffers of an outcome, to move rather than copy. */
export function outcomeTransfer(outcome: BatchOutcome): ArrayBuffer[] {
  return [outcome.probabilities.buffer, outcome.preprocessMs.buffer, outcome.inverted.buffer, outcome.lookedAgain.buffer] as ArrayBuffer[];
}
