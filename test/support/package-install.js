// The package as users get it: the tarball `npm pack` makes, installed into a
// Node-RED user folder the way the palette manager installs an uploaded one
// (@node-red/registry/lib/installer.js): the file goes to <userDir>/nodes/ and
// `npm install <its args> -- <that file>` runs in the user folder.
"use strict";
const { spawn, spawnSync } = require("child_process");
const fs = require("fs");
const path = require("path");
const { REPO_ROOT } = require("../../dist/scripts/broker.js");

/** The palette manager's arguments for `npm install` (Node-RED 4.1 and 5). */
const PALETTE_NPM_ARGS = ["--no-audit", "--no-update-notifier", "--no-fund", "--save", "--save-prefix=~", "--omit=dev", "--engine-strict"];

/**
 * The npm Node-RED's palette manager runs, as [node, npm-cli.js]: the one
 * @node-red/registry resolves (its own dependency: npm 10 in Node-RED 4.1).
 */
function paletteNpm() {
  const registry = path.dirname(require.resolve("@node-red/registry/package.json", { paths: [path.dirname(require.resolve("node-red/package.json"))] }));
  // As installer.js finds it: npm/package.json (npm exports no other path), then bin/npm-cli.js beside it.
  return [process.execPath, path.join(path.dirname(require.resolve("npm/package.json", { paths: [registry] })), "bin", "npm-cli.js")];
}

/**
 * The npm a user types, as [its path]: the first on PATH outside this
 * repository (`npm test` puts node_modules/.bin, with Node-RED's npm, first).
 */
function userNpm() {
  for (const dir of (process.env.PATH || "").split(path.delimiter)) {
    if (!dir || path.resolve(dir).startsWith(REPO_ROOT + path.sep) || /node-gyp-bin/.test(dir)) continue;
    const file = path.join(dir, process.platform === "win32" ? "npm.cmd" : "npm");
    if (fs.existsSync(file)) return [file];
  }
  throw new Error("no npm on PATH");
}

/** The package.json Node-RED writes into a new user folder. */
const USER_DIR_PACKAGE = { name: "node-red-project", description: "A Node-RED Project", version: "0.0.1", private: true };

/**
 * The environment of a user's shell: this one without the npm_* variables an
 * `npm test` run sets (npm reads npm_config_* as its configuration) and without
 * ONNXRUNTIME_NODE_INSTALL (.ci/run exports it), plus `extra`.
 */
function userEnv(extra = {}) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && !/^ONNXRUNTIME_NODE_INSTALL/i.test(key)) env[key] = value;
  }
  return { ...env, ...extra };
}

/** Runs a command; resolves { code, output, stdout, ms } (output: stdout and stderr together). */
function run(command, args, { cwd, env = userEnv(), timeoutMs = 120000 } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let stdout = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => (output += chunk));
    const timer = setTimeout(() => {
      output += `\n(killed after ${timeoutMs / 1000} s)`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (err) => (output += `\n${err.message}`));
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output, stdout, ms: Date.now() - started });
    });
  });
}

/** What `npm pack` would put in the tarball: [{ path, size }], without building. */
function packedFiles() {
  const result = spawnSync(userNpm()[0], ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: REPO_ROOT, env: userEnv(), encoding: "utf8" });
  if (result.status !== 0) throw new Error(`npm pack --dry-run failed:\n${result.stderr}`);
  return JSON.parse(result.stdout)[0].files;
}

/**
 * Packs the repository (as built: run `npm run build` first) into `destination`
 * and returns the tarball's path.
 */
async function packTarball(destination) {
  const packed = await run(userNpm()[0], ["pack", "--json", "--ignore-scripts", "--pack-destination", destination], { cwd: REPO_ROOT });
  if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.output}`);
  const [{ filename }] = JSON.parse(packed.stdout);
  return path.join(destination, filename);
}

/** A fresh Node-RED user folder: just the package.json Node-RED writes. */
function newUserDir(userDir) {
  fs.mkdirSync(path.join(userDir, "nodes"), { recursive: true });
  fs.writeFileSync(path.join(userDir, "package.json"), JSON.stringify(USER_DIR_PACKAGE, null, 2) + "\n");
  return userDir;
}

/**
 * Installs `tarball` into `userDir` as the palette manager does with an
 * uploaded file. `npm` is [command, ...leading args]: by default the palette
 * manager's own npm, or e.g. userNpm() or [node22, ".../npm-cli.js"];
 * `extraArgs` go before the `--`. Resolves
 * { code, output, ms }, with --prefer-offline so the npm cache serves what it has.
 */
function paletteInstall({ userDir, tarball, npm = paletteNpm(), extraArgs = [], env = userEnv(), timeoutMs }) {
  const target = path.join(userDir, "nodes", path.basename(tarball));
  fs.copyFileSync(tarball, target);
  const [command, ...lead] = npm;
  return run(command, [...lead, "install", ...PALETTE_NPM_ARGS, "--prefer-offline", ...extraArgs, "--", target], { cwd: userDir, env, timeoutMs });
}

/** Megabytes a folder takes on disk (`du -sm`), or undefined where du is missing. */
function diskMegabytes(folder) {
  const result = spawnSync("du", ["-sm", folder], { encoding: "utf8" });
  return result.status === 0 ? Number(result.stdout.split(/\s/)[0]) : undefined;
}

module.exports = { PALETTE_NPM_ARGS, paletteNpm, userNpm, userEnv, run, packedFiles, packTarball, newUserDir, paletteInstall, diskMegabytes };
