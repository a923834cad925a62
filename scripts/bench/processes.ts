// The processes the end-to-end stages run: Node-RED instances started the way
// a user starts one (`npm start`'s launcher, dist/scripts/start.js), the load
// generator, and what the benchmark watches from outside: memory and CPU time
// from /proc, and the editor's response time.
import { fork, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { freePort, REPO_ROOT } from "../broker";
import type { GeneratorCommand, RunCommand, RunReport, SetupCommand } from "./load-types";

const START = path.join(REPO_ROOT, "dist", "scripts", "start.js");

export interface NodeRedInstance {
  pid: number;
  editor: string;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts Node-RED on a shipped flow against `mqttUrl`, with a temporary user
 * folder and a free editor port on 127.0.0.1, and resolves once the model is
 * loaded and the broker connected. `nodeArgs` go to node itself (--cpu-prof).
 * The floor stage (floor.ts) adds `env`, `prepare` (given the user folder before
 * Node-RED starts) and `ready` (the log lines to wait for instead of the model's).
 */
export async function startNodeRed(
  flow: string,
  mqttUrl: string,
  nodeArgs: string[] = [],
  { env = {}, prepare, ready = [/Started flows/, /model \S+ loaded/, /Connected to broker/] }: { env?: Record<string, string>; prepare?: (userDir: string) => void; ready?: RegExp[] } = {},
): Promise<NodeRedInstance> {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-bench-nr-"));
  prepare?.(userDir);
  const port = await freePort();
  // Each instance its own MQTT client id: two sessions with one id would take turns being disconnected.
  const clientId = `mnist-bench-${process.pid}-${port}`;
  const child = spawn(process.execPath, [...nodeArgs, START, flow, "--external-broker"], {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", MQTT_URL: mqttUrl, MQTT_CLIENT_ID: clientId, NODE_RED_USER_DIR: userDir, NODE_RED_ADMIN_PASSWORD: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = once(child, "exit");
  const instance: NodeRedInstance = {
    pid: child.pid!,
    editor: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGINT"); // as Ctrl-C: Node-RED closes its nodes, --cpu-prof writes its profile
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 60_000;
  for (const pattern of ready) {
    while (!pattern.test(output)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await instance.stop();
        throw new Error(`Node-RED on ${flow} did not start (waiting for ${pattern}):\n${output.slice(-3000)}`);
      }
      await sleep(50);
    }
  }
  return instance;
}

/** The load generator process and its one-command-one-reply protocol. */
export class LoadGenerator {
  private readonly child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.child = child;
  }

  static async start(setup: Omit<SetupCommand, "type">): Promise<LoadGenerator> {
    const child = fork(path.join(__dirname, "load-generator.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const generator = new LoadGenerator(child);
    await generator.ask({ type: "setup", ...setup });
    return generator;
  }

  async run(command: Omit<RunCommand, "type">): Promise<RunReport> {
    const reply = (await this.ask({ type: "run", ...command })) as { report: RunReport };
    return reply.report;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = once(this.child, "exit");
    this.child.send({ type: "exit" } satisfies GeneratorCommand);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }

  private ask(command: GeneratorCommand): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onMessage = (message: { type: string; message?: string }) => {
        cleanup();
        if (message.type === "failed") reject(new Error(`load generator: ${message.message}`));
        else resolve(message);
      };
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`the load generator exited (${code})`));
      };
      const cleanup = () => {
        this.child.off("message", onMessage);
        this.child.off("exit", onExit);
      };
      this.child.on("message", onMessage);
      this.child.on("exit", onExit);
      this.child.send(command);
    });
  }
}

/** Resident memory of a process in bytes (VmRSS), or undefined once it has gone. */
export function rssOf(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds a process (all its threads) has used so far, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/**
 * CPU seconds so far of each thread of `pid`, by thread id (Linux; empty elsewhere).
 * A V8 profile counts a thread busy while it waits for a core inside a system call,
 * so on a full machine it overstates socket writes and hand-overs; these are the kernel's own counts.
 */
export function threadCpuSecondsOf(pid: number): Map<number, number> {
  const threads = new Map<number, number>();
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return threads;
  }
  for (const tid of tids) {
    const seconds = statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
    if (!Number.isNaN(seconds)) threads.set(Number(tid), seconds);
  }
  return threads;
}

