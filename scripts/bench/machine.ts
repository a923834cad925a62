// What the numbers were measured on, and how busy the machine already was:
// on a shared 2-core machine another process's work shows up as a slower run.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { findMosquitto, REPO_ROOT } from "../broker";

export interface Machine {
  cpus: number;
  cpuModel: string;
  node: string;
  nodeRed: string;
  onnxruntime: string;
  mosquitto: string;
  kernel: string;
  memoryGiB: number;
  /** Share of all CPUs busy with other work during one second before the run (0–1). */
  busyBefore: number;
  loadAverage: number[];
}

export async function describeMachine(): Promise<Machine> {
  const cpuinfo = readOr("/proc/cpuinfo", "");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown";
  const mosquitto = findMosquitto();
  const version = mosquitto ? /mosquitto version (\S+)/.exec(spawnSync(mosquitto, ["-h"], { encoding: "utf8" }).stdout ?? "")?.[1] : undefined;
  return {
    cpus: os.availableParallelism?.() ?? os.cpus().length,
    cpuModel: model.trim(),
    node: process.version,
    nodeRed: packageVersion("node-red"),
    onnxruntime: packageVersion("onnxruntime-node"),
    mosquitto: mosquitto ? (version ?? "installed") : "not installed",
    kernel: `${os.type()} ${os.release()}`,
    memoryGiB: os.totalmem() / 2 ** 30,
    busyBefore: await busyShare(1000),
    loadAverage: os.loadavg(),
  };
}

/** Fraction of all CPU time spent busy (not idle or iowait) over `ms`, from /proc/stat. */
export async function busyShare(ms: number): Promise<number> {
  const before = cpuTimes();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return busyBetween(before, cpuTimes());
}

export interface CpuTimes {
  idle: number;
  total: number;
}

/** All CPUs' idle and total time so far (clock ticks), from the first line of /proc/stat. */
export function cpuTimes(): CpuTimes {
  const fields = readOr("/proc/stat", "cpu 0 0 0 0").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: (fields[3] ?? 0) + (fields[4] ?? 0), total: fields.reduce((a, b) => a + b, 0) };
}

/** Share of all CPU time that was busy between two readings (0–1). */
export function busyBetween(before: CpuTimes, after: CpuTimes): number {
  const total = after.total - before.total;
  return total > 0 ? 1 - (after.idle - before.idle) / total : 0;
}

function packageVersion(name: string): string {
  try {
    return JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "node_modules", name, "package.json"), "utf8")).version;
  } catch {
    return "unknown";
  }
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return fallback;
  }
}
