// The secured Mosquitto of mosquitto/secure/: generates what a demo of it needs
// (a local CA, the broker's certificate, a password file and one credentials
// file per role) with OpenSSL and mosquitto_passwd, and starts it on a free
// port for the tests (as a process of mosquitto-process.ts).
//
//   node dist/scripts/secure-broker.js generate [--host name]... [--force]
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { freePort, REPO_ROOT } from "./broker";
import { brokerAccount, findMosquitto, MosquittoProcess, removeOnExit, requireTool, systemAccount } from "./mosquitto-process";

export const SECURE_DIR = path.join(REPO_ROOT, "mosquitto", "secure");
export const SECURE_CONFIG = path.join(SECURE_DIR, "mosquitto.conf");
export const SECURE_ACL = path.join(SECURE_DIR, "acl.conf");
export const GENERATED_DIR = path.join(SECURE_DIR, "generated");
/** The TLS port of mosquitto/secure/mosquitto.conf. */
export const SECURE_PORT = 8883;

/** The roles of acl.conf, by the name their credentials file has. */
export const ROLES = {
  source: "mnist-source",
  infer: "mnist-infer",
  viewer: "mnist-viewer",
  chain: "mnist-chain",
} as const;
export type Role = keyof typeof ROLES;

export interface Credentials {
  username: string;
  password: string;
}

export interface SecureFiles {
  dir: string;
  /** The demo CA's certificate: what clients trust (NODE_EXTRA_CA_CERTS, --cafile). */
  caFile: string;
  certFile: string;
  keyFile: string;
  passwordFile: string;
  users: Record<Role, Credentials>;
  /** <dir>/<role>.env: MQTT_URL, MQTT_USERNAME, MQTT_PASSWORD, NODE_EXTRA_CA_CERTS for that role. */
  envFiles: Record<Role, string>;
}

export interface GenerateOptions {
  /** Default mosquitto/secure/generated. */
  dir?: string;
  /** Names and addresses the broker's certificate is valid for, besides localhost, 127.0.0.1 and ::1. */
  hosts?: string[];
  /** Validity of the CA and certificate; default 90 days, enough for a demo. */
  days?: number;
  /** Port written into the .env files' MQTT_URL; default 8883. */
  port?: number;
  /** Replace files generated before (their passwords and CA stop working). */
  force?: boolean;
}

const LOCAL_NAMES = ["localhost", "127.0.0.1", "::1"];

/**
 * Writes into `dir`: ca.crt/ca.key (the demo CA), server.crt/server.key
 * (signed by it, for localhost and `hosts`), passwd (a random password per
 * role, hashed by mosquitto_passwd) and <role>.env. Secrets are readable only
 * by their owner and, when run as root, by the `mosquitto` account the broker
 * switches to before reading them.
 */
