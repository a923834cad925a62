// The main-thread side of inference: a bounded queue in front of one worker
// thread. Whatever arrives while the worker is busy becomes the next batch, so
// batches grow with load and a lone request is sent at once (no added latency).
import { EventEmitter } from "events";
import * as path from "path";
import { performance } from "perf_hooks";
import { Worker } from "worker_threads";
import type { BackendSetting } from "./backends";
import type { ModelInfo } from "./classifier";
import type { ImageInput } from "../request/envelope";
import { InputError } from "../errors";
import { decodeForWorker, queuedSizeBound, type WorkerImage } from "../image/image-decoder";
import type { FromWorker, ItemResult } from "./worker-protocol";
import { toPrediction, type Prediction } from "./prediction";

export type { Prediction };

export type OverflowPolicy = "reject-newest" | "drop-oldest";

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

interface Pending {
  image: WorkerImage;
  bytes: number;
  enqueuedAt: number;
  resolve: (prediction: Prediction) => void;
  reject: (err: Error) => void;
}

/** A request still being decoded: it holds its place in the queue and can be dropped before it is done. */
interface Decoding {
  bytes: number;
  dropped?: InputError;
}

/** Two batches in flight keep the worker busy while the next one is handed over. */
const MAX_IN_FLIGHT = 2;
const CLOSE_DRAIN_MS = 5000;
const RESTART_DELAY_MS = 1000;

export class InferenceService extends EventEmitter {
  /** Worker threads alive across all services: lets tests prove redeploys leak none. */
  static liveWorkers = 0;

  state: ServiceState = "loading";
  info?: ModelInfo;
  loadError?: string;
  readonly stats: ServiceStats = { accepted: 0, completed: 0, failed: 0, rejected: 0, dropped: 0, batches: 0, largestBatch: 0, workerRestarts: 0 };

  private worker?: Worker;
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private decoding: Decoding[] = [];
  /** What `decoding` has reserved, kept as a sum: the check runs for every request. */
  private decodingBytes = 0;
  private inFlight = new Map<number, Pending[]>();
  private nextBatchId = 1;
  private restartTimer?: NodeJS.Timeout;
  private drained?: () => void;

  constructor(private readonly options: ServiceOptions) {
    super();
    // A refused model file starts no worker: it fails to load, with the reason, as a bad file would.
    if (options.refusal === undefined) this.startWorker();
    else queueMicrotask(() => this.onWorkerMessage({ type: "load-failed", message: options.refusal as string }));
  }

  /** Requests waiting for the worker, including those still being decoded. */
  get backlog(): number {
    return this.queue.length + this.decoding.length;
  }

  /** Bytes held by the queue: images waiting, and what is reserved for those being decoded. */
  get backlogBytes(): number {
    return this.queuedBytes + this.decodingBytes;
  }

  async classify(input: ImageInput): Promise<Prediction> {
    if (this.state === "closed") throw new InputError("closed", "the node is stopping; the request was not classified");
    if (this.state === "failed") throw new InputError("model", `the model is not available: ${this.loadError}`);
    const reserve = input.kind === "pixels" ? input.image.data.byteLength : queuedSizeBound(input.bytes);
    this.makeRoom(1, reserve);
    this.stats.accepted++;
    const place: Decoding = { bytes: reserve };
    this.decoding.push(place);
    this.decodingBytes += reserve;
    let image: WorkerImage;
    try {
      image = input.kind === "pixels" ? { kind: "raw", image: input.image } : await decodeForWorker(input.bytes, this.options.maxPixels);
    } catch (err) {
      if (!place.dropped) this.stats.failed++;
      throw place.dropped ?? err;
    } finally {
      // A dropped request has already left the list.
      const at = this.decoding.indexOf(place);
      if (at >= 0) {
        this.decoding.splice(at, 1);
        this.decodingBytes -= reserve;
      }
    }
    if (place.dropped) throw place.dropped;
    // At most what was reserved for it while it was decoded.
    const bytes = sizeOf(image);
    return new Promise<Prediction>((resolve, reject) => {
      this.queue.push({ image, bytes, enqueuedAt: performance.now(), resolve, reject });
      this.queuedBytes += bytes;
      this.pump();
    });
  }

  /**
   * Applies the overflow policy until `count` more requests of `bytes` fit:
   * drop the oldest (queued first, then still decoding), or refuse the new one.
   * A lone request larger than the byte budget is still taken when nothing waits.
   */
  private makeRoom(count: number, bytes: number): void {
    const { queueLimit, queueBytes } = this.options;
    const full = () => this.backlog + count > queueLimit || (this.backlog > 0 && this.backlogBytes + bytes > queueBytes);
    if (!full()) return;
    const why = this.backlog + count > queueLimit ? `${queueLimit} requests` : `${megabytes(queueBytes)} of images`;
    if (this.options.overflow === "drop-oldest") {
      while (full() && this.backlog > 0) {
        const dropped = new InputError("queue-full", `dropped: the queue was full (${why}) and the oldest request makes room for newer ones`);
        this.stats.dropped++;
        const oldest = this.queue.shift();
        if (oldest) {
          this.queuedBytes -= oldest.bytes;
          oldest.reject(dropped);
        } else {
          // Still decoding: it ends with this error as soon as its decoding does.
          const place = this.decoding.shift() as Decoding;
          this.decodingBytes -= place.bytes;
          place.dropped = dropped;
        }
      }
      return;
    }
    this.stats.rejected++;
    throw new InputError("queue-full", `rejected: the queue is full (${why} waiting); retry later, or raise the queue's size or memory`);
  }

