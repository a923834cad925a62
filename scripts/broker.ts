// The one place that finds, probes and starts MQTT brokers, for `npm start`,
// the tests and the benchmark. Mosquitto runs from a copy of
// mosquitto/mosquitto.conf with its own port and data folder, as a process of
// mosquitto-process.ts; aedes is the embedded fallback for machines without Mosquitto.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { connect } from "mqtt";
import { startAedes } from "./aedes-broker";
import type { Broker, BrokerKind } from "./broker-types";
import { brokerAccount, findMosquitto, installedMosquitto, mosquittoOverrideProblem, MosquittoProcess, removeOnExit } from "./mosquitto-process";

// The benchmark and the tests find and start both brokers here.
export { findMosquitto, startAedes };
export type { Broker, BrokerKind };

export interface MosquittoBroker extends Broker {
  kind: "mosquitto";
  /** Process id of the running mosquitto, undefined while stopped. */
  readonly pid: number | undefined;
  /** The generated config the broker runs with. */
  configPath: string;
  /** Where the config, mosquitto.db (and, from ensureBroker, the log) live. */
  dataDir: string;
  /** The last lines the broker logged. */
  log(): string;
  restart(): Promise<void>;
}

export interface StartMosquittoOptions {
  /** 0 or undefined: a free port on 127.0.0.1. */
  port?: number;
  /** Config to derive from; default mosquitto/mosquitto.conf of this repository. */
  config?: string;
  /** Keep config and database here (created if missing, kept on stop); default a temp folder removed on stop. */
  dataDir?: string;
  /** Also append the broker's log to this file. */
  logFile?: string;
  /** How long to wait for the broker to accept connections; default 10 s. */
  readyTimeoutMs?: number;
}

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const SHIPPED_CONFIG = path.join(REPO_ROOT, "mosquitto", "mosquitto.conf");
const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/**
 * Whether an MQTT broker answers at `url` within `timeoutMs`. A broker that
 * refuses the login (it wants credentials this probe does not have) still answers.
 */
export function probeBroker(url: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const client = connect(url, {
      clientId: `probe-${process.pid}-${Math.random().toString(16).slice(2, 10)}`,
      clean: true,
      connectTimeout: timeoutMs,
      reconnectPeriod: 0,
    });
    const timer = setTimeout(() => finish(false), timeoutMs);
    function finish(answered: boolean): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.removeAllListeners();
      client.on("error", () => {}); // a late socket error must not become uncaught
      client.end(true);
      resolve(answered);
    }
    client.once("connect", () => finish(true));
    // CONNACK 4 / 5 (MQTT 3.1.1) and 134 / 135 (MQTT 5): bad credentials or not authorised.
    client.once("error", (err: Error & { code?: number }) => finish([4, 5, 134, 135].includes(Number(err.code))));
    client.once("close", () => finish(false));
  });
}

/** A port that was free on `host` a moment ago. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts Mosquitto with a copy of `options.config` (default the shipped config)
 * whose single `listener` uses `options.port` and whose persistence goes to
 * `options.dataDir`. Resolves once it accepts MQTT connections.
 */
export async function startMosquitto(options: StartMosquittoOptions = {}): Promise<MosquittoBroker> {
  const executable = findMosquitto();
  if (!executable) {
    const problem = mosquittoOverrideProblem();
    throw new Error(problem ? `MOSQUITTO is set to ${process.env.MOSQUITTO}, but ${problem}` : "mosquitto is not installed (Debian: apt-get install mosquitto)");
  }
  const source = options.config ?? SHIPPED_CONFIG;
  const template = fs.readFileSync(source, "utf8");
  const dataDir = options.dataDir === undefined ? fs.mkdtempSync(path.join(os.tmpdir(), "mnist-mosquitto-")) : path.resolve(options.dataDir);
  const removeDataDir = options.dataDir === undefined ? removeOnExit(dataDir) : () => {};
  fs.mkdirSync(dataDir, { recursive: true });
  const account = brokerAccount(dataDir);
  const runAsRoot = account === undefined && process.getuid?.() === 0;
  // A free port can be taken between finding it and binding it: try another.
  const attempts = options.port ? 1 : 3;
  try {
    for (let attempt = 1; ; attempt++) {
      const port = options.port || (await freePort());
      const { text, host } = deriveConfig(template, source, port, dataDir, runAsRoot);
      const configPath = path.join(dataDir, "mosquitto.conf");
      fs.writeFileSync(configPath, text, { mode: 0o644 });
      const mosquitto = new MosquittoProcess({ executable, configPath, cwd: dataDir, account, logFile: options.logFile });
      const url = `mqtt://${host.includes(":") ? `[${host}]` : host}:${port}`;
      const start = () => mosquitto.start(url, () => probeBroker(url, 1000), options.readyTimeoutMs ?? 10_000);
      try {
        await start();
      } catch (err) {
        if (attempt < attempts && /address already in use/i.test(mosquitto.log())) continue;
        throw err;
      }
      return {
        url,
        port,
        kind: "mosquitto",
        get pid() {
          return mosquitto.pid;
        },
        configPath,
        dataDir,
        log: () => mosquitto.log(),
        restart: async () => {
          await mosquitto.stop();
          await start();
        },
        stop: async () => {
          await mosquitto.stop();
          removeDataDir();
        },
      };
    }
  } catch (err) {
    removeDataDir();
    throw err;
  }
}

