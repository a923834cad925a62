// The one place that runs Mosquitto as a child process, for the launcher's
// broker (broker.ts), the secured broker (secure-broker.ts) and the tests:
// finding the executable, starting it so that it never outlives this process,
// as an unprivileged account when this process is root, keeping the last lines
// it logged, and stopping it. The tests start Node-RED the same way
// (withDeathSignal).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import type net from "node:net";
import path from "node:path";

/** Debian installs Mosquitto in /usr/sbin, which is not on a normal user's PATH. */
const SBIN_DIRS = ["/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"];
const LOG_LINES_KEPT = 200;

/** Path of the mosquitto executable ($MOSQUITTO, then PATH and the sbin folders), or undefined. */
export function findMosquitto(): string | undefined {
  if (process.env.MOSQUITTO) return isExecutable(process.env.MOSQUITTO) ? process.env.MOSQUITTO : undefined;
  return installedMosquitto();
}

/** The mosquitto on PATH or in the sbin folders, whatever $MOSQUITTO says. */
export function installedMosquitto(): string | undefined {
  return findExecutable("mosquitto", SBIN_DIRS);
}

/**
 * Why $MOSQUITTO cannot be run ("there is no such file", "it is a folder", "it
 * is not executable"), or undefined when it is unset or can be run.
 */
export function mosquittoOverrideProblem(): string | undefined {
  const given = process.env.MOSQUITTO;
  if (!given) return undefined;
  let stats: fs.Stats;
  try {
    stats = fs.statSync(given);
  } catch {
    return "there is no such file";
  }
  if (!stats.isFile()) return stats.isDirectory() ? "it is a folder" : "it is not a regular file";
  return isExecutable(given) ? undefined : "it is not executable";
}

/** Path of a tool the scripts need (openssl, mosquitto_passwd), or an error saying which Debian package has it. */
export function requireTool(name: string, debianPackage: string): string {
  const found = findExecutable(name, ["/usr/bin", "/usr/sbin"]);
  if (!found) throw new Error(`${name} is not installed (Debian: apt-get install ${debianPackage})`);
  return found;
}

export interface Account {
  uid: number;
  gid: number;
}

