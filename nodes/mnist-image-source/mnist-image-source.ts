// mnist-image-source: sends labelled digit images, from the bundled held-out
// MNIST samples or a folder, on a timer, on each input message or in bursts.
// It replaces the original chain's Python input service.
import { randomBytes } from "crypto";
import * as path from "path";
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from "node-red";
import { CatalogueError, ImageReader, loadCatalogue, type Catalogue, type LabelledImage } from "./labelled-images";
import { BUNDLED_SAMPLES } from "../shared/package-paths";
import { whole } from "../shared/config-values";
import { nodeDeliveryTracker } from "../shared/delivery";
import { clearStatus, nameUnnamed, showStatus } from "../shared/status";
import { Playlist } from "./playlist";

type Mode = "interval" | "input" | "burst";
type Command = "start" | "stop" | "reset" | "next" | "burst";
type State = "loading" | "ready" | "running" | "stopped" | "done" | "failed";

interface MnistImageSourceDef extends NodeDef {
  folder: string;
  listFile: string;
  mode: Mode;
  interval: string | number;
  autoStart: boolean;
  burstCount: string | number;
  loop: boolean;
  shuffle: boolean;
  seed: string;
  limit: string | number;
  output: "envelope" | "raw";
  confirmDelivery: boolean;
}

/** The default msg.payload: the JSON envelope mnist-infer and the original Python services read. */
interface ImageEnvelope {
  id: string;
  label?: number;
  /** The image file's bytes, base64. */
  image: string;
  /** Milliseconds since the epoch, for end-to-end latency. */
  sentAt: number;
}

const DEFAULTS = { interval: 1000, burstCount: 100, listFile: "labels.txt" };
const COMMANDS: readonly Command[] = ["start", "stop", "reset", "next", "burst"];
const MAX_BURST = 10_000_000;
/** setInterval's largest delay; anything longer would fire every millisecond. */
const MAX_INTERVAL = 2_147_483_647;
/** A burst yields to the event loop after this many messages, so the editor and other flows stay responsive. */
const BURST_CHUNK = 64;
/** Messages waiting behind a burst or the folder being read; beyond this they are refused, not dropped. */
const MAX_WAITING = 1000;
/** Image files kept in memory: the 500 bundled samples take about 150 kB. */
const CACHE_BYTES = 32 * 1024 * 1024;
/** Separate node.error calls for list problems; the rest are summarised in one. */
const MAX_REPORTED = 10;
const STATUS_INTERVAL_MS = 250;

