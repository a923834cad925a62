// The inference workers for every mnist-infer node on the same model file and
// backend setting. Each node keeps its own bounded queue (inference-service.ts);
// the workers take batches from those queues in turn, so a flooded node cannot
// starve a quiet one. One worker starts with the first such node and the last
// node to leave ends them all. On the native backend a second worker joins while
// the first cannot keep up (each runs one thread: decoding, preprocessing and
// inference of one batch overlap those of the next), and leaves once idle.
import * as os from "os";
import * as fs from "fs";
import * as path from "path";
import type { BackendSetting } from "./backends";
import type { ModelInfo } from "./classifier";
import type { BatchOutcome, ClientBatch } from "./worker-protocol";
import { PoolMember, type MemberEvents } from "./pool-member";

export { liveWorkerCount } from "./pool-member";

/** A node's side of the shared workers: its queue, and what it hears from them. */
export interface RuntimeClient {
  /** Takes the next batch (at most what `info` allows) off this node's queue as batch `batchId`, or nothing when none may go. */
  takeBatch(info: ModelInfo, batchId: number): ClientBatch | undefined;
  /** Whether a full batch or more waits that no worker has room for (the pool may grow). */
  waiting(): boolean;
  settle(batchId: number, outcome: BatchOutcome): void;
  ready(info: ModelInfo): void;
  loadFailed(message: string): void;
  /** One of several workers died: these batches failed; the others keep answering. */
  batchesLost(batchIds: number[], reason: string): void;
  /** The last worker died: what this node had in it failed; a new worker is on its way. */
  lost(reason: string): void;
}

/** Two batches in flight keep a worker busy while the next one is handed over. */
const MAX_IN_FLIGHT = 2;
/** More than two one-thread sessions gain little on a 28×28 CNN and cost a session's memory each. */
const DEFAULT_MAX_WORKERS = 2;
/** An extra worker idle this long gives its memory back (a setting object, so tests can shorten it). */
export const poolTiming = { idleRetireMs: 30_000 };
const RESTART_DELAY_MS = 1000;

/** Runtimes in use, by model file (as it is on disk now) and backend setting. */
const runtimes = new Map<string, SharedRuntime>();

/** The runtimes running now: which model and backend, how many nodes share it, and its worker threads. */
export function sharedRuntimes(): Array<{ modelFile: string; backend: BackendSetting; nodes: number; threadId?: number; threadIds: number[] }> {
  return [...runtimes.values()].map((r) => ({ modelFile: r.modelFile, backend: r.backend, nodes: r.clientCount, threadId: r.threadIds[0], threadIds: r.threadIds }));
}

export class SharedRuntime implements MemberEvents<RuntimeClient> {
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
  private members: Array<PoolMember<RuntimeClient>> = [];
  /** The model, while at least one worker has it loaded. */
  private info?: ModelInfo;
  private loadError?: string;
  /** How many workers the pool may grow to: 1 until the backend is known (see maxWorkers). */
  private workerLimit = 1;
  private nextBatchId = 1;
  private restartTimer?: NodeJS.Timeout;
  private pumpQueued = false;

  private constructor(
    private readonly key: string,
    readonly modelFile: string,
    readonly backend: BackendSetting,
  ) {
    this.addMember();
  }

  get clientCount(): number {
    return this.clients.length;
  }

  /** The workers' thread ids, the first worker's first. */
  get threadIds(): number[] {
    return this.members.map((m) => m.threadId);
  }

  private join(client: RuntimeClient): void {
    this.clients.push(client);
    // A node joining a runtime that has already loaded (or failed) hears it as a first node would: after its constructor.
    const { info, loadError } = this;
    if (info) queueMicrotask(() => this.clients.includes(client) && client.ready(info));
    else if (loadError !== undefined) queueMicrotask(() => this.clients.includes(client) && client.loadFailed(loadError));
  }