  private pump(): void {
    if (this.state !== "ready" && this.state !== "closed") return;
    if (!this.worker || !this.info) return;
    const batchLimit = Math.max(1, Math.min(this.options.maxBatch, this.info.maxBatch));
    while (this.inFlight.size < MAX_IN_FLIGHT && this.queue.length > 0) {
      const batch = this.queue.splice(0, batchLimit);
      for (const p of batch) this.queuedBytes -= p.bytes;
      const batchId = this.nextBatchId++;
      this.inFlight.set(batchId, batch);
      this.stats.batches++;
      this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
      this.worker.postMessage({ type: "batch", batchId, images: batch.map((p) => p.image), preview: this.options.preview });
    }
    if (this.queue.length === 0 && this.inFlight.size === 0) this.drained?.();
  }

  private startWorker(): void {
    const worker = new Worker(path.join(__dirname, "inference-worker.js"));
    InferenceService.liveWorkers++;
    worker.once("exit", () => InferenceService.liveWorkers--);
    this.worker = worker;
    worker.on("message", (message: FromWorker) => this.onWorkerMessage(message));
    worker.on("error", (err) => this.onWorkerLost(worker, `the inference worker failed: ${err.message}`));
    worker.on("exit", (code) => this.onWorkerLost(worker, `the inference worker exited (code ${code})`));
    worker.postMessage({ type: "load", file: this.options.modelFile, backend: this.options.backend });
  }

  private onWorkerMessage(message: FromWorker): void {
    switch (message.type) {
      case "ready":
        if (this.state === "closed") return void this.pump();
        this.info = message.info;
        this.state = "ready";
        this.emit("state", this.state);
        this.pump();
        return;
      case "load-failed":
        this.loadError = message.message;
        this.state = this.state === "closed" ? "closed" : "failed";
        this.failAll(new InputError("model", `the model is not available: ${message.message}`));
        this.emit("state", this.state);
        return;
      case "batch-done":
        this.settle(message.batchId, message.results, message.inferenceMs);
        this.pump();
        return;
      case "closed":
        return;
    }
  }

  private settle(batchId: number, results: ItemResult[], inferenceMs: number): void {
    const batch = this.inFlight.get(batchId);
    if (!batch) return;
    this.inFlight.delete(batchId);
    const now = performance.now();
    batch.forEach((pending, i) => {
      const result = results[i];
      if (!result.ok) {
        this.stats.failed++;
        // A fault in the worker reaches the node as the Error it was (a bug), not as bad input.
        const failure = result.code === "internal" ? Object.assign(new Error(result.message), { stack: result.stack }) : new InputError(result.code, result.message);
        pending.reject(failure);
        return;
      }
      this.stats.completed++;
      pending.resolve(toPrediction(result, now - pending.enqueuedAt, inferenceMs, batch.length));
    });
  }

  /** The worker died under us: fail what it held, keep the queue, and start a new one. */
  private onWorkerLost(worker: Worker, reason: string): void {
    if (worker !== this.worker) return;
    this.worker = undefined;
    for (const batch of this.inFlight.values()) {
      for (const pending of batch) {
        this.stats.failed++;
        pending.reject(new InputError("model", `${reason}; the request was not classified`));
      }
    }
    this.inFlight.clear();
    if (this.state === "closed") return void this.drained?.();
    this.state = "loading";
    this.emit("state", this.state, reason);
    this.stats.workerRestarts++;
    this.restartTimer = setTimeout(() => this.startWorker(), RESTART_DELAY_MS);
  }

  private failAll(err: Error): void {
    this.queuedBytes = 0;
    for (const pending of this.queue.splice(0)) {
      this.stats.failed++;
      pending.reject(err);
    }
  }

  /** Finishes what was accepted (bounded in time), then frees the session and the worker. */
  async close(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const wasReady = this.state === "ready";
    this.state = "closed";
    if (wasReady && (this.queue.length > 0 || this.inFlight.size > 0)) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_DRAIN_MS);
        this.drained = () => { clearTimeout(timer); resolve(); };
      });
    }
    this.drained = undefined;
    this.failAll(new InputError("closed", "the node was stopped or redeployed before the request was classified"));
    const worker = this.worker;
    this.worker = undefined;
    if (worker) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        worker.once("exit", () => { clearTimeout(timer); resolve(); });
        worker.postMessage({ type: "close" });
      });
      await worker.terminate();
    }
    for (const batch of this.inFlight.values()) batch.forEach((p) => p.reject(new InputError("closed", "the node was stopped before the request was classified")));
    this.inFlight.clear();
    this.removeAllListeners();
  }
}

function sizeOf(image: WorkerImage): number {
  return image.kind === "png" ? image.bytes.byteLength : image.image.data.byteLength;
}

function megabytes(bytes: number): string {
  return `${Math.round((bytes / 1048576) * 10) / 10} MB`;
}
