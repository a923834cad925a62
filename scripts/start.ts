// `npm start [-- flows/<file>.json] [--reset]`: the MNIST chain demo. Finds or
// starts an MQTT broker, then runs Node-RED embedded in this process, with a
// user folder where this repository is installed as a module and a copy of the
// chosen flow. Ctrl-C stops Node-RED, then the broker if it was started here.
import fs from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { ensureBroker, REPO_ROOT, type EnsuredBroker } from "./broker";
import { copyFlow, DASHBOARD_PACKAGE, dashboardInstalled, dashboardPath, prepareUserDir } from "./user-folder";

const DEFAULT_FLOW = path.join("flows", "mnist-chain.json");
/** Environment the flows read through ${...}, and their defaults. */
const FLOW_ENV_DEFAULTS: Record<string, string> = {
  MQTT_URL: "mqtt://127.0.0.1:1883",
  MQTT_PROTOCOL_VERSION: "4",
  MNIST_REQUEST_TOPIC: "mnist",
  MNIST_RESULT_TOPIC: "result",
  MNIST_ERROR_TOPIC: "result/error",
  MNIST_SHARE_GROUP: "mnist-infer",
};
/** Node-RED gives each node 15 s to close; allow a little more for the whole runtime. */
const STOP_TIMEOUT_MS = 20_000;

const USAGE = `Usage: npm start [-- [flow.json] [--reset] [--external-broker]]

  flow.json          flow to run (default ${DEFAULT_FLOW}); a copy of it in the
                     Node-RED user folder is what runs and what the editor saves;
                     flows/mnist-dashboard.json also serves a dashboard (needs
                     @flowfuse/node-red-dashboard, a dev dependency) and prints its address
  --reset            replace an edited copy with the shipped flow (the old copy
                     is kept as <copy>.bak)
  --external-broker  never start a broker; fail if none answers at MQTT_URL

Environment:
  MQTT_URL                 broker the flows use (default ${FLOW_ENV_DEFAULTS.MQTT_URL}); if none
                           answers and it is on this machine, one is started on its port
  MQTT_PROTOCOL_VERSION    4 (MQTT 3.1.1, default) or 5
  MNIST_REQUEST_TOPIC      default ${FLOW_ENV_DEFAULTS.MNIST_REQUEST_TOPIC}
  MNIST_RESULT_TOPIC       default ${FLOW_ENV_DEFAULTS.MNIST_RESULT_TOPIC}
  MNIST_ERROR_TOPIC        default ${FLOW_ENV_DEFAULTS.MNIST_ERROR_TOPIC}
  MNIST_SHARE_GROUP        shared-subscription group of mnist-infer-shared.json (default ${FLOW_ENV_DEFAULTS.MNIST_SHARE_GROUP})
  PORT, HOST               editor address (default 127.0.0.1:1880)
  NODE_RED_ADMIN_PASSWORD  require login as "admin" with this password
  NODE_RED_USER_DIR        Node-RED user folder (default .node-red/ in the repository)
  MOSQUITTO                path of the mosquitto executable (default: mosquitto on PATH,
                           /usr/sbin or /usr/local/sbin); if it cannot be run, the
                           embedded aedes broker is started instead, and the reason printed`;

export interface StartArgs {
  flow?: string;
  reset: boolean;
  externalBroker: boolean;
  help: boolean;
}

export function parseArgs(argv: string[]): StartArgs {
  const args: StartArgs = { reset: false, externalBroker: false, help: false };
  for (const arg of argv) {
    if (arg === "--reset") args.reset = true;
    else if (arg === "--external-broker") args.externalBroker = true;
    else if (arg === "--help" || arg === "-h") args.help = true;
    else if (arg.startsWith("-")) throw new Error(`unknown option ${arg}\n\n${USAGE}`);
    else if (args.flow) throw new Error(`only one flow file can be given (got ${args.flow} and ${arg})`);
    else args.flow = arg;
  }
  return args;
}

