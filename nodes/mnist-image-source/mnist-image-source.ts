// mnist-image-source: sends labelled digit images, from the bundled held-out
// MNIST samples or a folder, on a timer, on each input message or in bursts.
// It replaces the original chain's Python input service. This file wires the
// node's configuration and events to its playback (playback.ts).
import { randomBytes } from "crypto";
import * as path from "path";
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from "node-red";
import { BUNDLED_SAMPLES } from "../shared/package-paths";
import { whole } from "../shared/config-values";
import { nodeDeliveryTracker } from "../shared/delivery";
import { clearStatus, nameUnnamed, showStatus, throttledStatus } from "../shared/status";
import { AnswerWait, answerIn } from "./answers";
import { Playback } from "./playback";

type Mode = "interval" | "input" | "burst";
type Command = "start" | "stop" | "reset" | "next" | "burst";

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
  /** Seconds; blank or 0: requests are not sent again. */
  resendAfter: string | number;
  resendTimes: string | number;
  /** Megabytes; image files over it are skipped. */
  maxFileSize: string | number;
}

const DEFAULTS = { interval: 1000, burstCount: 100, listFile: "labels.txt", resendTimes: 3, maxFileSize: 5 };
const COMMANDS: readonly Command[] = ["start", "stop", "reset", "next", "burst"];
const MAX_BURST = 10_000_000;
/** setInterval's largest delay; anything longer would fire every millisecond. */
const MAX_INTERVAL = 2_147_483_647;
const MAX_RESEND_AFTER_S = 86_400;
const MAX_RESEND_TIMES = 100;
const MAX_FILE_MB = 1024;

/** A number above 0 and at most `max` (fractions allowed), or undefined when blank, 0 or invalid. */
function positive(value: string | number | undefined | null, max: number): number | undefined {
  if (value === undefined || value === null || String(value).trim() === "") return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n > 0 && n <= max ? n : undefined;
}

