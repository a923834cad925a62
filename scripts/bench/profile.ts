// Reads the V8 CPU profiles `node --cpu-prof` writes (one per thread) and says
// where the busy time went, by who owns the code: Node-RED, mqtt.js, this
// package's files, onnxruntime, Node itself, or the garbage collector.
import fs from "node:fs";
import path from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ThreadProfile {
  file: string;
  /** Seconds with code running (idle excluded). */
  busySeconds: number;
  /** Self time by owner, share of busy time, largest first. */
  owners: Array<{ owner: string; share: number }>;
  /** Self time by function, share of busy time, largest first. */
  functions: Array<{ name: string; share: number }>;
}

export function summariseProfiles(dir: string, top = 12): ThreadProfile[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((file) => file.endsWith(".cpuprofile"))
    .sort()
    .map((file) => summarise(path.join(dir, file), top));
}

function summarise(file: string, top: number): ThreadProfile {
  const profile = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const owners = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)?.callFrame;
    const micros = profile.timeDeltas[i] ?? 0;
    if (!frame || frame.functionName === "(idle)") return;
    busy += micros;
    const owner = ownerOf(frame.url, frame.functionName);
    owners.set(owner, (owners.get(owner) ?? 0) + micros);
    const name = `${frame.functionName || "(anonymous)"} ${frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : ""}`.trim();
    functions.set(name, (functions.get(name) ?? 0) + micros);
  });
  const ranked = (map: Map<string, number>) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([key, micros]) => ({ key, share: busy > 0 ? micros / busy : 0 }));
  return {
    file,
    busySeconds: busy / 1e6,
    owners: ranked(owners).map(({ key, share }) => ({ owner: key, share })),
    functions: ranked(functions).map(({ key, share }) => ({ name: key, share })),
  };
}

export function ownerOf(url: string, functionName: string): string {
  if (!url) {
    if (functionName === "(garbage collector)") return "garbage collector";
    if (functionName === "(program)") return "V8 / native (program)";
    return "native code (syscalls such as socket writes, C++ addons)";
  }
  if (url.includes("/nodes/shared/") || url.includes("/nodes/mnist-")) return "node-red-contrib-mnist";
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (match) {
    const pkg = match[1];
    if (pkg.startsWith("@node-red/") || pkg === "node-red") return "Node-RED runtime and core nodes";
    if (pkg === "mqtt" || pkg === "mqtt-packet" || pkg === "bl" || pkg === "readable-stream") return "mqtt.js";
    return pkg;
  }
  if (url.startsWith("node:")) return "Node.js core (streams, sockets, timers, worker messages)";
  if (/Function node|^evalmachine|^vm:/.test(url) || !url.includes("/")) return "function nodes (user code)";
  return shortUrl(url);
}

export function shortUrl(url: string): string {
  return url.replace(/^file:\/\//, "").split("/").slice(-2).join("/");
}