export = function (RED: NodeAPI) {
  function MnistImageSourceNode(this: Node, config: MnistImageSourceDef) {
    RED.nodes.createNode(this, config);
    nameUnnamed(this, RED._("mnist-image-source.paletteLabel"));
    const node = this;
    const mode: Mode = config.mode === "input" || config.mode === "burst" ? config.mode : "interval";
    const interval = whole(config.interval, 1, DEFAULTS.interval, MAX_INTERVAL);
    const burstSize = whole(config.burstCount, 1, DEFAULTS.burstCount);
    const limit = whole(config.limit, 0, 0);
    const raw = config.output === "raw";
    const listName = config.listFile === undefined || config.listFile === null ? DEFAULTS.listFile : String(config.listFile).trim();
    const folderSetting = String(config.folder ?? "").trim();
    const userDir = RED.settings.userDir ?? process.cwd();
    const folder = folderSetting ? path.resolve(userDir, folderSetting) : BUNDLED_SAMPLES;
    const order = {
      shuffle: Boolean(config.shuffle),
      // Without a seed every deploy gets its own order; reset still replays it.
      seed: String(config.seed ?? "").trim() || randomBytes(4).toString("hex"),
      loop: config.loop !== false,
    };

    let state: State = "loading";
    let failure: Error | undefined;
    let failedStatus = "failed";
    let catalogue: Catalogue | undefined;
    let playlist: Playlist | undefined;
    let reader = new ImageReader(CACHE_BYTES);
    /** Files that failed once: reported once, then skipped. */
    const unreadable = new Set<string>();
    let distinctFiles = 0;
    let runId = newRunId();
    let sequence = 0;
    let sent = 0;
    let skipped = 0;
    /** Whether the interval timer should run once the images are ready. */
    let wantRunning = mode === "interval" && config.autoStart !== false;
    let timer: NodeJS.Timeout | undefined;
    let tickPending = false;
    /** Bumped by stop, reset and close: emissions started under an older value end. */
    let generation = 0;
    let bursting = 0;
    let waiting = 0;
    let closed = false;
    let statusTimer: NodeJS.Timeout | undefined;
    let lastStatusAt = 0;
    // Requests kept until the mqtt out that publishes them confirms them through a
    // Complete node wired back here; see shared/delivery.ts.
    const delivery = config.confirmDelivery ? nodeDeliveryTracker(RED, node, "mnist-image-source") : undefined;
    // Loading, ticks, next, burst and reset run one after another, so the order is never interleaved.
    let chain: Promise<unknown> = Promise.resolve();

    function serial(op: () => Promise<void>): Promise<void> {
      const run = chain.then(op);
      chain = run.catch(() => undefined);
      return run;
    }

    /** Reads the folder and list (again, on reset) and starts over from the first image. */
    async function load(): Promise<void> {
      stopTimer();
      state = "loading";
      showState();
      catalogue = undefined;
      playlist = undefined;
      failure = undefined;
      reader = new ImageReader(CACHE_BYTES);
      unreadable.clear();
      runId = newRunId();
      sequence = 0;
      sent = 0;
      skipped = 0;
      try {
        catalogue = await loadCatalogue(folder, listName);
      } catch (err) {
        if (closed) return;
        fail(explain(err), err instanceof CatalogueError ? err.code : "failed");
        return;
      }
      if (closed) return;
      report(catalogue.problems);
      skipped = catalogue.problems.length;
      if (catalogue.listMissing && listName !== DEFAULTS.listFile) {
        node.warn(RED._("mnist-image-source.warnings.no-list", { file: listName, folder }));
      }
      distinctFiles = new Set(catalogue.images.map((image) => image.file)).size;
      playlist = new Playlist(catalogue.images.length, order);
      state = "ready";
      if (wantRunning) startTimer();
      showState();
    }

    function explain(err: unknown): string {
      const message = String((err as Error)?.message ?? err);
      if (!folderSetting) return `${message} ${RED._("mnist-image-source.errors.bundled-missing")}`;
      if (!path.isAbsolute(folderSetting)) return `${message} ${RED._("mnist-image-source.errors.relative", { folder: folderSetting, userDir })}`;
      return message;
    }

    /** Nothing can be sent until a reset; a timer that was wanted starts again after a successful one. */
    function fail(message: string, statusKey: string): void {
      stopTimer();
      failure = new Error(message);
      failedStatus = statusKey;
      state = "failed";
      showState();
      node.error(message);
    }

    function report(problems: string[]): void {
      for (const problem of problems.slice(0, MAX_REPORTED)) node.error(problem);
      if (problems.length > MAX_REPORTED) {
        node.error(RED._("mnist-image-source.errors.more-problems", { count: problems.length - MAX_REPORTED }));
      }
    }

    function startTimer(): void {
      stopTimer();
      timer = setInterval(tick, interval);
      state = "running";
      showState();
    }

    function stopTimer(): void {
      if (timer) clearInterval(timer);
      timer = undefined;
    }

    function tick(): void {
      // A tick that finds the previous one (or a burst) still busy is skipped, not queued.
      if (tickPending) return;
      tickPending = true;
      const started = generation;
      serial(async () => {
        if (state === "running") await emitOne((msg) => node.send(msg), started);
      })
        .catch((err) => node.error(String((err as Error)?.message ?? err)))
        .finally(() => {
          tickPending = false;
        });
    }

    /** The end of the list (not looping) or the limit: stop, and say so. */
    function finish(): void {
      stopTimer();
      wantRunning = false;
      state = "done";
      showState();
      node.log(RED._("mnist-image-source.log.done", { count: sent }));
    }

    /** Sends the next readable image; false when nothing was sent (end, limit, stopped or failed). */
    async function emitOne(send: (msg: NodeMessage) => void, started: number): Promise<boolean> {
      for (;;) {
        if (closed || started !== generation || !catalogue || !playlist) return false;
        if (state === "done" || state === "failed" || state === "loading") return false;
        if (limit > 0 && sent >= limit) {
          finish();
          return false;
        }
        const index = playlist.next();
        if (index === undefined) {
          finish();
          return false;
        }
        const image = catalogue.images[index];
        if (unreadable.has(image.file)) continue;
        let bytes: Buffer;
        try {
          bytes = await reader.read(image);
        } catch (err) {
          unreadable.add(image.file);
          skipped++;
          node.error(String((err as Error).message));
          if (unreadable.size >= distinctFiles) {
            fail(RED._("mnist-image-source.errors.none-readable", { count: distinctFiles, folder }), "none-readable");
            return false;
          }
          countChanged();
          continue;
        }
        if (closed || started !== generation) return false;
        const msg = toMessage(image, bytes);
        delivery?.track(msg, (copy) => node.send(copy));
        send(msg);
        sent++;
        if ((limit > 0 && sent >= limit) || playlist.finished) finish();
        else countChanged();
        return true;
      }
    }

    async function burst(count: number, send: (msg: NodeMessage) => void, started: number): Promise<void> {
      bursting++;
      showState();
      try {
        for (let i = 1; i <= count; i++) {
          if (!(await emitOne(send, started))) return;
          if (i % BURST_CHUNK === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      } finally {
        bursting--;
        showState();
      }
    }

    function toMessage(image: LabelledImage, bytes: Buffer): NodeMessage {
      const id = `${runId}-${++sequence}`;
      const sentAt = Date.now();
      const msg: NodeMessage = { id, filename: image.name, sentAt };
      if (image.label !== undefined) msg.label = image.label;
      if (raw) {
        // A copy: the cached bytes must not change if a later node writes into the buffer.
        msg.payload = Buffer.from(bytes);
      } else {
        const label = image.label !== undefined ? { label: image.label } : {};
        const envelope: ImageEnvelope = { id, ...label, image: bytes.toString("base64"), sentAt };
        msg.payload = envelope;
      }
      return msg;
    }

    function showState(): void {
      if (statusTimer) clearTimeout(statusTimer);
      statusTimer = undefined;
      lastStatusAt = Date.now();
      if (closed) return;
      const counts = { count: sent.toLocaleString("en-US") };
      const extra = skipped > 0 ? ` · ${RED._("mnist-image-source.status.skipped", { count: skipped.toLocaleString("en-US") })}` : "";
      switch (state) {
        case "loading":
          showStatus(node, "loading", RED._("mnist-image-source.status.loading"));
          return;
        case "failed":
          showStatus(node, "failed", RED._(`mnist-image-source.status.${failedStatus}`));
          return;
        case "done":
          showStatus(node, "stopped", RED._("mnist-image-source.status.done", counts) + extra);
          return;
      }
      if (state === "running" || bursting > 0) showStatus(node, "working", RED._("mnist-image-source.status.running", counts) + extra);
      else if (state === "stopped") showStatus(node, "stopped", RED._("mnist-image-source.status.stopped", counts) + extra);
      else showStatus(node, "ready", RED._("mnist-image-source.status.ready", counts) + extra);
    }

    /** The count changes with every message; the editor need not see each one. */
    function countChanged(): void {
      if (statusTimer || closed) return;
      statusTimer = setTimeout(showState, Math.max(0, lastStatusAt + STATUS_INTERVAL_MS - Date.now()));
    }

    function commandOf(msg: NodeMessageInFlow): Command | undefined {
      const command = msg.command;
      if (command !== undefined && command !== null && command !== "") {
        const name = typeof command === "string" ? command.trim().toLowerCase() : "";
        if ((COMMANDS as readonly string[]).includes(name)) return name as Command;
        throw new Error(RED._("mnist-image-source.errors.unknown-command", { command: String(command).slice(0, 40) }));
      }
      // A string payload that names a command is one, so an inject node's string can drive the source.
      if (typeof msg.payload === "string") {
        const name = msg.payload.trim().toLowerCase();
        if ((COMMANDS as readonly string[]).includes(name)) return name as Command;
      }
      return undefined;
    }

    function countOf(msg: NodeMessageInFlow): number {
      const value = msg.count;
      if (value === undefined || value === null || value === "") return burstSize;
      const n = typeof value === "number" || typeof value === "string" ? Number(value) : NaN;
      if (!Number.isInteger(n) || n < 1 || n > MAX_BURST) {
        throw new Error(RED._("mnist-image-source.errors.bad-count", { count: String(value).slice(0, 20), max: MAX_BURST }));
      }
      return n;
    }

    /** Runs an emission after whatever is running now; refuses rather than piles up. */
    function enqueue(op: () => Promise<void>, done: (err?: Error) => void): void {
      if (waiting >= MAX_WAITING) {
        done(new Error(RED._("mnist-image-source.errors.busy", { count: MAX_WAITING })));
        return;
      }
      waiting++;
      serial(async () => {
        waiting--;
        await op();
      }).then(() => done(), (err) => done(err instanceof Error ? err : new Error(String(err))));
    }

    showState();
    serial(load).catch((err) => node.error(String((err as Error)?.message ?? err)));

    node.on("input", (msg: NodeMessageInFlow, send, done) => {
      if (delivery?.confirm(msg)) {
        done();
        return;
      }
      let action: Command;
      let count = burstSize;
      try {
        const command = commandOf(msg);
        // A plain message, or start, does what the mode is for.
        action = command === undefined || command === "start" ? (mode === "interval" ? "start" : mode === "input" ? "next" : "burst") : command;
        if (action === "burst") count = countOf(msg);
      } catch (err) {
        done(err as Error);
        return;
      }
      const started = generation;
      switch (action) {
        case "start":
          if (state === "failed") {
            done(failure);
            return;
          }
          if (state !== "done") wantRunning = true;
          if (state === "ready" || state === "stopped") startTimer();
          done();
          return;
        case "stop":
          // Also ends a burst in progress and cancels emissions still waiting.
          generation++;
          wantRunning = false;
          stopTimer();
          if (state === "ready" || state === "running") state = "stopped";
          showState();
          done();
          return;
        case "reset":
          generation++;
          enqueue(load, done);
          return;
        case "next":
          enqueue(async () => {
            if (state === "failed") throw failure;
            await emitOne(send, started);
            showState();
          }, done);
          return;
        case "burst":
          enqueue(async () => {
            if (state === "failed") throw failure;
            await burst(count, send, started);
          }, done);
          return;
      }
    });

    node.on("close", (_removed: boolean, done: () => void) => {
      try {
        closed = true;
        generation++;
        stopTimer();
        delivery?.close();
        if (statusTimer) clearTimeout(statusTimer);
        clearStatus(node);
      } finally {
        done();
      }
    });
  }

  RED.nodes.registerType("mnist-image-source", MnistImageSourceNode);
};

/** Ids are "<run>-<n>": the random run part keeps them unique across deploys and resets. */
function newRunId(): string {
  return randomBytes(4).toString("hex");
}
