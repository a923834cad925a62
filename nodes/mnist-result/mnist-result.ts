// mnist-result: the end of the chain. Reads the results (and error replies)
// that come back over MQTT, keeps live statistics on them, and passes on a
// readable line per result and, on request or every N results, a summary.
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from "node-red";
import { readIncoming, UnreadableMessage, type Answer, type ReadResult } from "./incoming";
import type { ErrorReply } from "../shared/contract";
import { ResultStatistics } from "./statistics";
import { whole } from "../shared/config-values";
import { clearStatus, nameUnnamed, percent, showStatus, throttledStatus } from "../shared/status";

interface MnistResultDef extends NodeDef {
  summaryEvery: string | number;
  perResult: boolean;
}

const DEFAULT_SUMMARY_EVERY = 100;

type LastEvent = { kind: "result" } | { kind: "error-reply"; code: string } | { kind: "unreadable" } | { kind: "reset" };

export = function (RED: NodeAPI) {
  function MnistResultNode(this: Node, config: MnistResultDef) {
    RED.nodes.createNode(this, config);
    nameUnnamed(this, RED._("mnist-result.paletteLabel"));
    const node = this;
    const summaryEvery = whole(config.summaryEvery, 0, DEFAULT_SUMMARY_EVERY);
    // Older or hand-written flows may lack the field: per-result messages are the default.
    const perResult = config.perResult !== false;
    const stats = new ResultStatistics(Date.now());

    let lastEvent: LastEvent = { kind: "reset" };

    showStatus(node, "ready", RED._("mnist-result.status.waiting"));

    /** Shows the latest prediction and the running accuracy, with what it is a share of. */
    const resultStatus = throttledStatus(() => {
      const last = stats.latest;
      if (lastEvent.kind === "unreadable") {
        showStatus(node, "failed", RED._("mnist-result.status.unreadable"));
      } else if (lastEvent.kind === "error-reply") {
        showStatus(node, "failed", `${RED._("mnist-result.status.error-reply")} ${lastEvent.code}`);
      } else if (lastEvent.kind === "reset" || !last) {
        showStatus(node, "ready", RED._("mnist-result.status.waiting"));
      } else {
        const summary = stats.summary(Date.now());
        const digit = last.unsure ? `?${last.digit}` : last.digit;
        const text =
          stats.accuracy === null
            ? RED._("mnist-result.status.results", { digit, count: summary.count.toLocaleString("en-US") })
            : RED._("mnist-result.status.right-of", { digit, accuracy: percent(stats.accuracy), count: summary.labelled.toLocaleString("en-US") });
        showStatus(node, "ready", text);
      }
    });

    /** Counts one image's answer from a batch reply; false if it was counted before (a repeated reply). */
    function countAnswer(answer: Answer, now: number): boolean {
      if (answer.kind === "error-reply") {
        if (!stats.recordError(answer.reply.error.code, answer.reply.id)) return false;
        lastEvent = { kind: "error-reply", code: answer.reply.error.code };
      } else {
        const { duplicate, latencyMs } = stats.record(answer.result, now);
        if (duplicate) return false;
        if (latencyMs !== undefined) answer.result.latencyMs = latencyMs;
        lastEvent = { kind: "result" };
      }
      resultStatus.request();
      return true;
    }

    node.on("input", (msg: NodeMessageInFlow, send, done) => {
      const now = Date.now();
      try {
        const incoming = readIncoming(msg as NodeMessageInFlow & { command?: unknown });
        // A result is not a retained message of ours: never republish it retained by accident.
        delete (msg as { retain?: unknown }).retain;
        if (incoming.kind === "command") {
          if (incoming.command === "reset") {
            stats.reset(now);
            lastEvent = { kind: "reset" };
            resultStatus.request();
          }
          // A reset answers with the cleared statistics, so a dashboard shows them at once.
          msg.payload = stats.summary(now);
          send([null, msg]);
        } else if (incoming.kind === "error-reply") {
          if (!stats.recordError(incoming.reply.error.code, incoming.reply.id)) {
            done();
            return;
          }
          lastEvent = { kind: "error-reply", code: incoming.reply.error.code };
          resultStatus.request();
          if (perResult) {
            msg.payload = describeError(incoming.reply);
            (msg as NodeMessage & { result?: unknown }).result = incoming.reply;
            send([msg, null]);
          }
        } else if (incoming.kind === "batch") {
          // Each image of a batch reply counts as a result (or error) of its own; one message passes it on.
          const before = stats.results;
          const fresh = incoming.answers.filter((answer) => countAnswer(answer, now));
          if (fresh.length === 0) {
            done(); // the whole reply again (a QoS 1 redelivery): already counted
            return;
          }
          const summary = summaryEvery > 0 && Math.floor(stats.results / summaryEvery) > Math.floor(before / summaryEvery) ? { payload: stats.summary(now) } : null;
          if (perResult) {
            msg.payload = describeBatch(incoming.id, incoming.answers);
            (msg as NodeMessage & { result?: unknown }).result = incoming.answers.map((answer) => (answer.kind === "result" ? answer.result : answer.reply));
          }
          if (perResult || summary) send([perResult ? msg : null, summary]);
        } else {
          const result = incoming.result;
          const { duplicate, latencyMs } = stats.record(result, now, result.legacy);
          if (duplicate) {
            // Already counted and passed on once: QoS 1 may deliver an answer twice.
            done();
            return;
          }
          if (latencyMs !== undefined) result.latencyMs = latencyMs;
          lastEvent = { kind: "result" };
          resultStatus.request();
          let summary: NodeMessage | null = null;
          if (summaryEvery > 0 && stats.results % summaryEvery === 0) summary = { payload: stats.summary(now) };
          if (perResult) {
            msg.payload = describeResult(result);
            (msg as NodeMessage & { result?: unknown }).result = result;
          }
          if (perResult || summary) send([perResult ? msg : null, summary]);
        }
        done();
      } catch (err) {
        if (err instanceof UnreadableMessage && err.code === "unreadable") {
          stats.recordUnparseable();
          lastEvent = { kind: "unreadable" };
          resultStatus.request();
        }
        done(err as Error);
      }
    });

    node.on("close", (_removed: boolean, done: () => void) => {
      try {
        resultStatus.cancel();
        clearStatus(node);
      } finally {
        done();
      }
    });
  }

  RED.nodes.registerType("mnist-result", MnistResultNode);
};

