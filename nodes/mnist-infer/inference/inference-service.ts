// The main-thread side of inference: one node's bounded queue in front of the
// worker threads it shares with every node on the same model and backend
// (shared-runtime.ts). Whatever arrives while the workers are busy becomes the
// next batch, so batches grow with load and a lone request is sent at once.
import { EventEmitter } from "events";
import { performance } from "perf_hooks";
import type { ModelInfo } from "./classifier";
import type { ImageInput } from "../request/envelope";
import { InputError } from "../errors";
import { decodeWithSharpForWorker, queuedSizeBound, readyForWorker, workerImageBytes, type WorkerImage } from "../image/image-decoder";
import type { BatchOutcome, ClientBatch } from "./worker-protocol";
import { toPrediction, type Prediction } from "./prediction";
import { liveWorkerCount, SharedRuntime, type RuntimeClient } from "./shared-runtime";
import { modelThreshold } from "./unsure-below";
import type { OverflowPolicy, ServiceOptions, ServiceState, ServiceStats } from "./service-options";

export type { Prediction };
export type { OverflowPolicy, ServiceOptions, ServiceState, ServiceStats };

interface Pending {
  image: WorkerImage;
  bytes: number;
  enqueuedAt: number;
  threshold?: number; // the request's or the node's "unsure below"; the model's when neither sets one
  uncounted?: boolean; // the node's own warm-up request (rehearse): no request, not in the stats
  resolve: (prediction: Prediction) => void;
  reject: (err: Error) => void;
}

/** A request still being decoded: it holds its place in the queue and can be dropped before it is done. */
interface Decoding {
  bytes: number;
  dropped?: InputError;
  uncounted?: boolean;
}

const CLOSE_DRAIN_MS = 5000;

export class InferenceService extends EventEmitter implements RuntimeClient {
  /** Worker threads alive across all services: lets tests prove redeploys leak none. */
  static get liveWorkers(): number {
    return liveWorkerCount();
  }

  state: ServiceState = "loading";
  info?: ModelInfo;
  loadError?: string;
  readonly stats: ServiceStats = { accepted: 0, completed: 0, failed: 0, rejected: 0, dropped: 0, batches: 0, largestBatch: 0, workerRestarts: 0 };

  /** The workers this node shares; none for a refused model file, nor once closed. */
  private runtime?: SharedRuntime;
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private decoding: Decoding[] = [];
  /** What `decoding` has reserved, kept as a sum: the check runs for every request. */
  private decodingBytes = 0;
  /** This node's batches in the workers, by the runtime's batch id. */
  private inFlight = new Map<number, Pending[]>();
  private drained?: () => void;
  /** Called when the last request being decoded has left `decoding` (a close waits for it). */
  private decoded?: () => void;
  private closing?: Promise<void>;
  private rehearsing = 0; // rehearsals under way: only then can the backlog hold one

  constructor(private readonly options: ServiceOptions) {
    super();
    // A refused model file starts no worker: it fails to load, with the reason, as a bad file would.
    if (options.refusal === undefined) this.runtime = SharedRuntime.attach(options.modelFile, options.backend, this);
    else queueMicrotask(() => this.loadFailed(options.refusal as string));
  }

  /** Requests waiting for the worker, including those still being decoded; a rehearsal is no request. */
  get backlog(): number {
    const rehearsals = this.rehearsing > 0 ? [...this.decoding, ...this.queue].filter((p) => p.uncounted).length : 0;
    return this.queue.length + this.decoding.length - rehearsals;
  }

  /** Bytes held by the queue: images waiting, and what is reserved for those being decoded. */
  get backlogBytes(): number {
    return this.queuedBytes + this.decodingBytes;
  }

  /** The node's own warm-up request (rehearsal.ts): left out of the stats, and it takes no request's place. */
  rehearse(input: ImageInput, threshold?: number): Promise<Prediction> {
    this.rehearsing++;
    return this.classify(input, threshold, true).finally(() => this.rehearsing--);
  }