/** A process's CPU by thread over a run, in cores: the main thread, the three busiest others, the rest together. */
export interface ThreadCores {
  main: number;
  busiest: number[];
  rest: number;
}

/**
 * A Node-RED process's CPU over a run, in cores, by thread: its main thread, its three busiest
 * other threads (under load, the inference workers; then V8's helpers), and the rest together.
 * Undefined where the kernel does not count CPU by thread (not Linux).
 */
export function threadCores(pid: number, before: Map<number, number>, after: Map<number, number>, seconds: number): ThreadCores | undefined {
  if (!after.has(pid)) return undefined;
  const others: number[] = [];
  // A thread started during the run counts from zero; one that ended is missed (the rest is a lower bound).
  for (const [tid, cpu] of after) if (tid !== pid) others.push((cpu - (before.get(tid) ?? 0)) / seconds);
  others.sort((a, b) => b - a);
  return { main: ((after.get(pid) ?? 0) - (before.get(pid) ?? 0)) / seconds, busiest: others.slice(0, 3), rest: others.slice(3).reduce((a, b) => a + b, 0) };
}

/**
 * Seconds the main thread of `pid` has so far spent runnable but waiting for a core (the
 * second field of Linux's schedstat); NaN where the kernel does not keep the count. Its CPU
 * says how much the thread worked; this says how long it was held up by others wanting the cores.
 */
export function waitingSecondsOf(pid: number): number {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[1]) / 1e9;
  } catch {
    return NaN;
  }
}

function statCpuSeconds(file: string): number {
  try {
    const stat = fs.readFileSync(file, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

export interface Reading<T> {
  at: number;
  value: T;
}

/** Samples `read()` every `intervalMs` until stopped, with wall-clock times. */
export class Sampler<T> {
  readonly samples: Array<Reading<T>> = [];
  private readonly timer: NodeJS.Timeout;

  constructor(read: () => T | undefined, intervalMs: number) {
    const take = () => {
      const value = read();
      if (value !== undefined) this.samples.push({ at: Date.now(), value });
    };
    take();
    this.timer = setInterval(take, intervalMs);
  }

  stop(): Array<Reading<T>> {
    clearInterval(this.timer);
    return this.samples;
  }

  between(from: number, to: number): T[] {
    return this.samples.filter((s) => s.at >= from && s.at <= to).map((s) => s.value);
  }
}

export interface EditorProbe {
  at: number;
  path: string;
  ms: number;
  status?: number;
}

/**
 * A user with the editor open: GETs of the editor page and its settings, one
 * after another with a short pause, over a keep-alive connection as a browser
 * would, until stopped. Each response is read to the end.
 */
export class EditorWatcher {
  readonly probes: EditorProbe[] = [];
  private running = true;
  private readonly done: Promise<void>;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  constructor(private readonly base: string, private readonly pauseMs = 20) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    const paths = ["/", "/settings"];
    for (let i = 0; this.running; i++) {
      const route = paths[i % paths.length];
      const started = performance.now();
      const at = Date.now();
      const status = await get(`${this.base}${route}`, this.agent);
      this.probes.push({ at, path: route, ms: performance.now() - started, status });
      await sleep(this.pauseMs);
    }
  }

  async stop(): Promise<EditorProbe[]> {
    this.running = false;
    await this.done;
    this.agent.destroy();
    return this.probes;
  }
}

function get(url: string, agent: http.Agent): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = http.get(url, { agent, timeout: 10_000, headers: { accept: "text/html,application/json" } }, (response) => {
      response.on("data", () => {});
      response.on("end", () => resolve(response.statusCode));
    });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve(undefined));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