/** The flow file to run: as given (from the working directory, else the repository), or the default. */
export function resolveFlowFile(given: string | undefined): string {
  const candidates = given ? [path.resolve(given), path.resolve(REPO_ROOT, given)] : [path.join(REPO_ROOT, DEFAULT_FLOW)];
  const found = candidates.find((file) => fs.existsSync(file) && fs.statSync(file).isFile());
  if (found) return found;
  const flowsDir = path.join(REPO_ROOT, "flows");
  const shipped = fs.existsSync(flowsDir) ? fs.readdirSync(flowsDir).filter((file) => file.endsWith(".json")) : [];
  const choice = shipped.length ? `shipped flows: ${shipped.map((file) => path.join("flows", file)).join(", ")}` : "no flows are shipped in flows/ yet";
  throw new Error(`flow file not found: ${given ?? DEFAULT_FLOW} (${choice})`);
}

/** The parts of the `node-red` module's embedding API used here. */
interface NodeRedRuntime {
  init(server: http.Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  httpAdmin: http.RequestListener;
  httpNode: http.RequestListener;
}
type Express = () => http.RequestListener & { use(route: string, handler: http.RequestListener): void };

/**
 * Node-RED's MQTT client leaves Nagle's algorithm on, so a lone reply waits for
 * the broker's delayed ACK of the previous packet: at 50 requests/s the median
 * round trip measured 21 ms with it and 1.6 ms without. Node-RED has no setting
 * for it; the demo switches it off for every TCP connection it makes.
 */
function disableNagle(): void {
  const connect = net.Socket.prototype.connect as (...args: unknown[]) => net.Socket;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    this.setNoDelay(true);
    return connect.apply(this, args);
  } as typeof net.Socket.prototype.connect;
}