  classify(input: ImageInput, threshold?: number, uncounted = false): Promise<Prediction> {
    let reserve: number;
    try {
      if (this.state === "closed") throw new InputError("closed", "the node is stopping; the request was not classified");
      if (this.state === "failed") throw new InputError("model", `the model is not available: ${this.loadError}`);
      reserve = input.kind === "pixels" ? input.image.data.byteLength : queuedSizeBound(input.bytes);
      if (!uncounted) {
        this.makeRoom(1, reserve);
        this.stats.accepted++;
      }
    } catch (err) {
      return Promise.reject(err);
    }
    // Pixels and small PNGs, nearly every request, are queued at once: no promise
    // and no turn of the event loop in between (this runs for each of them).
    if (input.kind === "pixels") return this.enqueue({ kind: "raw", image: input.image }, threshold, uncounted);
    let ready: WorkerImage | undefined;
    try {
      ready = readyForWorker(input.bytes, this.options.maxPixels);
    } catch (err) {
      if (!uncounted) this.stats.failed++;
      return Promise.reject(err);
    }
    return ready ? this.enqueue(ready, threshold, uncounted) : this.decodeThenEnqueue(input.bytes, reserve, threshold, uncounted);
  }

  /** An image sharp decodes first, on libuv's threads: it holds its place in the queue meanwhile. */
  private async decodeThenEnqueue(bytes: Buffer, reserve: number, threshold: number | undefined, uncounted: boolean): Promise<Prediction> {
    const place: Decoding = { bytes: reserve, uncounted };
    this.decoding.push(place);
    this.decodingBytes += reserve;
    let image: WorkerImage;
    try {
      image = await decodeWithSharpForWorker(bytes, this.options.maxPixels);
    } catch (err) {
      if (!place.dropped && !uncounted) this.stats.failed++;
      throw place.dropped ?? err;
    } finally {
      // A dropped request has already left the list.
      const at = this.decoding.indexOf(place);
      if (at >= 0) {
        this.decoding.splice(at, 1);
        this.decodingBytes -= reserve;
      }
      if (this.decoding.length === 0) this.decoded?.();
    }
    if (place.dropped) throw place.dropped;
    return this.enqueue(image, threshold, uncounted);
  }

  private enqueue(image: WorkerImage, threshold: number | undefined, uncounted: boolean): Promise<Prediction> {
    // At most what was reserved for it.
    const bytes = workerImageBytes(image);
    return new Promise<Prediction>((resolve, reject) => {
      this.queue.push({ image, bytes, enqueuedAt: performance.now(), threshold, resolve, reject, uncounted });
      this.queuedBytes += bytes;
      this.runtime?.pumpSoon();
    });
  }

  /** Applies the overflow policy until `count` more requests of `bytes` fit: drop the oldest (queued
   *  first, then still decoding) or refuse the new one. A lone request over the byte budget is taken when nothing waits. */
  private makeRoom(count: number, bytes: number): void {
    const { queueLimit, queueBytes } = this.options;
    const full = () => this.backlog + count > queueLimit || (this.backlog > 0 && this.backlogBytes + bytes > queueBytes);
    if (!full()) return;
    const why = this.backlog + count > queueLimit ? `${queueLimit} requests` : `${megabytes(queueBytes)} of images`;
    if (this.options.overflow === "drop-oldest") {
      while (full() && this.backlog > 0) {
        const dropped = new InputError("queue-full", `dropped: the queue was full (${why}) and the oldest request makes room for newer ones`);
        const oldest = this.queue.shift() ?? (this.decoding.shift() as Decoding);
        if ("reject" in oldest) {
          this.queuedBytes -= oldest.bytes;
          oldest.reject(dropped);
        } else {
          // Still decoding: it ends with this error as soon as its decoding does.
          this.decodingBytes -= oldest.bytes;
          oldest.dropped = dropped;
        }
        if (!oldest.uncounted) this.stats.dropped++; // a dropped rehearsal is no refused request
      }
      return;
    }
    this.stats.rejected++;
    throw new InputError("queue-full", `rejected: the queue is full (${why} waiting); retry later, or raise the queue's size or memory`);
  }