/** `7 (99.1%) ✓ label 7`, `3 (55.0%) ✗ label 5`, `7 (99.1%)`, or `7` for the original chain's plain text. */
function describeResult(result: ReadResult): string {
  let text = result.unsure ? `? ${result.digit}, not sure` : String(result.digit);
  if (result.confidence !== undefined) text += ` (${percent(result.confidence)})`;
  if (result.label !== undefined) text += ` ${result.correct ? "✓" : "✗"} label ${result.label}`;
  return text;
}

/** `batch b1: 31 digits (2 unsure), 1 error` */
function describeBatch(id: string | number | undefined, answers: Answer[]): string {
  const results = answers.filter((a): a is Extract<Answer, { kind: "result" }> => a.kind === "result");
  const unsure = results.filter((a) => a.result.unsure).length;
  const errors = answers.length - results.length;
  return `batch${id === undefined ? "" : ` ${id}`}: ${results.length} digits${unsure ? ` (${unsure} unsure)` : ""}${errors ? `, ${errors} error${errors === 1 ? "" : "s"}` : ""}`;
}

/** `error corrupt (id a1): the image is truncated…` */
function describeError(reply: ErrorReply): string {
  const id = reply.id === undefined ? "" : ` (id ${reply.id})`;
  return `error ${reply.error.code}${id}${reply.error.message ? `: ${reply.error.message}` : ""}`;
}
