// Draws a V8 CPU profile (`node --cpu-prof`) as a classic flame graph: a static
// SVG, root at the bottom, each frame as wide as the busy time spent in it and
// in what it called, coloured by who owns the code (profile.ts's owners), so
// the bench's profiles can be read at a glance and shown in docs/performance.md
// (issue #16). No scripts in the SVG: GitHub shows SVGs as images.
//
//   node dist/scripts/bench/flame-graph.js <in.cpuprofile> <out.svg> [--title T]
//       [--subtitle S] [--min-share 0.002] [--width 1200] [--window FROM_US,TO_US]
import fs from "node:fs";
import path from "node:path";
import { ownerOf, shortUrl } from "./profile";

/** What flameGraphSvg reads from a profile; any V8 CpuProfile object fits. */
export interface FlameProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
  startTime?: number;
}

export interface FlameGraphOptions {
  title: string;
  subtitle?: string;
  /** Frames narrower than this share of busy time are dropped (their time stays in the caller). */
  minShare?: number;
  width?: number;
  /** Only samples taken in [fromUs, toUs) count; µs on the profile's clock (startTime plus the timeDeltas so far),
   *  the monotonic clock process.hrtime() reads in every process on the machine: hrtime.bigint() / 1000n marks one. */
  window?: { fromUs: number; toUs: number };
}

interface Frame {
  name: string;
  url: string;
  line: number;
  owner: string;
  key: string;
  /** Microseconds sampled in this frame itself, and in it plus its callees. */
  self: number;
  total: number;
  children: Map<string, Frame>;
}

const FRAME_HEIGHT = 17;
const FONT_SIZE = 11;
// Monospace, so a label's width is known without measuring text: 0.6 em a character.
const CHAR_WIDTH = 0.6 * FONT_SIZE + 0.1;
const PAD = 10;
const FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace";

// Light fills, so black labels stay readable; one hue per owner profile.ts names.
const OWNER_COLOURS: Array<[(owner: string) => boolean, string]> = [
  [(o) => o === "node-red-contrib-mnist", "#f5a04a"],
  [(o) => o.startsWith("Node-RED"), "#ec7f7f"],
  [(o) => o === "mqtt.js", "#b99be6"],
  [(o) => o.startsWith("onnxruntime"), "#5cc8bb"],
  [(o) => o.startsWith("Node.js core"), "#a5d36e"],
  [(o) => o === "garbage collector", "#f2d34f"],
  [(o) => o.startsWith("V8 / native"), "#c4c4c4"],
  [(o) => o.startsWith("native code"), "#84b6ea"],
  [(o) => o.startsWith("function nodes"), "#f2a9cf"],
];
// Any other package or file: one of these, picked by a hash of its name so it keeps its colour.
const OTHER_COLOURS = ["#d8b98a", "#cfa9c8", "#a9d4c4", "#cdc69a"];

export function flameGraphSvg(profile: FlameProfile, options: FlameGraphOptions): string {
  const width = options.width ?? 1200;
  const minShare = options.minShare ?? 0.002;
  const { root, owners, samples } = buildTree(profile, options.window);
  const busy = root.total;

  // Lay out the frames that are wide enough; children left to right in name
  // order (not call order), so only widths carry meaning.
  const scale = busy > 0 ? (width - 2 * PAD) / busy : 0;
  const placed: Array<{ frame: Frame; x: number; depth: number }> = [];
  const place = (frame: Frame, x: number, depth: number): void => {
    placed.push({ frame, x, depth });
    let childX = x;
    for (const child of [...frame.children.values()].sort(byName)) {
      if (child.total >= minShare * busy && child.total > 0) place(child, childX, depth + 1);
      childX += child.total * scale;
    }
  };
  place(root, PAD, 0);
  const maxDepth = placed.reduce((deepest, p) => Math.max(deepest, p.depth), 0);

  const info = busy > 0
    ? `${ms(busy)} busy in ${samples} samples · (idle) excluded · frames under ${+(minShare * 100).toFixed(3)}% of busy time hidden · width = time, order alphabetical`
    : `no busy samples in this ${options.window ? "window" : "profile"}`;
  const { fromUs, toUs } = options.window ?? { fromUs: 0, toUs: 0 };
  const into = (us: number) => `${seconds(us - (profile.startTime ?? 0))} s`;
  const windowLine = options.window && `window of ${seconds(toUs - fromUs)} s: the samples from ${into(fromUs)} to ${into(toUs)} into the profile`;
  const subtitleLines = [options.subtitle, windowLine, info].filter((line): line is string => Boolean(line));
  const graphTop = 34 + subtitleLines.length * 15;
  const legendTop = graphTop + (maxDepth + 1) * FRAME_HEIGHT + 14;
  const legend = legendItems(owners, busy, width);
  const height = legendTop + legend.rows * 18 + 6;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}" font-size="${FONT_SIZE}">`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold" fill="#222222">${esc(fit(options.title, width - 2 * PAD, 9.1))}</text>`);
  subtitleLines.forEach((line, i) => {
    out.push(`<text x="${width / 2}" y="${40 + i * 15}" text-anchor="middle" fill="#555555">${esc(fit(line, width - 2 * PAD))}</text>`);
  });
  for (const { frame, x, depth } of placed) {
    const w = frame === root ? width - 2 * PAD : frame.total * scale;
    const y = graphTop + (maxDepth - depth) * FRAME_HEIGHT;
    // GitHub shows the SVG as an image, without tooltips: an anonymous function's label says where it is.
    const name = frame === root ? `all (${ms(busy)})` : frame.name === "(anonymous)" && frame.url ? `(anonymous) ${where(frame)}` : frame.name;
    const label = fit(name, w - 6);
    out.push(
      `<g><title>${esc(tooltip(frame, busy, frame === root))}</title>` +
        `<rect x="${num(x)}" y="${y}" width="${num(w)}" height="${FRAME_HEIGHT - 1}" rx="1.5" fill="${frame === root ? "#dddddd" : shade(colourOf(frame.owner), frame.key)}"/>` +
        (label ? `<text x="${num(x + 3)}" y="${y + 12}" fill="#111111">${esc(label)}</text>` : "") +
        `</g>`,
    );
  }
  for (const item of legend.items) {
    const y = legendTop + item.row * 18;
    out.push(`<g><rect x="${num(item.x)}" y="${y}" width="11" height="11" rx="1.5" fill="${colourOf(item.owner)}"/><text x="${num(item.x + 15)}" y="${y + 10}" fill="#333333">${esc(item.text)}</text></g>`);
  }
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

