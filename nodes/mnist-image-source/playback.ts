// The playback state of an image source: the images loaded, the place in the
// playlist, what has been sent, and the timer, bursts and control messages that
// drive it. Loading, ticks, next, burst and reset run one after another, so the
// order of the images is never interleaved.
import type { NodeMessage } from "node-red";
import { imageMessage, newRunId } from "./image-message";
import { CatalogueError, ImageReader, loadCatalogue, type Catalogue, type ImageFolder } from "./labelled-images";
import { Playlist, type PlaylistOptions } from "./playlist";
import { MAX_WAITING, SerialQueue, type Done } from "./serial-queue";

export type PlaybackState = "loading" | "ready" | "running" | "stopped" | "done" | "failed";

export interface PlaybackOptions {
  /** The folder of images: where it is, how messages name it, its file size limit. */
  folder: ImageFolder;
  /** The list file's name in the folder; blank for none. */
  listName: string;
  /** A missing list file of any other name is warned about. */
  defaultListName: string;
  /** Milliseconds between images while running. */
  interval: number;
  /** Images to send before stopping; 0 for no limit. */
  limit: number;
  /** msg.payload is the image's bytes rather than the JSON envelope. */
  raw: boolean;
  order: PlaylistOptions;
  /** Run the timer as soon as the images are ready. */
  autoStart: boolean;
}

/** What playback needs from its node. */
export interface PlaybackHooks {
  /** Sends a message outside any input handler (the timer's). */
  send(msg: NodeMessage): void;
  /** Keeps a message for confirmed delivery before it is sent, when the node does that. */
  track?(msg: NodeMessage): void;
  error(text: string): void;
  warn(text: string): void;
  log(text: string): void;
  /** Text from the node's message catalogue, under "mnist-image-source.". */
  text(key: string, substitutions?: Record<string, string | number>): string;
  /** Why the images could not be loaded, in the user's terms. */
  explain(err: unknown): string;
  /** What the status shows has changed: show it now, or soon when only a count moved. */
  changed(now: boolean): void;
}

type Send = (msg: NodeMessage) => void;

/** A burst yields to the event loop after this many messages, so the editor and other flows stay responsive. */
const BURST_CHUNK = 64;
/** Image files kept in memory: the 500 bundled samples take about 150 kB. */
const CACHE_BYTES = 32 * 1024 * 1024;
/** Separate errors for list problems; the rest are summarised in one. */
const MAX_REPORTED = 10;

export class Playback {
  private current: PlaybackState = "loading";
  private failure: Error | undefined;
  private failedStatus = "failed";
  private catalogue: Catalogue | undefined;
  private playlist: Playlist | undefined;
  private reader = new ImageReader(CACHE_BYTES);
  /** Files that failed once: reported once, then skipped. */
  private readonly unreadable = new Set<string>();
  private distinctFiles = 0;
  private runId = newRunId();
  private sequence = 0;
  private sentCount = 0;
  private skippedCount = 0;
  /** Whether the interval timer should run once the images are ready. */
  private wantRunning: boolean;
  private timer: NodeJS.Timeout | undefined;
  private tickPending = false;
  /** Bumped by stop, reset and close: emissions started under an older value end. */
  private generation = 0;
  private bursting = 0;
  private closed = false;
  /** Loading, ticks and control messages, one after another. */
  private readonly queue: SerialQueue;

  constructor(private readonly options: PlaybackOptions, private readonly hooks: PlaybackHooks) {
    this.wantRunning = options.autoStart;
    this.queue = new SerialQueue(() => new Error(hooks.text("errors.busy", { count: MAX_WAITING })));
  }

  /** What the status shows. */
  get view(): { state: PlaybackState; sent: number; skipped: number; failedKey: string; busy: boolean; closed: boolean } {
    const busy = this.current === "running" || this.bursting > 0;
    return { state: this.current, sent: this.sentCount, skipped: this.skippedCount, failedKey: this.failedStatus, busy, closed: this.closed };
  }

  /** Reads the folder for the first time. */
  begin(): void {
    this.queue.run(() => this.load()).catch((err) => this.hooks.error(messageOf(err)));
  }

  start(done: Done): void {
    if (this.current === "failed") return done(this.failure);
    if (this.current !== "done") this.wantRunning = true;
    if (this.current === "ready" || this.current === "stopped") this.startTimer();
    done();
  }

  /** Also ends a burst in progress and cancels emissions still waiting. */
  stop(done: Done): void {
    this.generation++;
    this.wantRunning = false;
    this.stopTimer();
    if (this.current === "ready" || this.current === "running") this.current = "stopped";
    this.hooks.changed(true);
    done();
  }

  reset(done: Done): void {
    this.generation++;
    this.queue.enqueue(() => this.load(), done);
  }

  next(send: Send, done: Done): void {
    const started = this.generation;
    this.queue.enqueue(async () => {
      if (this.current === "failed") throw this.failure;
      await this.emitOne(send, started);
      this.hooks.changed(true);
    }, done);
  }

  burst(count: number, send: Send, done: Done): void {
    const started = this.generation;
    this.queue.enqueue(async () => {
      if (this.current === "failed") throw this.failure;
      await this.emitBurst(count, send, started);
    }, done);
  }