  /**
   * Pumps once the requests of this turn are all queued. A batch request's
   * images reach the queue one microtask apart, and pumping at once sent the
   * first alone to an idle worker (a lone 32-image request went as batches of
   * 1, 1 and 30). A lone request waits only for a microtask.
   */
  pumpSoon(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Hands batches to the least busy worker, taking turns across the nodes' queues, while a worker has room. */
  pump(): void {
    const info = this.info;
    if (!info) return;
    for (;;) {
      const member = this.leastBusy();
      if (!member) return this.growIfBehind();
      if (!this.sendNext(member, info)) return;
    }
  }

  private leastBusy(): PoolMember<RuntimeClient> | undefined {
    let best: PoolMember<RuntimeClient> | undefined;
    for (const m of this.members) if (m.ready && m.inFlight.size < MAX_IN_FLIGHT && (!best || m.inFlight.size < best.inFlight.size)) best = m;
    return best;
  }

  private sendNext(member: PoolMember<RuntimeClient>, info: ModelInfo): boolean {
    for (let k = 0; k < this.clients.length; k++) {
      const at = (this.cursor + k) % this.clients.length;
      const client = this.clients[at];
      const batchId = this.nextBatchId;
      const batch = client.takeBatch(info, batchId);
      if (!batch) continue;
      this.nextBatchId++;
      this.cursor = (at + 1) % this.clients.length;
      member.send(batchId, client, batch);
      return true;
    }
    return false;
  }

  /** Every worker is full and a node has a full batch waiting: start one more, if the backend gains from it. */
  private growIfBehind(): void {
    if (this.members.length >= this.workerLimit || this.members.some((m) => !m.ready)) return;
    if (this.clients.some((c) => c.waiting())) this.addMember();
  }

  private addMember(): void {
    this.restartTimer = undefined;
    this.members.push(new PoolMember(this.modelFile, this.backend, this));
  }

  /** A node leaves; the last one ends the workers (resolves once they have exited). */
  async detach(client: RuntimeClient): Promise<void> {
    const at = this.clients.indexOf(client);
    if (at < 0) return;
    this.clients.splice(at, 1);
    if (at < this.cursor) this.cursor--;
    if (this.cursor >= this.clients.length) this.cursor = 0;
    // The workers finish what they hold of this node's; the results go nowhere.
    for (const member of this.members) for (const [batchId, owner] of member.inFlight) if (owner === client) member.inFlight.set(batchId, undefined);
    if (this.clients.length > 0) return void this.pump();
    // From now on a new node on this model starts a runtime of its own.
    if (runtimes.get(this.key) === this) runtimes.delete(this.key);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const members = this.members;
    this.members = [];
    this.info = undefined;
    await Promise.all(members.map((m) => m.close()));
  }

  ready(member: PoolMember<RuntimeClient>, info: ModelInfo): void {
    if (!this.info) {
      this.info = info;
      this.workerLimit = Math.max(this.workerLimit, maxWorkers(info));
      this.loadError = undefined;
      for (const client of [...this.clients]) client.ready(info);
    }
    this.pump();
  }

  loadFailed(member: PoolMember<RuntimeClient>, message: string): void {
    this.remove(member);
    void member.close();
    // An extra worker: the others carry on, and the pool stays as it is.
    if (this.info) return void (this.workerLimit = this.members.length);
    this.loadError = message;
    for (const client of [...this.clients]) client.loadFailed(message);
  }

  batchDone(member: PoolMember<RuntimeClient>, owner: RuntimeClient | undefined, batchId: number, outcome: BatchOutcome): void {
    owner?.settle(batchId, outcome);
    this.pump();
    // The first worker stays; an extra one leaves when the load that brought it has gone.
    if (member !== this.members[0] && member.inFlight.size === 0) member.whenIdleFor(poolTiming.idleRetireMs, () => this.retire(member));
  }

  private retire(member: PoolMember<RuntimeClient>): void {
    if (!this.members.includes(member) || member === this.members[0]) return;
    this.remove(member);
    void member.close();
  }

  /** A worker died under us: the batches it held fail; if it was the last, every node hears it and a new one starts. */
  lost(member: PoolMember<RuntimeClient>, reason: string): void {
    if (!this.remove(member)) return;
    const lostBy = new Map<RuntimeClient, number[]>();
    for (const [batchId, owner] of member.inFlight) if (owner) lostBy.set(owner, [...(lostBy.get(owner) ?? []), batchId]);
    if (this.members.some((m) => m.ready)) {
      for (const [client, batchIds] of lostBy) client.batchesLost(batchIds, reason);
      return this.pump();
    }
    this.info = undefined;
    this.loadError = undefined;
    for (const client of [...this.clients]) client.lost(reason);
    // A worker still loading will say ready; otherwise start a new one.
    if (this.clients.length > 0 && this.members.length === 0) this.restartTimer = setTimeout(() => this.addMember(), RESTART_DELAY_MS);
  }

  private remove(member: PoolMember<RuntimeClient>): boolean {
    const at = this.members.indexOf(member);
    if (at >= 0) this.members.splice(at, 1);
    return at >= 0;
  }
}

/**
 * How many workers a runtime may grow to: on the native backend one per core,
 * at most two (`MNIST_INFER_WORKERS` sets it); WebAssembly runs its own threads
 * inside one session, so it keeps one.
 */
function maxWorkers(info: ModelInfo): number {
  if (info.backend.name !== "native") return 1;
  const fromEnv = Number(process.env.MNIST_INFER_WORKERS);
  if (Number.isInteger(fromEnv) && fromEnv >= 1 && fromEnv <= 16) return fromEnv;
  return Math.max(1, Math.min(DEFAULT_MAX_WORKERS, os.availableParallelism?.() ?? os.cpus().length));
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
