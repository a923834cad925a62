// What an mnist-infer node shows under itself: loading, ready on which
// backend, the latest answer ("digit 7, 99.8% sure", "? maybe 7" when unsure),
// the latest bad input until the next answer, and the backlog and refusals
// while overloaded; at most four updates a second.
import type { Node, NodeAPI } from "node-red";
import type { InferResult } from "../shared/contract";
import { percent, showStatus, throttledStatus } from "../shared/status";
import type { BackendInfo } from "./inference/backends";
import type { InferenceService } from "./inference/inference-service";

type Answer = Pick<InferResult, "digit" | "confidence" | "unsure">;

export function statusLine(RED: NodeAPI, node: Node, service: InferenceService) {
  /** The latest answer, or the latest bad input until the next answer. */
  let latest: { answer: Answer } | { badInput: string } | undefined;
  let refusedShown = 0;

  const backendLabel = (backend?: BackendInfo) => RED._(`mnist-infer.backend.${backend?.name ?? "native"}`);
  /** "ready · native", or "ready · WebAssembly" and whether native was wanted but missing. */
  const readyText = () => {
    const backend = service.info?.backend;
    if (backend?.name === "wasm" && backend.setting === "auto") return RED._("mnist-infer.status.ready-fallback");
    return RED._("mnist-infer.status.ready-on", { backend: backendLabel(backend) });
  };

  const throttled = throttledStatus(() => {
    if (service.state !== "ready") return;
    const backlog = service.backlog;
    const refused = service.stats.rejected + service.stats.dropped;
    const queued = backlog > 0 ? RED._("mnist-infer.status.queued", { count: backlog }) : "";
    if (refused > refusedShown) {
      // Overloaded: what the queue holds and how many requests it has refused so far.
      refusedShown = refused;
      showStatus(node, "working", `${queued || readyText()} · ${RED._("mnist-infer.status.refused", { count: refused })}`);
      throttled.request(); // back to the prediction once refusals stop
      return;
    }
    if (!latest) return;
    if ("badInput" in latest) return void showStatus(node, "failed", RED._("mnist-infer.status.bad-input", { code: latest.badInput }));
    const { digit, confidence, unsure } = latest.answer;
    const said = RED._(unsure ? "mnist-infer.status.unsure" : "mnist-infer.status.result", { digit, confidence: percent(confidence) });
    showStatus(node, backlog > 0 ? "working" : "ready", `${said}${queued ? ` · ${queued}` : ""}`);
  });

  return {
    readyText,
    backendLabel,
    /** A request was answered: shown (soon) as the latest answer. */
    answered(answer: Answer): void {
      latest = { answer: { digit: answer.digit, confidence: answer.confidence, unsure: answer.unsure } };
    },
    /** A request was refused as bad input: shown on the node until the next answer. */
    badInput(code: string): void {
      latest = { badInput: code };
      throttled.request();
    },
    request: () => throttled.request(),
    cancel: () => throttled.cancel(),
  };
}