  /** A shared worker asks this node for its next batch (its turn in the round). */
  takeBatch(info: ModelInfo, batchId: number): ClientBatch | undefined {
    if ((this.state !== "ready" && this.state !== "closed") || this.queue.length === 0) return undefined;
    const batch = this.queue.splice(0, Math.max(1, Math.min(this.options.maxBatch, info.maxBatch)));
    let counted = 0; // the rehearsal is no request: a batch of it alone is no batch
    for (const p of batch) {
      this.queuedBytes -= p.bytes;
      if (!p.uncounted) counted++;
    }
    this.inFlight.set(batchId, batch);
    if (counted > 0) this.stats.batches++;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, counted);
    const modelDefault = modelThreshold(info);
    return { images: batch.map((p) => p.image), preview: this.options.preview, lookAgainBelow: Float64Array.from(batch, (p) => (this.options.secondLook === false ? 0 : p.threshold ?? modelDefault)) };
  }

  /** A full batch or more waits: the workers are not keeping up with this node (a short burst does not count). */
  waiting(): boolean {
    return this.state === "ready" && this.queue.length >= Math.max(1, Math.min(this.options.maxBatch, this.info?.maxBatch ?? 1));
  }

  ready(info: ModelInfo): void {
    if (this.state === "closed") return;
    this.info = info;
    this.state = "ready";
    this.emit("state", this.state);
    this.runtime?.pump();
  }

  loadFailed(message: string): void {
    this.loadError = message;
    this.state = this.state === "closed" ? "closed" : "failed";
    this.failAll(new InputError("model", `the model is not available: ${message}`));
    this.emit("state", this.state);
  }

  settle(batchId: number, outcome: BatchOutcome): void {
    const batch = this.inFlight.get(batchId);
    if (!batch) return;
    this.inFlight.delete(batchId);
    const now = performance.now();
    const failures = new Map(outcome.failures);
    batch.forEach((pending, i) => {
      const failure = failures.get(i);
      if (failure) {
        if (!pending.uncounted) this.stats.failed++;
        // A fault in the worker reaches the node as the Error it was (a bug), not as bad input.
        pending.reject(failure.code === "internal" ? Object.assign(new Error(failure.message), { stack: failure.stack }) : new InputError(failure.code, failure.message));
        return;
      }
      if (!pending.uncounted) this.stats.completed++;
      pending.resolve(toPrediction(outcome, i, now - pending.enqueuedAt, batch.length));
    });
    if (this.queue.length === 0 && this.inFlight.size === 0) this.drained?.();
  }

  /** One of the shared workers died with these batches of ours: they fail; the other workers carry on. */
  batchesLost(batchIds: number[], reason: string): void {
    for (const batchId of batchIds) {
      for (const pending of this.inFlight.get(batchId) ?? []) {
        if (!pending.uncounted) this.stats.failed++;
        pending.reject(new InputError("model", `${reason}; the request was not classified`));
      }
      this.inFlight.delete(batchId);
    }
    if (this.queue.length === 0 && this.inFlight.size === 0) this.drained?.();
  }

  /** The last shared worker died: fail what it held of ours, keep the queue; the runtime starts a new one. */
  lost(reason: string): void {
    this.batchesLost([...this.inFlight.keys()], reason);
    if (this.state === "closed") return void this.drained?.();
    this.state = "loading";
    this.emit("state", this.state, reason);
    this.stats.workerRestarts++;
  }

  private failAll(err: Error): void {
    this.queuedBytes = 0;
    for (const pending of this.queue.splice(0)) {
      if (!pending.uncounted) this.stats.failed++;
      pending.reject(err);
    }
  }

  /** Finishes what was accepted (bounded in time), then leaves the worker (the last node to leave ends it). */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    const wasReady = this.state === "ready";
    this.state = "closed";
    if (wasReady && (this.queue.length > 0 || this.inFlight.size > 0)) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_DRAIN_MS);
        this.drained = () => { clearTimeout(timer); resolve(); };
      });
    }
    this.drained = undefined;
    // Requests still being decoded end as "closed" as soon as their decoding does, before the close
    // completes: none is left waiting on a worker that is gone, and the node can hand them over.
    const closed = new InputError("closed", "the node was stopped or redeployed before the request was classified");
    for (const place of this.decoding) place.dropped ??= closed;
    if (this.decoding.length > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_DRAIN_MS);
        this.decoded = () => (clearTimeout(timer), resolve());
      });
    }
    this.decoded = undefined;
    this.failAll(closed);
    const runtime = this.runtime;
    this.runtime = undefined;
    for (const batch of this.inFlight.values()) batch.forEach((p) => p.reject(new InputError("closed", "the node was stopped before the request was classified")));
    this.inFlight.clear();
    await runtime?.detach(this);
    this.removeAllListeners();
  }
}

function megabytes(bytes: number): string {
  return `${Math.round((bytes / 1048576) * 10) / 10} MB`;
}
