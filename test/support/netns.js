// Hosts on one machine for tests: each host a network namespace of its own
// (`ip netns`), joined by a veth pair to a bridge in one more namespace, the
// "switch". Every address lives inside namespaces made here, the root
// namespace gets no interface, route or address, so no packet of a test can
// leave them. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2.
//
// Namespaces are named mnist-mh-<pid of the test process>-<host>; namespaces
// left by a test process that no longer runs (killed before its cleanup) are
// removed by the next Network. Every process started in a host gets the death
// signal (setpriv --pdeathsig), so none outlives the test process.
"use strict";
const { execFile, execFileSync, spawn, spawnSync } = require("child_process");
const { once } = require("events");
const fs = require("fs");
const { withDeathSignal } = require("../../dist/scripts/mosquitto-process.js");

const PREFIX = "mnist-mh-";
const IP_CANDIDATES = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

/** Path of iproute2's `ip`, or undefined. */
function findIp() {
  return IP_CANDIDATES.find((file) => {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Runs `ip args...`; throws with ip's own message when it fails. */
function ip(args) {
  const result = spawnSync(findIp(), args, { encoding: "utf8", timeout: 10000 });
  if (result.status !== 0) {
    throw new Error(`ip ${args.join(" ")}: ${(result.stderr || result.error?.message || `exit ${result.status}`).trim()}`);
  }
  return result.stdout;
}

/**
 * Why network namespaces cannot be made here (a sentence), or undefined when
 * they can: makes one with a veth pair in it and removes it again.
 */
function netnsProblem() {
  if (process.platform !== "linux") return "network namespaces are a Linux feature";
  if (!findIp()) return "the ip command is not installed (apt-get install iproute2)";
  const probe = `${PREFIX}${process.pid}-probe`;
  try {
    ip(["netns", "add", probe]);
    ip(["-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ip(["-n", probe, "link", "set", "v0", "up"]);
    return undefined;
  } catch (err) {
    return `cannot make a network namespace with a veth pair (${err.message}); it takes root, or CAP_SYS_ADMIN and CAP_NET_ADMIN`;
  } finally {
    spawnSync(findIp(), ["netns", "del", probe], { stdio: "ignore" });
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

/** Removes mnist-mh-<pid>-* namespaces whose test process no longer runs. */
function removeStaleNamespaces() {
  for (const line of ip(["netns", "list"]).split("\n")) {
    const name = line.trim().split(/\s+/)[0];
    const match = new RegExp(`^${PREFIX}(\\d+)-`).exec(name || "");
    if (match && Number(match[1]) !== process.pid && !alive(Number(match[1]))) spawnSync(findIp(), ["netns", "del", name], { stdio: "ignore" });
  }
}

/** A process started in a host: its output, waits on it, signals. */
function trackProcess(child, label) {
  let output = "";
  const lineListeners = new Set();
  let partial = "";
  const onData = (chunk) => {
    const text = chunk.toString();
    output += text;
    const lines = (partial + text).split("\n");
    partial = lines.pop();
    for (const line of lines) for (const listener of lineListeners) listener(line);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exited = once(child, "exit").catch(() => {});
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    label,
    pid: child.pid,
    exited,
    running,
    output: () => output,
    /** Calls `listener(line)` for every whole line printed from now on. */
    onLine(listener) {
      lineListeners.add(listener);
      return () => lineListeners.delete(listener);
    },
    /** Resolves once the output after `from` characters matches `pattern`; fails with the output's tail if it never does. */
    async waitFor(pattern, timeoutMs = 30000, from = 0) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(output.slice(from))) {
        if (!running()) throw new Error(`${label} exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}:\n${output.slice(-3000)}`);
        if (Date.now() > deadline) throw new Error(`${label} did not print ${pattern} within ${timeoutMs} ms:\n${output.slice(-3000)}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    /** `signal` (default SIGTERM), SIGKILL after `graceMs`; resolves once it has exited. */
    async stop(signal = "SIGTERM", graceMs = 10000) {
      if (running()) {
        child.kill(signal);
        const timer = setTimeout(() => running() && child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/**
 * A switch namespace with a bridge; addHost() plugs a host namespace into it.
 * Call destroy() (or destroySync() from an exit hook) when done: it stops every
 * process started here and removes every namespace, and with them the veths.
 */
class Network {
  constructor(tag = String(process.pid)) {
    removeStaleNamespaces();
    this.base = `${PREFIX}${tag}`;
    this.switchNs = `${this.base}-sw`;
    this.hosts = new Map();
    this.processes = new Set();
    this.namespaces = [];
    this.addNamespace(this.switchNs);
    ip(["-n", this.switchNs, "link", "add", "br0", "type", "bridge"]);
    ip(["-n", this.switchNs, "link", "set", "br0", "up"]);
  }

  addNamespace(name) {
    ip(["netns", "add", name]);
    this.namespaces.push(name);
    ip(["-n", name, "link", "set", "lo", "up"]);
  }

  /**
   * A host `name` (at most 13 characters) at `cidr` (e.g. "10.77.0.11/24"): a
   * namespace whose eth0 is one end of a veth pair, the other end (p-<name>) a
   * port of the switch's bridge. Returns { name, ns, address }.
   */
  addHost(name, cidr) {
    if (!/^[a-z0-9-]{1,13}$/.test(name)) throw new Error(`host name ${name}: 1-13 of a-z, 0-9, -`);
    const ns = `${this.base}-${name}`;
    const port = `p-${name}`;
    this.addNamespace(ns);
    ip(["-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", this.switchNs]);
    ip(["-n", this.switchNs, "link", "set", port, "master", "br0"]);
    ip(["-n", this.switchNs, "link", "set", port, "up"]);
    ip(["-n", ns, "addr", "add", cidr, "dev", "eth0"]);
    ip(["-n", ns, "link", "set", "eth0", "up"]);
    const host = { name, ns, address: cidr.split("/")[0] };
    this.hosts.set(name, host);
    return host;
  }

  host(name) {
    const host = this.hosts.get(name);
    if (!host) throw new Error(`no host ${name}`);
    return host;
  }

  /** Takes the host's link down on its own side (`ip link set eth0 down` in its namespace). */
  cut(name) {
    ip(["-n", this.host(name).ns, "link", "set", "eth0", "down"]);
  }

  /** Brings the host's link up again; its address and route come back with it. */
  restore(name) {
    ip(["-n", this.host(name).ns, "link", "set", "eth0", "up"]);
  }

  /** Whether the host's eth0 is up, from `ip link`. */
  linkUp(name) {
    return /<[^>]*\bUP\b[^>]*>/.test(ip(["-n", this.host(name).ns, "link", "show", "eth0"]));
  }

  /**
   * Starts `command args` in host `name` (`ip netns exec`, which execs, so the
   * pid is the command's), with the death signal. Returns a tracked process.
   */
  spawn(name, command, args, { env = process.env, cwd, label = `${command} on ${name}` } = {}) {
    const [wrapped, wrappedArgs] = withDeathSignal(findIp(), ["netns", "exec", this.host(name).ns, command, ...args]);
    const child = spawn(wrapped, wrappedArgs, { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
    const tracked = trackProcess(child, label);
    this.processes.add(tracked);
    tracked.exited.then(() => this.processes.delete(tracked));
    return tracked;
  }

  /** Runs `command args` in host `name` to its end: resolves { code, stdout, stderr }. */
  exec(name, command, args, { env = process.env, cwd, timeoutMs = 20000 } = {}) {
    return new Promise((resolve) => {
      execFile(findIp(), ["netns", "exec", this.host(name).ns, command, ...args], { env, cwd, timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
        resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr: stderr || (err ? err.message : "") });
      });
    });
  }

  /** Stops every process started here (SIGTERM, then SIGKILL), then removes the namespaces. */
  async destroy() {
    await Promise.all([...this.processes].map((p) => p.stop("SIGTERM", 5000)));
    this.removeNamespaces();
  }

  /** For an exit hook: SIGKILL to what still runs, namespaces removed, all synchronously. */
  destroySync() {
    for (const p of this.processes) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    this.removeNamespaces();
  }

  removeNamespaces() {
    // Hosts first: removing a namespace whose processes have exited destroys its veth, and the peer with it.
    for (const name of this.namespaces.splice(0).reverse()) {
      try {
        execFileSync(findIp(), ["netns", "del", name], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
  }

  /** Names of this network's namespaces that exist, from `ip netns list`. */
  existingNamespaces() {
    return ip(["netns", "list"])
      .split("\n")
      .map((line) => line.trim().split(/\s+/)[0])
      .filter((name) => name && name.startsWith(`${this.base}-`));
  }
}

module.exports = { Network, netnsProblem, findIp };