export function generateSecureFiles(options: GenerateOptions = {}): SecureFiles {
  const dir = path.resolve(options.dir ?? GENERATED_DIR);
  const openssl = requireTool("openssl", "openssl");
  const mosquittoPasswd = requireTool("mosquitto_passwd", "mosquitto");
  if (fs.existsSync(path.join(dir, "passwd")) && !options.force) {
    throw new Error(`${dir} already holds generated files; pass --force to replace them (clients using the old CA or passwords will be refused)`);
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = (name: string) => path.join(dir, name);
  const days = String(options.days ?? 90);
  const run = (tool: string, args: string[]) => {
    const result = spawnSync(tool, args, { cwd: dir, encoding: "utf8" });
    if (result.status !== 0) throw new Error(`${path.basename(tool)} ${args[0]} failed: ${(result.stderr || result.stdout || result.error?.message || "").trim()}`);
  };

  // P-256 keys: generated in milliseconds, and accepted by every TLS client in use.
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run(openssl, ["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", days, "-subj", `/CN=node-red-contrib-mnist demo CA ${randomBytes(4).toString("hex")}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  run(openssl, ["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
  const names = [...new Set([...LOCAL_NAMES, ...(options.hosts ?? [])])];
  // Clients check the name they connect to against subjectAltName (RFC 6125), not the CN.
  const altNames = names.map((name) => (net.isIP(name) ? `IP:${name}` : `DNS:${name}`)).join(",");
  fs.writeFileSync(file("server.ext"), [`subjectAltName=${altNames}`, "basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=serverAuth", ""].join("\n"));
  run(openssl, ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", `0x${randomBytes(16).toString("hex")}`, "-days", days, "-extfile", "server.ext", "-out", "server.crt"]);
  fs.rmSync(file("server.csr"));
  fs.rmSync(file("server.ext"));

  // Plain `user:password` lines hashed in place by mosquitto_passwd -U, so no
  // password ever appears on a command line (where `ps` would show it).
  const users = Object.fromEntries(
    Object.entries(ROLES).map(([role, username]) => [role, { username, password: randomBytes(18).toString("base64url") }]),
  ) as Record<Role, Credentials>;
  fs.writeFileSync(file("passwd"), Object.values(users).map((u) => `${u.username}:${u.password}\n`).join(""), { mode: 0o600 });
  run(mosquittoPasswd, ["-U", "passwd"]);

  const url = `mqtts://127.0.0.1:${options.port ?? SECURE_PORT}`;
  const envFiles = {} as Record<Role, string>;
  for (const [role, user] of Object.entries(users) as [Role, Credentials][]) {
    envFiles[role] = file(`${role}.env`);
    const lines = [
      `# ${user.username} on the secured demo broker (mosquitto/secure/). Generated by scripts/secure-broker.ts.`,
      "# Load into a shell with: set -a; . <this file>; set +a",
      `MQTT_URL=${url}`,
      `MQTT_USERNAME=${user.username}`,
      `MQTT_PASSWORD=${user.password}`,
      `NODE_EXTRA_CA_CERTS=${file("ca.crt")}`,
      "",
    ];
    fs.writeFileSync(envFiles[role], lines.join("\n"), { mode: 0o600 });
  }
  fs.chmodSync(file("ca.key"), 0o600);
  fs.chmodSync(file("server.key"), 0o600);
  fs.chmodSync(file("ca.crt"), 0o644);
  fs.chmodSync(file("server.crt"), 0o644);
  shareWithBroker(dir);
  return { dir, caFile: file("ca.crt"), certFile: file("server.crt"), keyFile: file("server.key"), passwordFile: file("passwd"), users, envFiles };
}

export interface SecureBroker {
  /** mqtts://127.0.0.1:<port> */
  url: string;
  port: number;
  readonly pid: number | undefined;
  files: SecureFiles;
  /** The config the broker runs with (derived from mosquitto/secure/mosquitto.conf). */
  configPath: string;
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts Mosquitto with mosquitto/secure/mosquitto.conf on a free port (or
 * `port`), using `files` (default: generated into a temporary folder, removed
 * on stop). Resolves once the TLS listener completes a handshake.
 */
export async function startSecureMosquitto(options: { files?: SecureFiles; port?: number; readyTimeoutMs?: number } = {}): Promise<SecureBroker> {
  const executable = findMosquitto();
  if (!executable) throw new Error("mosquitto is not installed (Debian: apt-get install mosquitto)");
  const temporary = options.files === undefined;
  const files = options.files ?? generateSecureFiles({ dir: fs.mkdtempSync(path.join(os.tmpdir(), "mnist-secure-")) });
  const removeFiles = temporary ? removeOnExit(files.dir) : () => {};
  const port = options.port || (await freePort());
  // The ACL is copied beside the generated files: the broker's account may not reach the repository.
  const acl = path.join(files.dir, "acl.conf");
  fs.copyFileSync(SECURE_ACL, acl);
  const configPath = path.join(files.dir, "mosquitto.conf");
  fs.writeFileSync(configPath, deriveSecureConfig(fs.readFileSync(SECURE_CONFIG, "utf8"), port, files.dir, acl));
  shareWithBroker(files.dir);

  const url = `mqtts://127.0.0.1:${port}`;
  const account = brokerAccount(files.dir, notForBroker);
  const mosquitto = new MosquittoProcess({ executable, configPath, cwd: files.dir, account });
  const stop = async () => {
    await mosquitto.stop();
    removeFiles();
  };
  try {
    // Ready once the TLS listener completes a handshake with the demo CA's certificate.
    await mosquitto.start(url, () => tlsAnswers(port, files.caFile), options.readyTimeoutMs ?? 10_000);
  } catch (err) {
    removeFiles();
    throw err;
  }
  return {
    url,
    port,
    get pid() {
      return mosquitto.pid;
    },
    files,
    configPath,
    log: () => mosquitto.log(),
    stop,
  };
}

/** The secure config with its listener on `port` and every file in `dir` (the ACL at `acl`). */
export function deriveSecureConfig(template: string, port: number, dir: string, acl: string): string {
  let listeners = 0;
  const lines = template.split(/\r?\n/).map((line) => {
    const [key, ...rest] = line.trim().split(/\s+/);
    switch (key) {
      case "listener":
        listeners++;
        return `listener ${port} ${rest[1] ?? "127.0.0.1"}`;
      case "password_file":
      case "certfile":
      case "keyfile":
      case "cafile":
        return `${key} ${path.join(dir, path.basename(rest.join(" ")))}`;
      case "acl_file":
        return `acl_file ${acl}`;
      case "persistence_location":
        return `persistence_location ${dir}/`;
      case "log_dest":
        // Mosquitto writes stdout to a pipe in blocks; stderr line by line.
        return rest[0] === "stdout" ? "log_dest stderr" : line;
      default:
        return line;
    }
  });
  if (listeners !== 1) throw new Error(`mosquitto/secure/mosquitto.conf must have exactly one listener (has ${listeners})`);
  return [`# Generated by scripts/secure-broker.ts from ${SECURE_CONFIG} (port ${port}).`, ...lines, ""].join("\n");
}

/** Whether a TLS server on 127.0.0.1:`port` presents a certificate `caFile` vouches for. */
function tlsAnswers(port: number, caFile: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: fs.readFileSync(caFile), servername: "localhost" }, () => {
      socket.end();
      resolve(socket.authorized);
    });
    socket.setTimeout(1000, () => socket.destroy());
    socket.once("error", () => resolve(false));
    socket.once("close", () => resolve(false));
  });
}

