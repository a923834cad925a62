// One inference worker thread, with its one ONNX Runtime session, for every
// mnist-infer node on the same model file and backend setting. Each node keeps
// its own bounded queue (inference-service.ts); the worker takes batches from
// those queues in turn, so a flooded node cannot starve a quiet one. The worker
// starts with the first such node and ends when the last one closes.
import * as fs from "fs";
import * as path from "path";
import { Worker } from "worker_threads";
import type { BackendSetting } from "./backends";
import type { ModelInfo } from "./classifier";
import type { WorkerImage } from "../image/image-decoder";
import type { FromWorker, ItemResult, ToWorker } from "./worker-protocol";

/** A batch one node hands the worker, with that node's options for it. */
export interface ClientBatch {
  images: WorkerImage[];
  preview: boolean;
}

/** A node's side of the shared worker: its queue, and what it hears from the worker. */
export interface RuntimeClient {
  /** Takes the next batch (at most what `info` allows) off this node's queue as batch `batchId`, or nothing when none may go. */
  takeBatch(info: ModelInfo, batchId: number): ClientBatch | undefined;
  settle(batchId: number, results: ItemResult[], inferenceMs: number): void;
  ready(info: ModelInfo): void;
  loadFailed(message: string): void;
  /** The worker died: what this node had in it failed; a new worker is on its way. */
  lost(reason: string): void;
}

/** Two batches in flight keep the worker busy while the next one is handed over. */
const MAX_IN_FLIGHT = 2;
const RESTART_DELAY_MS = 1000;
const CLOSE_WAIT_MS = 2000;

/** Runtimes in use, by model file (as it is on disk now) and backend setting. */
const runtimes = new Map<string, SharedRuntime>();
/** Worker threads alive across all runtimes: lets tests prove redeploys leak none. */
let liveWorkers = 0;

export function liveWorkerCount(): number {
  return liveWorkers;
}

/** The runtimes running now: which model and backend, and how many nodes share each. */
export function sharedRuntimes(): Array<{ modelFile: string; backend: BackendSetting; nodes: number; threadId?: number }> {
  return [...runtimes.values()].map((r) => ({ modelFile: r.modelFile, backend: r.backend, nodes: r.clientCount, threadId: r.threadId }));
}

export class SharedRuntime {
  /** Joins the runtime for `modelFile` on `backend`, starting it if no node uses it yet. */
  static attach(modelFile: string, backend: BackendSetting, client: RuntimeClient): SharedRuntime {
    const key = runtimeKey(modelFile, backend);
    let runtime = runtimes.get(key);
    if (!runtime) {
      runtime = new SharedRuntime(key, modelFile, backend);
      runtimes.set(key, runtime);
    }
    runtime.join(client);
    return runtime;
  }

  private readonly clients: RuntimeClient[] = [];
  /** Which node's queue is asked first for the next batch: round-robin. */
  private cursor = 0;
  private worker?: Worker;
  private info?: ModelInfo;
  private loadError?: string;
  /** Batches the worker holds, and whose they are (undefined once that node has left). */
  private readonly inFlight = new Map<number, RuntimeClient | undefined>();
  private nextBatchId = 1;
  private restartTimer?: NodeJS.Timeout;

  private constructor(
    private readonly key: string,
    readonly modelFile: string,
    readonly backend: BackendSetting,
  ) {
    this.startWorker();
  }

  get clientCount(): number {
    return this.clients.length;
  }

  /** The worker's thread id; none while it restarts. */
  get threadId(): number | undefined {
    return this.worker?.threadId;
  }

  private join(client: RuntimeClient): void {
    this.clients.push(client);
    // A node joining a runtime that has already loaded (or failed) hears it as a first node would: after its constructor.
    const { info, loadError } = this;
    if (info && this.worker) queueMicrotask(() => this.clients.includes(client) && client.ready(info));
    else if (loadError !== undefined) queueMicrotask(() => this.clients.includes(client) && client.loadFailed(loadError));
  }