export interface EnsureBrokerOptions {
  /** The broker the flows will use, e.g. mqtt://127.0.0.1:1883. */
  url: string;
  /** Start a broker on the URL's port when none answers there (loopback URLs only). */
  allowStart: boolean;
  /** Mosquitto's config, database and log folder; default a temp folder. */
  dataDir?: string;
  probeTimeoutMs?: number;
  /** Where notices go (default console.log). */
  say?: (line: string) => void;
}

export interface EnsuredBroker {
  url: string;
  /** "external": a broker that was already answering and is left alone. */
  kind: BrokerKind | "external";
  started: boolean;
  /** One line for the user: which broker, and whether it was started. */
  summary: string;
  /** The broker that was started, if one was. */
  broker?: Broker;
  /** Mosquitto's log file, when one was started. */
  logFile?: string;
  /** Stops the broker if this call started it. */
  stop(): Promise<void>;
}

/**
 * For `npm start`: the broker at `url` if one answers; otherwise Mosquitto from
 * the project's config on that port if installed; otherwise aedes, saying so.
 */
export async function ensureBroker(options: EnsureBrokerOptions): Promise<EnsuredBroker> {
  const say = options.say ?? ((line: string) => console.log(line));
  const target = new URL(options.url);
  if (await probeBroker(options.url, options.probeTimeoutMs ?? 1500)) {
    return { url: options.url, kind: "external", started: false, summary: `using the broker already running at ${options.url}`, stop: async () => {} };
  }
  if (!options.allowStart) throw new Error(`no MQTT broker answers at ${options.url}, and starting one was not allowed`);
  if (target.protocol !== "mqtt:" || !LOCAL_HOSTS.has(target.hostname)) {
    throw new Error(`no MQTT broker answers at ${options.url}; a broker can only be started for a plain mqtt:// URL on this machine (127.0.0.1, localhost)`);
  }
  const port = Number(target.port || 1883);

  if (findMosquitto()) {
    const logFile = options.dataDir ? path.join(options.dataDir, "mosquitto.log") : undefined;
    const broker = await startMosquitto({ port, dataDir: options.dataDir, logFile });
    const relative = logFile && path.relative(process.cwd(), logFile);
    const where = logFile ? `, log ${relative && !relative.startsWith("..") ? relative : logFile}` : "";
    return {
      url: broker.url,
      kind: "mosquitto",
      started: true,
      summary: `started Mosquitto at ${broker.url} (pid ${broker.pid}, config from mosquitto/mosquitto.conf${where})`,
      broker,
      logFile,
      stop: () => broker.stop(),
    };
  }
  const problem = mosquittoOverrideProblem();
  if (problem) {
    // A wrong $MOSQUITTO is not the same as no Mosquitto: say which path is wrong, and what else there is.
    const installed = installedMosquitto();
    const correct = problem === "it is not executable" ? `chmod +x ${process.env.MOSQUITTO}` : "correct the path";
    const fix = installed ? `${correct}, or unset MOSQUITTO to use ${installed}` : `${correct} (Mosquitto is not on PATH either; Debian: apt-get install mosquitto)`;
    say(`MOSQUITTO is set to ${process.env.MOSQUITTO}, but ${problem}: starting the embedded aedes broker instead. To use Mosquitto, ${fix}.`);
  } else {
    say("Mosquitto is not installed (Debian: apt-get install mosquitto): starting the embedded aedes broker instead.");
  }
  say("aedes keeps nothing across restarts and does not support shared subscriptions ($share/...).");
  const broker = await startAedes({ port });
  return {
    url: broker.url,
    kind: "aedes",
    started: true,
    summary: `started the embedded aedes broker at ${broker.url} (${problem ? `MOSQUITTO=${process.env.MOSQUITTO}: ${problem}` : "Mosquitto is not installed"})`,
    broker,
    stop: () => broker.stop(),
  };
}

/** Replaces the port of the config's one listener and its persistence folder. */
function deriveConfig(template: string, source: string, port: number, dataDir: string, runAsRoot: boolean): { text: string; host: string } {
  let host = "127.0.0.1";
  let listeners = 0;
  let persistence = false;
  const lines = template.split(/\r?\n/).map((line) => {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key === "listener") {
      listeners++;
      if (rest[1] && rest[1] !== "0.0.0.0" && rest[1] !== "::") host = rest[1];
      return `listener ${port} ${rest[1] ?? host}`;
    }
    // Mosquitto does not flush stdout into a pipe, so its log would arrive in
    // 4 KB blocks or only at exit; stderr is written line by line.
    if (key === "log_dest" && rest[0] === "stdout") return "log_dest stderr";
    if (key === "persistence_location") {
      persistence = true;
      return `persistence_location ${dataDir}/`;
    }
    return line;
  });
  // A second listener would need its own free port, and options after it belong to it.
  if (listeners > 1) throw new Error(`${source} has ${listeners} listeners; scripts/broker.ts supports exactly one`);
  if (listeners === 0) lines.push(`listener ${port} ${host}`);
  if (!persistence) lines.push(`persistence_location ${dataDir}/`);
  // Otherwise Mosquitto started as root switches to a user that cannot reach dataDir.
  if (runAsRoot) lines.push("user root");
  const header = `# Generated by scripts/broker.ts from ${source} (port ${port}); edit that file instead.`;
  return { text: [header, ...lines, ""].join("\n"), host };
}