/**
 * Started as root, Mosquitto switches to the `mosquitto` account before it reads
 * the password file and the key: give that account the folder and its secrets.
 */
function shareWithBroker(dir: string): void {
  if (process.getuid?.() !== 0) return;
  const account = systemAccount("mosquitto");
  if (!account) return;
  for (const name of [".", ...fs.readdirSync(dir)]) {
    if (notForBroker(name)) continue;
    fs.chownSync(path.join(dir, name), account.uid, account.gid);
  }
}

/** Secrets the broker never needs. */
function notForBroker(name: string): boolean {
  return name === "ca.key" || name.endsWith(".env");
}

function main(argv: string[]): void {
  const [command, ...rest] = argv;
  if (command !== "generate") {
    console.log("Usage: node dist/scripts/secure-broker.js generate [--host name]... [--force]\n\n" +
      "Writes a demo CA, the broker's certificate, a password file and <role>.env credentials\n" +
      "for mosquitto/secure/mosquitto.conf into mosquitto/secure/generated/ (git-ignored).");
    process.exitCode = command ? 1 : 0;
    return;
  }
  const hosts: string[] = [];
  let force = false;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--force") force = true;
    else if (rest[i] === "--host" && rest[i + 1]) hosts.push(rest[++i]);
    else throw new Error(`unknown argument ${rest[i]}`);
  }
  const files = generateSecureFiles({ hosts, force });
  const shown = (file: string) => path.relative(process.cwd(), file) || file;
  console.log(`Generated in ${shown(files.dir)}:
  ca.crt               the demo CA clients trust (NODE_EXTRA_CA_CERTS, mosquitto_sub --cafile)
  server.crt/.key      the broker's certificate for ${[...LOCAL_NAMES, ...hosts].join(", ")}
  passwd               hashed passwords for ${Object.values(ROLES).join(", ")}
  <role>.env           each role's MQTT_URL, MQTT_USERNAME, MQTT_PASSWORD and NODE_EXTRA_CA_CERTS

Start the broker from the repository root:
  mosquitto -c mosquitto/secure/mosquitto.conf
Then see docs/security.md to connect Node-RED and mosquitto_pub/_sub.`);
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
}