async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const shown = (file: string) => {
    const relative = path.relative(process.cwd(), file);
    return relative && !relative.startsWith("..") ? relative : file;
  };
  const userDir = path.resolve(process.env.NODE_RED_USER_DIR || path.join(REPO_ROOT, ".node-red"));
  const shipped = resolveFlowFile(args.flow);
  prepareUserDir(userDir);
  const flow = copyFlow(shipped, userDir, args.reset);
  const dashboard = dashboardPath(flow.copy);
  if (dashboard && !dashboardInstalled(userDir)) {
    // Without the package Node-RED waits for the missing ui-* types and starts no flow at all.
    throw new Error(
      `${shown(shipped)} is a FlowFuse Dashboard 2 flow, and ${DASHBOARD_PACKAGE} is not installed.\n` +
        `It is a dev dependency of this repository: run \`npm ci\` (or \`npm install ${DASHBOARD_PACKAGE}\`), then npm start again.`,
    );
  }
  const port = Number(process.env.PORT || 1880);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, got ${process.env.PORT}`);
  const host = process.env.HOST || "127.0.0.1";

  // Everything started from here on is stopped by `shutdown`.
  let broker: EnsuredBroker | undefined;
  let RED: NodeRedRuntime | undefined;
  let server: http.Server | undefined;
  let stopping = false;
  const shutdown = async (reason: string, exitCode: number): Promise<never> => {
    if (stopping) {
      console.log(`${reason} again: exiting without waiting.`);
      process.exit(exitCode || 130); // the exit hook in broker.ts still stops Mosquitto
    }
    stopping = true;
    const running = [RED && "Node-RED", broker?.started && `the ${broker.kind} broker`].filter(Boolean);
    if (running.length) console.log(`\n${reason}: stopping ${running.join(" and ")}...`);
    if (RED) {
      const stopped = RED.stop().then(() => "stopped", (err: Error) => `failed to stop cleanly: ${err.message}`);
      const timeout = new Promise<string>((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS, `did not stop within ${STOP_TIMEOUT_MS / 1000} s`).unref());
      const outcome = await Promise.race([stopped, timeout]);
      if (outcome !== "stopped") console.error(`Node-RED ${outcome}`);
    }
    server?.closeAllConnections();
    server?.close();
    if (broker?.started) await broker.stop().catch((err: Error) => console.error(`broker: ${err.message}`));
    if (running.length) console.log("Stopped.");
    process.exit(exitCode);
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void shutdown(signal, 0));
  process.on("uncaughtException", (err) => {
    console.error("Uncaught exception:", err);
    void shutdown("uncaught exception", 1);
  });

  try {
    broker = await ensureBroker({
      url: process.env.MQTT_URL || FLOW_ENV_DEFAULTS.MQTT_URL,
      allowStart: !args.externalBroker,
      dataDir: path.join(userDir, "mosquitto"),
    });
    // The flows' broker config and topics read these through ${...}.
    for (const [name, value] of Object.entries(FLOW_ENV_DEFAULTS)) process.env[name] ||= value;
    process.env.MQTT_URL = broker.url;

    disableNagle();
    // Node-RED and what it serves with come from the project's own node_modules.
    const runtime = require("node-red") as NodeRedRuntime;
    const fromNodeRed = createRequire(require.resolve("node-red/package.json"));
    const express = fromNodeRed("express") as Express;
    const app = express();
    server = http.createServer(app);
    runtime.init(server, nodeRedSettings(userDir, path.basename(flow.copy), port, host, fromNodeRed));
    // Editor and admin API at /, then HTTP-in routes, as Node-RED's own red.js mounts them.
    app.use("/", runtime.httpAdmin);
    app.use("/", runtime.httpNode);
    RED = runtime; // from here on, shutdown stops it
    await RED.start();
    const address = await listen(server, port, host);

    const flowNote = {
      copied: `(copied from ${shown(shipped)})`,
      unchanged: `(same as ${shown(shipped)})`,
      updated: `(updated: ${shown(shipped)} changed and you had not edited the copy)`,
      kept: `(YOUR EDITED COPY, not ${shown(shipped)}: run with --reset to replace it)`,
      reset: `(reset to ${shown(shipped)}; your previous copy is ${shown(flow.backup ?? "")})`,
    }[flow.outcome];
    const editorHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
    console.log(
      [
        "",
        "node-red-contrib-mnist demo",
        `  Broker : ${broker.summary}`,
        `  Flow   : ${shown(flow.copy)} ${flowNote}`,
        `  Editor : http://${editorHost}:${address.port}/${process.env.NODE_RED_ADMIN_PASSWORD ? "  (login: admin / $NODE_RED_ADMIN_PASSWORD)" : ""}`,
        ...(dashboard ? [`  UI     : http://${editorHost}:${address.port}${dashboard}  (the dashboard: draw a digit, watch the chain's accuracy)`] : []),
        `  Topics : requests on ${process.env.MNIST_REQUEST_TOPIC}, results on ${process.env.MNIST_RESULT_TOPIC}, errors on ${process.env.MNIST_ERROR_TOPIC} (MQTT ${process.env.MQTT_PROTOCOL_VERSION === "5" ? "5" : "3.1.1"})`,
        `  Stop   : press Ctrl-C${broker.started ? " (also stops the broker started above)" : ""}`,
        "",
      ].join("\n"),
    );
    if (!isLoopback(host) && !process.env.NODE_RED_ADMIN_PASSWORD) {
      console.warn(`WARNING: the editor listens on ${host} without a password; set NODE_RED_ADMIN_PASSWORD.`);
    }
  } catch (err) {
    console.error(`Could not start the demo: ${(err as Error).message}`);
    await shutdown("start-up failed", 1);
  }
}

function nodeRedSettings(userDir: string, flowFile: string, port: number, host: string, fromNodeRed: NodeRequire): Record<string, unknown> {
  const settings: Record<string, unknown> = {
    userDir,
    flowFile,
    flowFilePretty: true,
    uiPort: port,
    uiHost: host,
    httpAdminRoot: "/",
    httpNodeRoot: "/",
    // No consent prompt and no update check from a local demo.
    telemetry: { enabled: false, updateNotification: false },
    // No projects, and no "welcome to Node-RED" tour over the demo flow.
    editorTheme: { projects: { enabled: false }, tours: false },
    logging: { console: { level: process.env.NODE_RED_LOG_LEVEL || "info", metrics: false, audit: false } },
  };
  const password = process.env.NODE_RED_ADMIN_PASSWORD;
  if (password) {
    const bcrypt = fromNodeRed("bcryptjs") as { hashSync(text: string, rounds: number): string };
    settings.adminAuth = { type: "credentials", users: [{ username: "admin", password: bcrypt.hashSync(password, 10), permissions: "*" }] };
  }
  return settings;
}

function listen(server: http.Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(err.code === "EADDRINUSE" ? new Error(`${host}:${port} is already in use (another Node-RED?); set PORT to another port`) : err);
    });
    server.listen(port, host, () => resolve(server.address() as AddressInfo));
  });
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
