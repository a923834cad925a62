// What an mnist-infer node holds when it stops, left for the node that takes
// its place. On a redeploy or a stop Node-RED closes every node at once: the
// mqtt out and its broker connection are gone before the last answers are
// ready, and `mqtt in` has already acknowledged their requests, so the broker
// will not send them again. The requests not yet classified, the answers not
// yet sent and the replies not yet confirmed as published are kept here, in
// memory (a redeploy: the same process) and in a file in the user directory
// (a restart), and the node with the same id sends them when it is ready.
import * as fs from "fs";
import * as path from "path";
import type { NodeMessage } from "node-red";

export type Parcel =
  /** Accepted, not classified: the next node classifies it. */
  | { kind: "request"; msg: NodeMessage }
  /** Answered, not known to be published: the next node sends it. */
  | { kind: "reply"; msg: NodeMessage }
  /** An error reply not known to be published: the next node raises it again for its Catch node. */
  | { kind: "error"; msg: NodeMessage; error: { code: string; message: string } };

/** Beyond this many, the oldest are dropped: a stop should not leave more than a full queue. */
const MAX_PARCELS = 20_000;
const FOLDER = ".mnist-infer-outbox";

const inMemory = new Map<string, Parcel[]>();

/** Leaves `parcels` for the next node with this id; false if they could not be written to the user directory. */
export function leave(nodeId: string, parcels: Parcel[], userDir: string | undefined): boolean {
  if (parcels.length === 0) return true;
  const kept = parcels.slice(-MAX_PARCELS);
  inMemory.set(nodeId, kept);
  if (!userDir) return false;
  try {
    fs.mkdirSync(path.join(userDir, FOLDER), { recursive: true });
    fs.writeFileSync(fileOf(userDir, nodeId), JSON.stringify(kept));
    return true;
  } catch {
    return false;
  }
}

/** Takes what a node with this id left when it stopped (in this process, or before a restart). */
export function collect(nodeId: string, userDir: string | undefined): Parcel[] {
  const file = userDir ? fileOf(userDir, nodeId) : undefined;
  let parcels = inMemory.get(nodeId);
  inMemory.delete(nodeId);
  if (file && fs.existsSync(file)) {
    try {
      parcels ??= JSON.parse(fs.readFileSync(file, "utf8"), revive) as Parcel[];
    } catch {
      // an unreadable outbox is dropped, not retried at every start
    }
    fs.rmSync(file, { force: true });
  }
  return Array.isArray(parcels) ? parcels : [];
}

function fileOf(userDir: string, nodeId: string): string {
  return path.join(userDir, FOLDER, `${nodeId.replace(/[^\w.-]/g, "_")}.json`);
}

/** Buffers (a preview, MQTT 5 correlation data) come back from JSON as Buffers. */
function revive(_key: string, value: unknown): unknown {
  const v = value as { type?: unknown; data?: unknown } | null;
  return v && v.type === "Buffer" && Array.isArray(v.data) ? Buffer.from(v.data as number[]) : value;
}