export function writeFlameGraph(profileFile: string, svgFile: string, options: FlameGraphOptions): string {
  const profile = JSON.parse(fs.readFileSync(profileFile, "utf8")) as FlameProfile;
  fs.mkdirSync(path.dirname(svgFile), { recursive: true });
  fs.writeFileSync(svgFile, flameGraphSvg(profile, options));
  return svgFile;
}

/** One SVG beside each .cpuprofile in `dir` (x.cpuprofile -> x<suffix>.svg); returns their paths. `title` may
 *  be a function of the profile's thread id (0: the main thread). */
export function writeFlameGraphs(dir: string, title: string | ((thread: number) => string), { window, suffix = "" }: { window?: FlameGraphOptions["window"]; suffix?: string } = {}): string[] {
  if (!fs.existsSync(dir)) return [];
  const files = fs.readdirSync(dir).filter((file) => file.endsWith(".cpuprofile")).sort();
  return files.map((file) => {
    // Node names its profiles CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile.
    const [, pid, thread] = /^CPU\.\d+\.\d+\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(file) ?? [];
    const subtitle = pid ? `${file}: process ${pid}, ${thread === "0" ? "main thread" : `worker thread ${thread}`}` : file;
    const svg = path.join(dir, file.replace(/\.cpuprofile$/, `${suffix}.svg`));
    return writeFlameGraph(path.join(dir, file), svg, { title: typeof title === "string" ? title : title(Number(thread ?? 0)), subtitle, window });
  });
}

/**
 * The call tree with identical stacks merged. V8 keeps one node per call site,
 * so one function called from two lines of its caller appears twice; merged by
 * function, file and position. A sample's time is its timeDelta, as in
 * profile.ts, so the legend's shares match the bench's printed summary.
 */
function buildTree(profile: FlameProfile, window: FlameGraphOptions["window"]): { root: Frame; owners: Map<string, number>; samples: number } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfTime = new Map<number, number>();
  let samples = 0;
  let at = profile.startTime ?? 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    at += profile.timeDeltas[i] ?? 0;
    if (window && (at < window.fromUs || at >= window.toUs)) return;
    // (idle) is the thread waiting for work: not busy time, so left out of the total.
    if (!node || node.callFrame.functionName === "(idle)") return;
    selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
    samples++;
  });

  const root = newFrame("all", "", -1, "", "");
  const owners = new Map<string, number>();
  const childIds = new Set(profile.nodes.flatMap((node) => node.children ?? []));
  const seen = new Set<number>();
  // Iterative, with a seen set: profiles can be deep, and a malformed one must not loop.
  const pending: Array<[number, Frame]> = [];
  for (const node of profile.nodes) {
    if (childIds.has(node.id)) continue;
    if (node.callFrame.functionName === "(root)") {
      seen.add(node.id);
      root.self += selfTime.get(node.id) ?? 0;
      for (const child of node.children ?? []) pending.push([child, root]);
    } else pending.push([node.id, root]);
  }
  while (pending.length > 0) {
    const [id, parent] = pending.pop() as [number, Frame];
    const node = byId.get(id);
    if (!node || seen.has(id) || node.callFrame.functionName === "(idle)") continue;
    seen.add(id);
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    const key = `${functionName}\u0000${url}\u0000${lineNumber}\u0000${columnNumber ?? -1}`;
    let frame = parent.children.get(key);
    if (!frame) parent.children.set(key, (frame = newFrame(functionName || "(anonymous)", url, lineNumber, ownerOf(url, functionName), key)));
    const self = selfTime.get(id) ?? 0;
    frame.self += self;
    if (self > 0) owners.set(frame.owner, (owners.get(frame.owner) ?? 0) + self);
    for (const child of node.children ?? []) pending.push([child, frame]);
  }
  const rootOwner = ownerOf("", "(root)");
  if (root.self > 0) owners.set(rootOwner, (owners.get(rootOwner) ?? 0) + root.self);
  total(root);
  return { root, owners, samples };
}

