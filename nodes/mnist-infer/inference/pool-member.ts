// One inference worker thread of a shared runtime (shared-runtime.ts): its
// own ONNX session, and the batches it holds until it answers them.
import * as path from "path";
import { Worker } from "worker_threads";
import type { BackendSetting } from "./backends";
import type { ModelInfo } from "./classifier";
import { isInside, lockOut, newNativeSectionFlag } from "./native-section";
import { packImages, type BatchOutcome, type ClientBatch, type FromWorker, type ToWorker, type WorkerData } from "./worker-protocol";

/** What a member tells its runtime. Nothing arrives after `lost`, or after `close()` was called. */
export interface MemberEvents<Owner> {
  ready(member: PoolMember<Owner>, info: ModelInfo): void;
  loadFailed(member: PoolMember<Owner>, message: string): void;
  batchDone(member: PoolMember<Owner>, owner: Owner | undefined, batchId: number, outcome: BatchOutcome): void;
  lost(member: PoolMember<Owner>, reason: string): void;
}

/** How long a closing worker may take to run what it holds and exit by itself before it is ended (tests shorten it). */
export const closeTiming = { waitMs: 2000 };

/** Worker threads alive across all runtimes: lets tests prove redeploys leak none. */
let liveWorkers = 0;

export function liveWorkerCount(): number {
  return liveWorkers;
}

export class PoolMember<Owner> {
  private readonly worker: Worker;
  /** Set while the worker runs ONNX Runtime code, when ending it would abort the process. */
  private readonly nativeSection = newNativeSectionFlag();
  /** Resolves once the thread has exited, however it ended. */
  private readonly exited: Promise<void>;
  info?: ModelInfo;
  /** Batches it holds, and whose they are (undefined once that node has left). */
  readonly inFlight = new Map<number, Owner | undefined>();
  /** Set once it died or was asked to close: it reports nothing more. */
  private ended = false;
  private idleTimer?: NodeJS.Timeout;

  constructor(modelFile: string, backend: BackendSetting, private readonly events: MemberEvents<Owner>) {
    const worker = new Worker(path.join(__dirname, "inference-worker.js"), { workerData: { nativeSection: this.nativeSection } satisfies WorkerData });
    liveWorkers++;
    this.exited = new Promise((resolve) => worker.once("exit", () => (liveWorkers--, resolve())));
    this.worker = worker;
    worker.on("message", (message: FromWorker) => this.onMessage(message));
    worker.on("error", (err) => this.lose(`the inference worker failed: ${err.message}`));
    worker.on("exit", (code) => this.lose(`the inference worker exited (code ${code})`));
    this.post({ type: "load", file: modelFile, backend });
  }

  /** Loaded, alive, and not closing: it may be given batches. */
  get ready(): boolean {
    return this.info !== undefined && !this.ended;
  }

  get threadId(): number {
    return this.worker.threadId;
  }

  /** The worker is inside ONNX Runtime's code right now (loading, running a batch or releasing). */
  get insideNative(): boolean {
    return isInside(this.nativeSection);
  }

  send(batchId: number, owner: Owner, { images, preview, lookAgainBelow }: ClientBatch): void {
    this.clearIdle();
    this.inFlight.set(batchId, owner);
    const { packed, transfer } = packImages(images);
    transfer.push(lookAgainBelow.buffer as ArrayBuffer);
    this.worker.postMessage({ type: "batch", batchId, images: packed, preview, lookAgainBelow } satisfies ToWorker, transfer);
  }

  /** Calls `then` once it has held nothing for `ms` (unless it is given a batch before). */
  whenIdleFor(ms: number, then: () => void): void {
    this.clearIdle();
    if (this.inFlight.size > 0) return;
    this.idleTimer = setTimeout(() => this.inFlight.size === 0 && !this.ended && then(), ms);
    this.idleTimer.unref();
  }

  /**
   * Ends the worker once it has run what it holds (their results go nowhere).
   * One still busy after a short wait is ended from outside, but never in the
   * middle of a model run: that would abort Node-RED, so a long batch is waited for.
   */
  async close(): Promise<void> {
    this.clearIdle();
    if (!this.ended) {
      this.ended = true;
      this.post({ type: "close" });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, closeTiming.waitMs)))]);
      clearTimeout(timer);
    }
    // A thread that died inside a section never leaves it: its exit ends the wait.
    await Promise.race([this.exited, lockOut(this.nativeSection)]);
    await this.worker.terminate();
  }

  private post(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private onMessage(message: FromWorker): void {
    if (this.ended) return;
    switch (message.type) {
      case "ready":
        this.info = message.info;
        return this.events.ready(this, message.info);
      case "load-failed":
        return this.events.loadFailed(this, message.message);
      case "batch-done": {
        const owner = this.inFlight.get(message.batchId);
        this.inFlight.delete(message.batchId);
        return this.events.batchDone(this, owner, message.batchId, message.outcome);
      }
      case "closed":
        return;
    }
  }

  private lose(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.clearIdle();
    this.events.lost(this, reason);
  }
}

