// The ONNX model behind one small interface, on either backend. It runs inside
// the inference worker: session.run blocks the thread it is called on.
import { createHash } from "crypto";
import { promises as fs } from "fs";
import * as path from "path";
import type * as Ort from "onnxruntime-web";
import { loadRuntime, type BackendInfo, type BackendSetting, type OrtApi } from "./backends";
import { SIDE } from "../image/preprocess";

/** How the model wants its 784 pixels laid out; the data is the same either way. */
type Layout = "nchw" | "nhwc" | "nhw" | "flat";

export interface ModelInfo {
  name: string;
  file: string;
  sha256: string;
  bytes: number;
  input: { name: string; shape: Array<number | string>; layout: Layout };
  output: { name: string; shape: Array<number | string> };
  /** 1 when the model's batch dimension is fixed at 1. */
  maxBatch: number;
  /** Key figures from the model card (`<model>.json` beside the file), when there is one. */
  card?: Record<string, unknown>;
  /** The ONNX Runtime backend the model runs on, and why. */
  backend: BackendInfo;
}

/** Why a model cannot be used; `code` is what the editor's model panel translates. */
export type ModelErrorCode = "not-onnx" | "not-found" | "not-readable" | "not-a-file" | "not-allowed" | "too-large" | "invalid-model";

export class ModelError extends Error {
  constructor(
    message: string,
    readonly code: ModelErrorCode = "invalid-model",
  ) {
    super(message);
    this.name = "ModelError";
  }
}

export class Classifier {
  private constructor(
    private session: Ort.InferenceSession | undefined,
    private readonly ort: OrtApi,
    readonly info: ModelInfo,
  ) {}

  /**
   * Loads and validates a model on the backend `backend` chooses; refuses
   * anything that is not a 28×28 one-channel classifier of 10 digits.
   */
  static async create(file: string, backend: BackendSetting = "auto", wasmThreads?: number): Promise<Classifier> {
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Named by its file name only: messages reach editors and MQTT senders, absolute paths should not.
      const name = path.basename(file);
      if (code === "ENOENT") throw new ModelError(`model file not found: ${name}`, "not-found");
      if (code === "EISDIR") throw new ModelError(`model file ${name} is a folder, not a file`, "not-a-file");
      throw new ModelError(`model file not readable (${code === "EACCES" || code === "EPERM" ? "permission denied" : code}): ${name}`, "not-readable");
    }
    const runtime = loadRuntime(backend, wasmThreads);
    let session: Ort.InferenceSession;
    try {
      session = await runtime.ort.InferenceSession.create(bytes, runtime.sessionOptions);
    } catch (err) {
      throw new ModelError(`${path.basename(file)} is not a loadable ONNX model (${firstLine(err)})`);
    }
    try {
      const info = describe(session, file, bytes, runtime.info);
      info.card = await readCard(file);
      if (typeof info.card?.name === "string") info.name = info.card.name;
      return new Classifier(session, runtime.ort, info);
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  /** Probabilities (softmax of the model's outputs) for `count` images of 784 values each. */
  async predict(pixels: Float32Array, count: number): Promise<Float32Array[]> {
    if (!this.session) throw new ModelError("the model has been released");
    const dims = inputDims(this.info.input.layout, count);
    const feeds = { [this.info.input.name]: new this.ort.Tensor("float32", pixels, dims) };
    const results = await this.session.run(feeds);
    const output = results[this.info.output.name];
    const scores = output.data as Float32Array;
    // One buffer for the batch, a view per image: the worker posts the views
    // back together, and copying one buffer costs far less than copying `count`.
    const probabilities = new Float32Array(count * 10);
    const out: Float32Array[] = [];
    for (let i = 0; i < count; i++) {
      const view = probabilities.subarray(i * 10, i * 10 + 10);
      softmax(scores.subarray(i * 10, i * 10 + 10), view);
      out.push(view);
    }
    return out;
  }

  async release(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session) await session.release();
  }
}

function describe(session: Ort.InferenceSession, file: string, bytes: Buffer, backend: BackendInfo): ModelInfo {
  if (session.inputNames.length !== 1) {
    throw new ModelError(`the model has ${session.inputNames.length} inputs (${session.inputNames.join(", ")}); it needs exactly one image input`);
  }
  const input = session.inputMetadata[0];
  const output = session.outputMetadata[0];
  if (!input.isTensor || input.type !== "float32") {
    throw new ModelError(`the model's input "${input.name}" must be a float32 tensor`);
  }
  const shape = [...input.shape];
  const layout = layoutOf(shape);
  if (!layout) {
    throw new ModelError(
      `the model's input "${input.name}" has shape [${shape.join(", ")}]; it needs one 28×28 channel: [N,1,28,28], [N,28,28,1], [N,28,28] or [N,784]`,
    );
  }
  if (!output.isTensor || Number(output.shape[output.shape.length - 1]) !== 10) {
    const outShape = output.isTensor ? `[${output.shape.join(", ")}]` : "not a tensor";
    throw new ModelError(`the model's output "${output.name}" is ${outShape}; it needs 10 scores per image ([N,10])`);
  }
  return {
    name: path.basename(file, path.extname(file)),
    file,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    bytes: bytes.length,
    input: { name: input.name, shape, layout },
    output: { name: output.name, shape: [...output.shape] },
    maxBatch: shape[0] === 1 ? 1 : Number.MAX_SAFE_INTEGER,
    backend,
  };
}

function layoutOf(shape: Array<number | string>): Layout | undefined {
  const tail = shape.slice(1).map(Number).join(",");
  if (shape.length === 4 && tail === `1,${SIDE},${SIDE}`) return "nchw";
  if (shape.length === 4 && tail === `${SIDE},${SIDE},1`) return "nhwc";
  if (shape.length === 3 && tail === `${SIDE},${SIDE}`) return "nhw";
  if (shape.length === 2 && tail === `${SIDE * SIDE}`) return "flat";
  return undefined;
}

function inputDims(layout: Layout, count: number): number[] {
  switch (layout) {
    case "nchw": return [count, 1, SIDE, SIDE];
    case "nhwc": return [count, SIDE, SIDE, 1];
    case "nhw": return [count, SIDE, SIDE];
    case "flat": return [count, SIDE * SIDE];
  }
}

/** Writes the softmax of `scores` to `out`; outputs that already are probabilities (a softmax inside the model) are copied as they are. */
export function softmax(scores: Float32Array, out: Float32Array): void {
  // Indexed loops: an iterator and a spread per image cost more than the arithmetic.
  let sum = 0;
  let max = -Infinity;
  let allInUnit = true;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    sum += s;
    if (s > max) max = s;
    if (s < 0 || s > 1) allInUnit = false;
  }
  if (allInUnit && Math.abs(sum - 1) < 1e-3) {
    out.set(scores);
    return;
  }
  let total = 0;
  for (let i = 0; i < scores.length; i++) total += out[i] = Math.exp(scores[i] - max);
  for (let i = 0; i < scores.length; i++) out[i] /= total;
}

/** A card is a small JSON file: anything larger is not read. */
const MAX_CARD_BYTES = 1024 * 1024;

async function readCard(file: string): Promise<Record<string, unknown> | undefined> {
  const cardFile = path.join(path.dirname(file), `${path.basename(file, path.extname(file))}.json`);
  try {
    if ((await fs.stat(cardFile)).size > MAX_CARD_BYTES) return undefined;
    const card = JSON.parse(await fs.readFile(cardFile, "utf8"));
    return card && typeof card === "object" ? card : undefined;
  } catch {
    return undefined; // a model without a card is fine
  }
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split("\n")[0].slice(0, 200);
}
