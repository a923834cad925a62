// How a node shows itself to the user: one place for status colours and
// shapes, so every node of the package looks the same under the node (yellow
// ring loading, green dot ready, blue dot working, red ring failed, grey ring
// stopped), and the name its errors and warnings carry.
import type { Node, NodeStatus } from "node-red";

export type Phase = "loading" | "ready" | "working" | "failed" | "stopped";

const LOOK: Record<Phase, Pick<NodeStatus, "fill" | "shape">> = {
  loading: { fill: "yellow", shape: "ring" },
  ready: { fill: "green", shape: "dot" },
  working: { fill: "blue", shape: "dot" },
  failed: { fill: "red", shape: "ring" },
  stopped: { fill: "grey", shape: "ring" },
};

/** Status text is short (about 20 characters); the details go to the log or the message. */
export function showStatus(node: Node, phase: Phase, text: string): void {
  node.status({ ...LOOK[phase], text: text.length > 32 ? `${text.slice(0, 31)}…` : text });
}

export function clearStatus(node: Node): void {
  node.status({});
}

/** Percent with one decimal, as the status line and summaries show it. */
export function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`;
}

/** Status changes at most this often: at thousands of messages a second the editor need not see each. */
const STATUS_INTERVAL_MS = 250;

/**
 * Calls `show` at most every 250 ms, always once more after the last request,
 * so the status ends on the latest state without an update per message.
 * `now()` shows at once (a change of state, not of a count) and restarts the 250 ms.
 */
export function throttledStatus(show: () => void): { request(): void; now(): void; cancel(): void } {
  let lastShownAt = 0;
  let timer: NodeJS.Timeout | undefined;
  const cancel = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  return {
    request() {
      if (timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        lastShownAt = Date.now();
        show();
      }, Math.max(0, lastShownAt + STATUS_INTERVAL_MS - Date.now()));
    },
    now() {
      cancel();
      lastShownAt = Date.now();
      show();
    },
    cancel,
  };
}

/**
 * The debug sidebar and the log name a node by its name, or else by its raw id:
 * an unnamed node is named by its palette label instead (Node-RED passes
 * `node.name` with every error and warning).
 */
export function nameUnnamed(node: Node, paletteLabel: string): void {
  if (!node.name) node.name = paletteLabel;
}