export = function (RED: NodeAPI) {
  function MnistImageSourceNode(this: Node, config: MnistImageSourceDef) {
    RED.nodes.createNode(this, config);
    nameUnnamed(this, RED._("mnist-image-source.paletteLabel"));
    const node = this;
    const text = (key: string, substitutions?: Record<string, string | number>) => RED._(`mnist-image-source.${key}`, substitutions);
    const mode: Mode = config.mode === "input" || config.mode === "burst" ? config.mode : "interval";
    const burstSize = whole(config.burstCount, 1, DEFAULTS.burstCount);
    const folderSetting = String(config.folder ?? "").trim();
    const userDir = RED.settings.userDir ?? process.cwd();
    // Requests kept until the mqtt out that publishes them confirms them through a
    // Complete node wired back here; see shared/delivery.ts.
    const delivery = config.confirmDelivery ? nodeDeliveryTracker(RED, node, "mnist-image-source") : undefined;
    /** Sends a message again outside any input handler, kept for confirmed delivery like the first. */
    const sendAgain = (msg: NodeMessage) => {
      delivery?.track(msg, (copy) => node.send(copy));
      node.send(msg);
    };
    // End-to-end at-least-once: requests wait for their answers wired back into the node (answers.ts).
    const resendAfterS = positive(config.resendAfter, MAX_RESEND_AFTER_S);
    const resendTimes = whole(config.resendTimes, 0, DEFAULTS.resendTimes, MAX_RESEND_TIMES);
    // Raw bytes carry no id over MQTT, so their answers cannot be told apart.
    if (resendAfterS !== undefined && config.output === "raw") node.warn(text("answers.raw"));
    const answers =
      resendAfterS === undefined || config.output === "raw"
        ? undefined
        : new AnswerWait({
            timeoutMs: resendAfterS * 1000,
            maxResends: resendTimes,
            copy: (msg) => RED.util.cloneMessage(msg),
            resend: sendAgain,
            onReport: (since, totals) => node.warn(text("answers.report", { resentNow: since.resent, givenUpNow: since.givenUp, ...totals, after: resendAfterS, times: resendTimes })),
            onNeverAnswered: () => node.warn(text("answers.never-answered")),
          });

    const playback = new Playback(
      {
        folder: {
          path: folderSetting ? path.resolve(userDir, folderSetting) : BUNDLED_SAMPLES,
          // Messages name the folder as it was given, never by a path the user did not type.
          name: folderSetting || "models/samples",
          maxFileBytes: Math.floor((positive(config.maxFileSize, MAX_FILE_MB) ?? DEFAULTS.maxFileSize) * 1024 * 1024),
        },
        listName: config.listFile === undefined || config.listFile === null ? DEFAULTS.listFile : String(config.listFile).trim(),
        defaultListName: DEFAULTS.listFile,
        interval: whole(config.interval, 1, DEFAULTS.interval, MAX_INTERVAL),
        limit: whole(config.limit, 0, 0),
        raw: config.output === "raw",
        order: {
          shuffle: Boolean(config.shuffle),
          // Without a seed every deploy gets its own order; reset still replays it.
          seed: String(config.seed ?? "").trim() || randomBytes(4).toString("hex"),
          loop: config.loop !== false,
        },
        autoStart: mode === "interval" && config.autoStart !== false,
      },
      {
        send: (msg) => node.send(msg),
        track:
          delivery || answers
            ? (msg) => {
                delivery?.track(msg, (copy) => node.send(copy));
                answers?.wait(msg);
              }
            : undefined,
        error: (message) => node.error(message),
        warn: (message) => node.warn(message),
        log: (message) => node.log(message),
        text,
        explain,
        changed: (now) => (now ? status.now() : status.request()),
      },
    );

    // The count changes with every message; the editor need not see each one.
    const status = throttledStatus(() => {
      const { state, sent, skipped, failedKey, busy, closed } = playback.view;
      if (closed) return;
      const counts = { count: sent.toLocaleString("en-US") };
      const extra = skipped > 0 ? ` · ${text("status.skipped", { count: skipped.toLocaleString("en-US") })}` : "";
      switch (state) {
        case "loading":
          return showStatus(node, "loading", text("status.loading"));
        case "failed":
          return showStatus(node, "failed", text(`status.${failedKey}`));
        case "done":
          return showStatus(node, "stopped", text("status.done", counts) + extra);
      }
      if (busy) showStatus(node, "working", text("status.running", counts) + extra);
      else if (state === "stopped") showStatus(node, "stopped", text("status.stopped", counts) + extra);
      else showStatus(node, "ready", text("status.ready", counts) + extra);
    });

    function explain(err: unknown): string {
      const message = String((err as Error)?.message ?? err);
      if (!folderSetting) return `${message} ${text("errors.bundled-missing")}`;
      if (!path.isAbsolute(folderSetting)) return `${message} ${text("errors.relative", { folder: folderSetting })}`;
      return message;
    }

    function commandOf(msg: NodeMessageInFlow): Command | undefined {
      const command = msg.command;
      if (command !== undefined && command !== null && command !== "") {
        const name = typeof command === "string" ? command.trim().toLowerCase() : "";
        if ((COMMANDS as readonly string[]).includes(name)) return name as Command;
        throw new Error(text("errors.unknown-command", { command: String(command).slice(0, 40) }));
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
        throw new Error(text("errors.bad-count", { count: String(value).slice(0, 20), max: MAX_BURST }));
      }
      return n;
    }

    status.now();
    playback.begin();

    node.on("input", (msg: NodeMessageInFlow, send, done) => {
      if (delivery?.confirm(msg)) {
        done();
        return;
      }
      // With resending on, an answer (a result or error reply with an id) is taken as one, never as a trigger.
      const answer = answers && answerIn(msg);
      if (answer) {
        answers.answered(answer);
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
      switch (action) {
        case "start":
          return playback.start(done);
        case "stop":
          return playback.stop(done);
        case "reset":
          return playback.reset(done);
        case "next":
          return playback.next(send, done);
        case "burst":
          return playback.burst(count, send, done);
      }
    });

    node.on("close", (_removed: boolean, done: () => void) => {
      try {
        playback.close();
        delivery?.close();
        const unanswered = answers?.close() ?? 0;
        if (unanswered > 0) node.log(text("answers.closed", { count: unanswered }));
        status.cancel();
        clearStatus(node);
      } finally {
        done();
      }
    });
  }

  RED.nodes.registerType("mnist-image-source", MnistImageSourceNode);
};