  /** Hands the worker batches, taking turns across the nodes' queues, while it has room. */
  pump(): void {
    const worker = this.worker;
    const info = this.info;
    if (!worker || !info) return;
    while (this.inFlight.size < MAX_IN_FLIGHT) {
      let sent = false;
      for (let k = 0; k < this.clients.length && !sent; k++) {
        const at = (this.cursor + k) % this.clients.length;
        const client = this.clients[at];
        const batchId = this.nextBatchId;
        const batch = client.takeBatch(info, batchId);
        if (!batch) continue;
        this.nextBatchId++;
        this.cursor = (at + 1) % this.clients.length;
        this.inFlight.set(batchId, client);
        this.post(worker, { type: "batch", batchId, images: batch.images, preview: batch.preview });
        sent = true;
      }
      if (!sent) return;
    }
  }

  /** A node leaves; the last one ends the worker (resolves once it has exited). */
  async detach(client: RuntimeClient): Promise<void> {
    const at = this.clients.indexOf(client);
    if (at < 0) return;
    this.clients.splice(at, 1);
    if (at < this.cursor) this.cursor--;
    if (this.cursor >= this.clients.length) this.cursor = 0;
    // The worker finishes what it holds of this node's; the results go nowhere.
    for (const [batchId, owner] of this.inFlight) if (owner === client) this.inFlight.set(batchId, undefined);
    if (this.clients.length > 0) return void this.pump();
    // From now on a new node on this model starts a runtime of its own.
    if (runtimes.get(this.key) === this) runtimes.delete(this.key);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const worker = this.worker;
    this.worker = undefined;
    this.inFlight.clear();
    if (!worker) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_WAIT_MS);
      worker.once("exit", () => (clearTimeout(timer), resolve()));
      this.post(worker, { type: "close" });
    });
    await worker.terminate();
  }

  private startWorker(): void {
    this.restartTimer = undefined;
    const worker = new Worker(path.join(__dirname, "inference-worker.js"));
    liveWorkers++;
    worker.once("exit", () => liveWorkers--);
    this.worker = worker;
    worker.on("message", (message: FromWorker) => this.onMessage(worker, message));
    worker.on("error", (err) => this.onLost(worker, `the inference worker failed: ${err.message}`));
    worker.on("exit", (code) => this.onLost(worker, `the inference worker exited (code ${code})`));
    this.post(worker, { type: "load", file: this.modelFile, backend: this.backend });
  }

  private post(worker: Worker, message: ToWorker): void {
    worker.postMessage(message);
  }

  private onMessage(worker: Worker, message: FromWorker): void {
    if (worker !== this.worker) return;
    switch (message.type) {
      case "ready":
        this.info = message.info;
        this.loadError = undefined;
        for (const client of [...this.clients]) client.ready(message.info);
        this.pump();
        return;
      case "load-failed":
        this.loadError = message.message;
        for (const client of [...this.clients]) client.loadFailed(message.message);
        return;
      case "batch-done": {
        const owner = this.inFlight.get(message.batchId);
        this.inFlight.delete(message.batchId);
        owner?.settle(message.batchId, message.results, message.inferenceMs);
        this.pump();
        return;
      }
      case "closed":
        return;
    }
  }

  /** The worker died under us: every node sharing it hears it and fails what it held; a new worker starts. */
  private onLost(worker: Worker, reason: string): void {
    if (worker !== this.worker) return;
    this.worker = undefined;
    this.info = undefined;
    this.loadError = undefined;
    this.inFlight.clear();
    for (const client of [...this.clients]) client.lost(reason);
    if (this.clients.length > 0) this.restartTimer = setTimeout(() => this.startWorker(), RESTART_DELAY_MS);
  }
}

/**
 * Nodes share a runtime when they name the same file with the same contents on
 * disk (a model replaced in place gets a session of its own) and the same backend setting.
 */
function runtimeKey(modelFile: string, backend: BackendSetting): string {
  const file = path.resolve(modelFile);
  let version = "";
  try {
    const stat = fs.statSync(file);
    version = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  } catch {
    // Unreadable: the worker says why when it tries to load it.
  }
  return `${backend}\n${file}\n${version}`;
}
