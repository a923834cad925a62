// The report's summary for issue #16: each backend's limit (ONNX Runtime alone
// on the shipped model, measured in this run) and every figure as a share of
// it, with the targets: end to end one image per envelope ≥ 25%, batches of
// 32 ≥ 60%, the node alone ≥ 60%, RSS flat (±10%); and the first request after
// a deploy against the hundredth.
import { pct, rate, ms, signed, type Row } from "./format";
import { limitRate, type Limit } from "./limits";
import type { BenchResult, EndToEnd } from "./result";

export const TARGETS = { single: 0.25, batch: 0.6, nodeAlone: 0.6, rss: 0.1 };

export function shareRows(result: BenchResult): Array<Row | string> {
  const { limits } = result;
  if (!limits) return [];
  const rows: Array<Row | string> = [];
  rows.push("Limits: ONNX Runtime alone on models/mnist-cnn.onnx, in this process, at the start, between stages and at the end of this run");
  const describe = (name: string, kind: "native" | "nativeOneThread" | "wasm"): void => {
    const start = limits[kind];
    if (!start) return void rows.push([name, "could not load here"]);
    const batches = Object.keys(start.byBatch).map(Number);
    const at = (l: Limit) => batches.map((b) => rate(l.byBatch[b])).join(" / ");
    const later = [...(limits.between ?? []), limits.again].map((m) => m?.[kind]).filter((l): l is Limit => Boolean(l));
    const count = start.threads === "default" ? "default threads" : `${start.threads} thread${start.threads === 1 ? "" : "s"}`;
    const pinned = result.options.cores;
    const threads = name === "onnxruntime-node" && pinned ? `${count} (its default on ${pinned} core${pinned === 1 ? "" : "s"})` : count;
    rows.push([`${name}, ${threads}, batch ${batches.join(" / ")}`, [start, ...later].map(at).join(" → ")]);
  };
  describe("onnxruntime-node", "native");
  describe("  for comparison, not a limit: onnxruntime-node", "nativeOneThread");
  describe("onnxruntime-web", "wasm");

  const native = limitRate(limits, "native");
  const wasm = limitRate(limits, "wasm");
  const oneThread = limitRate(limits, "nativeOneThread");
  if (native && oneThread && native < 0.9 * oneThread) {
    rows.push(
      `note: onnxruntime-node ran slower on its default threads than on one (${rate(native)} against ${rate(oneThread)}):\n` +
        `  other work on the machine holds up its thread pool, whose every step waits for its slowest thread.\n` +
        `  The limit is too low and the shares too high: run again when the machine is quieter.`,
    );
  }
  if (native || wasm) rows.push("Shares of the limit (the higher of its measurements, so a busy moment flatters no share)");
  if (native) {
    rows.push(["native limit", rate(native)]);
    if (result.nodeAlone) rows.push(share("mnist-infer alone (stage 2)", result.nodeAlone.throughput, native, TARGETS.nodeAlone));
    if (result.endToEnd) rows.push(...endToEndShares(result.endToEnd, native));
  }
  if (wasm && result.wasmEndToEnd) {
    rows.push(["WebAssembly limit", rate(wasm)]);
    rows.push(...endToEndShares(result.wasmEndToEnd, wasm));
  }
  return rows;
}

function endToEndShares(e: EndToEnd, limit: number): Row[] {
  return [
    share("end to end, one image per envelope", e.full.throughput, limit, TARGETS.single),
    share(`end to end, batches of ${e.batch.run.batch}`, e.batch.run.throughput, limit, TARGETS.batch),
    ["  Node-RED RSS, first → last 20% of the sustained run", signed(e.rss.change), `±${pct(TARGETS.rss)}`, Math.abs(e.rss.change) <= TARGETS.rss],
    ["  first request after the deploy / the hundredth (median of 100)", `${ms(e.firstAfterDeploy.first)} / ${ms(e.firstAfterDeploy.hundredth)} (${ms(e.firstAfterDeploy.median)})`],
  ];
}

function share(label: string, value: number, limit: number, target: number): Row {
  const ratio = value / limit;
  return [`  ${label}`, `${rate(value)} = ${pct(ratio)}`, `≥ ${pct(target)}`, ratio >= target];
}