/** A system account's ids from /etc/passwd, or undefined when there is no such account. */
export function systemAccount(name: string): Account | undefined {
  let passwd: string;
  try {
    passwd = fs.readFileSync("/etc/passwd", "utf8");
  } catch {
    return undefined;
  }
  const line = passwd.split("\n").find((entry) => entry.startsWith(`${name}:`));
  if (!line) return undefined;
  const fields = line.split(":");
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/**
 * As root: the `mosquitto` (else `nobody`) account, made owner of `dir` and
 * what it holds (except the files `keepFromBroker` names), to run the broker as,
 * if it can reach that folder (not so under a 0700 home or temp folder).
 * Undefined to run as the current user: not root, or no setpriv to switch with.
 */
export function brokerAccount(dir: string, keepFromBroker: (name: string) => boolean = () => false): Account | undefined {
  const setpriv = setprivWithDeathSignal();
  if (process.getuid?.() !== 0 || !setpriv) return undefined;
  const account = systemAccount("mosquitto") ?? systemAccount("nobody");
  if (!account) return undefined;
  // Shallow: the config, database, log and certificates; a database left by a root-run broker must become readable.
  for (const name of [".", ...fs.readdirSync(dir)]) {
    if (!keepFromBroker(name)) fs.chownSync(path.join(dir, name), account.uid, account.gid);
  }
  const check = spawnSync(setpriv, [...switchTo(account), "test", "-w", dir, "-a", "-x", dir], { stdio: "ignore" });
  return check.status === 0 ? account : undefined;
}

/**
 * `command args` run through setpriv (util-linux) with a parent-death signal,
 * so the child stops even if this process is killed outright; as `account` when
 * given (switched by setpriv first: the signal is cleared when a process
 * changes its own user, as Mosquitto would). Without setpriv, unchanged.
 */
export function withDeathSignal(command: string, args: string[], account?: Account): [string, string[]] {
  const setpriv = setprivWithDeathSignal();
  if (!setpriv) return [command, args];
  return [setpriv, [...(account ? switchTo(account) : []), "--pdeathsig", "TERM", command, ...args]];
}

export interface MosquittoProcessOptions {
  executable: string;
  configPath: string;
  /** The broker's working folder (its data folder). */
  cwd: string;
  /** Run as this account (see brokerAccount). */
  account?: Account;
  /** Also append the broker's log to this file. */
  logFile?: string;
}

/** One mosquitto process at a time for a config, startable again after stop (for restart). */
export class MosquittoProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly lines: string[] = [];

  constructor(private readonly options: MosquittoProcessOptions) {}

  /** Process id of the running mosquitto, undefined while stopped. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last lines the broker logged. */
  log(): string {
    return this.lines.join("\n");
  }

  /** Starts mosquitto and resolves once `ready()` says it serves at `url`. */
  async start(url: string, ready: () => Promise<boolean>, readyTimeoutMs: number): Promise<void> {
    const { executable, configPath, cwd, account, logFile } = this.options;
    const [command, args] = withDeathSignal(executable, ["-c", configPath], account);
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"], detached: true });
    this.child = child;
    let exitCode: string | undefined;
    this.exited = new Promise((resolve) => {
      const ended = (how: string) => {
        exitCode ??= how;
        if (this.child === child) this.child = undefined;
        resolve();
      };
      child.once("exit", (code, signal) => ended(signal ?? String(code)));
      // Could not be spawned at all: there will be no "exit".
      child.once("error", (err) => {
        this.record(`could not run ${command}: ${err.message}`);
        if (child.pid === undefined) ended("not started");
      });
    });
    killOnExit(child);
    const file = logFile ? fs.createWriteStream(logFile, { flags: "a" }) : undefined;
    for (const stream of [child.stdout!, child.stderr!]) {
      let partial = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        file?.write(chunk);
        const parts = (partial + chunk).split("\n");
        partial = parts.pop()!;
        for (const line of parts) this.record(line);
      });
      (stream as unknown as net.Socket).unref?.();
    }
    child.once("exit", () => file?.end());
    // Detached (own process group) so a Ctrl-C in the terminal reaches only the
    // launcher, which stops Node-RED before the broker; and unref'd so a broker
    // alone never keeps a test process alive.
    child.unref();

    const deadline = Date.now() + readyTimeoutMs;
    while (Date.now() < deadline) {
      if (exitCode !== undefined) throw new Error(`mosquitto exited (${exitCode}) before accepting connections at ${url}:\n${this.log()}`);
      if (await ready()) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await this.stop();
    throw new Error(`mosquitto did not accept connections at ${url} within ${readyTimeoutMs} ms:\n${this.log()}`);
  }

  /** SIGTERM (Mosquitto saves its database), SIGKILL after 5 s; resolves when it has exited. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return this.exited;
    child.kill("SIGTERM");
    // A ref'd timer keeps the event loop alive until the unref'd child has exited.
    const escalate = setTimeout(() => child.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(escalate);
  }

  private record(line: string): void {
    this.lines.push(line);
    if (this.lines.length > LOG_LINES_KEPT) this.lines.shift();
  }
}

/** Every mosquitto this process started and temp folder it made, so none outlives it. */
const running = new Set<ChildProcess>();
const temporaryDirs = new Set<string>();
let exitHookInstalled = false;

function cleanUpOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Only synchronous work is possible here. SIGTERM: Mosquitto exits cleanly
  // (it fails to save into a removed temp folder, which is fine).
  process.once("exit", () => {
    for (const child of running) child.kill("SIGTERM");
    for (const dir of temporaryDirs) fs.rmSync(dir, { recursive: true, force: true });
  });
}

function killOnExit(child: ChildProcess): void {
  running.add(child);
  child.once("exit", () => running.delete(child));
  cleanUpOnExit();
}

/** Removes `dir` when this process exits; the function returned removes it now. */
export function removeOnExit(dir: string): () => void {
  temporaryDirs.add(dir);
  cleanUpOnExit();
  return () => {
    temporaryDirs.delete(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  };
}

function switchTo(account: Account): string[] {
  return ["--reuid", String(account.uid), "--regid", String(account.gid), "--clear-groups"];
}

let setprivChecked: string | undefined | null = null;
/** setpriv, if it is installed and knows --pdeathsig (util-linux 2.33 and later). */
function setprivWithDeathSignal(): string | undefined {
  if (setprivChecked !== null) return setprivChecked;
  const setpriv = findExecutable("setpriv", ["/usr/bin", "/bin"]);
  const help = setpriv ? spawnSync(setpriv, ["--help"], { encoding: "utf8" }).stdout ?? "" : "";
  setprivChecked = help.includes("--pdeathsig") ? setpriv : undefined;
  return setprivChecked;
}

function findExecutable(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean), ...extraDirs];
  return dirs.map((dir) => path.join(dir, name)).find(isExecutable);
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