const newFrame = (name: string, url: string, line: number, owner: string, key: string): Frame => ({ name, url, line, owner, key, self: 0, total: 0, children: new Map() });

/** Fills in each frame's total: its own time plus its callees'. */
function total(frame: Frame): number {
  frame.total = frame.self;
  for (const child of frame.children.values()) frame.total += total(child);
  return frame.total;
}

// Plain code-unit comparison, not localeCompare: the same order on every machine.
const byName = (a: Frame, b: Frame): number => (a.name !== b.name ? (a.name < b.name ? -1 : 1) : a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

function tooltip(frame: Frame, busy: number, isRoot: boolean): string {
  const share = busy > 0 ? ((frame.total / busy) * 100).toFixed(1) : "0.0";
  return `${isRoot ? "all busy time" : frame.name}${frame.url ? ` ${where(frame)}` : ""} — ${share}% (${ms(frame.total)})`;
}

const where = (frame: Frame): string => `${shortUrl(frame.url)}:${frame.line + 1}`;

/** Owners by self time, largest first, flowed into rows across the width. */
function legendItems(owners: Map<string, number>, busy: number, width: number) {
  const items: Array<{ owner: string; text: string; x: number; row: number }> = [];
  let [x, row] = [PAD, 0];
  const ranked = [...owners].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  for (const [owner, micros] of ranked) {
    if (busy <= 0 || micros / busy < 0.0005) continue;
    const text = `${owner} ${((micros / busy) * 100).toFixed(1)}%`;
    const itemWidth = 15 + text.length * CHAR_WIDTH + 18;
    if (x > PAD && x + itemWidth > width - PAD) [x, row] = [PAD, row + 1];
    items.push({ owner, text, x, row });
    x += itemWidth;
  }
  return { items, rows: items.length > 0 ? row + 1 : 0 };
}

function colourOf(owner: string): string {
  const known = OWNER_COLOURS.find(([matches]) => matches(owner));
  return known ? known[1] : OTHER_COLOURS[hash(owner) % OTHER_COLOURS.length];
}

/** The owner's colour a little lighter or darker per function, so neighbouring frames stay apart. */
function shade(hex: string, key: string): string {
  const amount = ((hash(key) % 17) - 8) / 100;
  const channels = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return `#${channels.map((c) => Math.round(amount >= 0 ? c + (255 - c) * amount : c * (1 + amount)).toString(16).padStart(2, "0")).join("")}`;
}

/** FNV-1a: small, stable across runs and machines. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** `text` cut with "…" to fit `pixels`; "" when not even three characters fit. */
function fit(text: string, pixels: number, charWidth = CHAR_WIDTH): string {
  const chars = Array.from(text);
  const room = Math.floor(pixels / charWidth);
  if (room < 3) return "";
  return chars.length <= room ? text : `${chars.slice(0, room - 1).join("")}…`;
}

/** Escapes XML's specials and drops characters XML 1.0 cannot hold at all (control codes, lone surrogates). */
function esc(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "")
    .replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}

const ms = (micros: number): string => `${(micros / 1000).toFixed(micros >= 1e5 ? 0 : micros >= 1e4 ? 1 : 2)} ms`;
const seconds = (micros: number): string => (micros / 1e6).toFixed(Math.abs(micros) >= 1e7 ? 1 : 3);

const num = (n: number): string => String(+n.toFixed(2));

if (require.main === module) {
  const args = process.argv.slice(2);
  const flags: Record<string, string> = {};
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith("--")) flags[args[i].slice(2)] = args[++i] ?? "";
    else files.push(args[i]);
  }
  const window = flags.window?.split(",").map(Number);
  if (files.length !== 2 || Object.keys(flags).some((flag) => !["title", "subtitle", "min-share", "width", "window"].includes(flag)) || (window && (window.length !== 2 || window.some(Number.isNaN)))) {
    console.error("Usage: node dist/scripts/bench/flame-graph.js <in.cpuprofile> <out.svg> [--title T] [--subtitle S] [--min-share 0.002] [--width 1200] [--window FROM_US,TO_US]");
    process.exit(2);
  }
  const svg = writeFlameGraph(files[0], files[1], {
    title: flags.title ?? `Flame graph: ${path.basename(files[0])}`,
    subtitle: flags.subtitle,
    minShare: flags["min-share"] !== undefined ? Number(flags["min-share"]) : undefined,
    width: flags.width !== undefined ? Number(flags.width) : undefined,
    window: window && { fromUs: window[0], toUs: window[1] },
  });
  console.log(svg);
}