  close(): void {
    this.closed = true;
    this.generation++;
    this.stopTimer();
  }

  /** Reads the folder and list (again, on reset) and starts over from the first image. */
  private async load(): Promise<void> {
    this.stopTimer();
    this.current = "loading";
    this.hooks.changed(true);
    this.catalogue = undefined;
    this.playlist = undefined;
    this.failure = undefined;
    this.reader = new ImageReader(CACHE_BYTES);
    this.unreadable.clear();
    this.runId = newRunId();
    this.sequence = 0;
    this.sentCount = 0;
    this.skippedCount = 0;
    const { folder, listName } = this.options;
    let catalogue: Catalogue;
    try {
      catalogue = await loadCatalogue(folder, listName);
    } catch (err) {
      if (this.closed) return;
      this.fail(this.hooks.explain(err), err instanceof CatalogueError ? err.code : "failed");
      return;
    }
    if (this.closed) return;
    this.catalogue = catalogue;
    this.report(catalogue.problems);
    this.skippedCount = catalogue.problems.length;
    if (catalogue.listMissing && listName !== this.options.defaultListName) {
      this.hooks.warn(this.hooks.text("warnings.no-list", { file: listName, folder: folder.name }));
    }
    this.distinctFiles = new Set(catalogue.images.map((image) => image.file)).size;
    this.playlist = new Playlist(catalogue.images.length, this.options.order);
    this.current = "ready";
    if (this.wantRunning) this.startTimer();
    this.hooks.changed(true);
  }

  /** Nothing can be sent until a reset; a timer that was wanted starts again after a successful one. */
  private fail(message: string, statusKey: string): void {
    this.stopTimer();
    this.failure = new Error(message);
    this.failedStatus = statusKey;
    this.current = "failed";
    this.hooks.changed(true);
    this.hooks.error(message);
  }

  private report(problems: string[]): void {
    for (const problem of problems.slice(0, MAX_REPORTED)) this.hooks.error(problem);
    if (problems.length > MAX_REPORTED) {
      this.hooks.error(this.hooks.text("errors.more-problems", { count: problems.length - MAX_REPORTED }));
    }
  }

  private startTimer(): void {
    this.stopTimer();
    this.timer = setInterval(() => this.tick(), this.options.interval);
    this.current = "running";
    this.hooks.changed(true);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    // A tick that finds the previous one (or a burst) still busy is skipped, not queued.
    if (this.tickPending) return;
    this.tickPending = true;
    const started = this.generation;
    this.queue.run(async () => {
      if (this.current === "running") await this.emitOne((msg) => this.hooks.send(msg), started);
    })
      .catch((err) => this.hooks.error(messageOf(err)))
      .finally(() => {
        this.tickPending = false;
      });
  }

  /** The end of the list (not looping) or the limit: stop, and say so. */
  private finish(): void {
    this.stopTimer();
    this.wantRunning = false;
    this.current = "done";
    this.hooks.changed(true);
    this.hooks.log(this.hooks.text("log.done", { count: this.sentCount }));
  }

  private countChanged(): void {
    if (!this.closed) this.hooks.changed(false);
  }

  /** Sends the next readable image; false when nothing was sent (end, limit, stopped or failed). */
  private async emitOne(send: Send, started: number): Promise<boolean> {
    const { limit } = this.options;
    for (;;) {
      const { catalogue, playlist } = this;
      if (this.closed || started !== this.generation || !catalogue || !playlist) return false;
      if (this.current === "done" || this.current === "failed" || this.current === "loading") return false;
      if (limit > 0 && this.sentCount >= limit) {
        this.finish();
        return false;
      }
      const index = playlist.next();
      if (index === undefined) {
        this.finish();
        return false;
      }
      const image = catalogue.images[index];
      if (this.unreadable.has(image.file)) continue;
      let bytes: Buffer;
      try {
        bytes = await this.reader.read(image, catalogue);
      } catch (err) {
        this.unreadable.add(image.file);
        this.skippedCount++;
        this.hooks.error(String((err as Error).message));
        if (this.unreadable.size >= this.distinctFiles) {
          this.fail(this.hooks.text("errors.none-readable", { count: this.distinctFiles, folder: this.options.folder.name }), "none-readable");
          return false;
        }
        this.countChanged();
        continue;
      }
      if (this.closed || started !== this.generation) return false;
      const msg = imageMessage(image, bytes, `${this.runId}-${++this.sequence}`, this.options.raw);
      this.hooks.track?.(msg);
      send(msg);
      this.sentCount++;
      if ((limit > 0 && this.sentCount >= limit) || playlist.finished) this.finish();
      else this.countChanged();
      return true;
    }
  }

  private async emitBurst(count: number, send: Send, started: number): Promise<void> {
    this.bursting++;
    this.hooks.changed(true);
    try {
      for (let i = 1; i <= count; i++) {
        if (!(await this.emitOne(send, started))) return;
        if (i % BURST_CHUNK === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.bursting--;
      this.hooks.changed(true);
    }
  }
}

function messageOf(err: unknown): string {
  return String((err as Error)?.message ?? err);
}
