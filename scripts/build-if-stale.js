// `npm start` runs this before the launcher: `npm run build` only when what the
// build reads changed since the last build made here, so a start with dist/ up
// to date skips the TypeScript compile (most of the start time). The record is
// dist/.build-inputs.json: the SHA-256 of every input, written after a build
// succeeds. Contents are compared, not times, so a checkout, a copy that keeps
// old times or an edit within the same second are all seen.
//   node scripts/build-if-stale.js          build if needed
//   node scripts/build-if-stale.js --check  only say; exit 0 up to date, 1 stale
"use strict";
const { spawnSync } = require("child_process");
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const RECORD = path.join("dist", ".build-inputs.json");

/** Files under `dir` (relative to root), recursively, that `keep` accepts. */
function filesUnder(root, dir, keep) {
  const found = [];
  const walk = (relative) => {
    let entries;
    try {
      entries = fs.readdirSync(path.join(root, relative), { withFileTypes: true });
    } catch {
      return; // a folder that is not there has no inputs
    }
    for (const entry of entries) {
      const child = path.join(relative, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (keep(child)) found.push(child);
    }
  };
  walk(dir);
  return found;
}

/**
 * What `npm run build` reads: the TypeScript that tsconfig.json includes, what
 * scripts/copy-assets.js copies (each node's .html and locales/, icons/, the
 * flows), the two build configurations and the copy script itself.
 */
function buildInputs(root = ROOT) {
  const files = [
    ...filesUnder(root, "nodes", (file) => file.endsWith(".ts") || file.endsWith(".html") || file.split(path.sep).includes("locales")),
    ...filesUnder(root, "scripts", (file) => file.endsWith(".ts")),
    ...filesUnder(root, "icons", () => true),
    ...filesUnder(root, "flows", (file) => file.endsWith(".json")),
    ...["tsconfig.json", "package.json", path.join("scripts", "copy-assets.js")].filter((file) => fs.existsSync(path.join(root, file))),
  ];
  return files.map((file) => file.split(path.sep).join("/")).sort();
}

/** The TypeScript compiler's version: a new one may emit differently. */
function compilerVersion(root) {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, "node_modules", "typescript", "package.json"), "utf8")).version;
  } catch {
    return "none";
  }
}

function fingerprint(root = ROOT) {
  const files = {};
  for (const file of buildInputs(root)) files[file] = crypto.createHash("sha256").update(fs.readFileSync(path.join(root, file))).digest("hex");
  return { typescript: compilerVersion(root), files };
}

/** Outputs `npm start` cannot run without: when one is missing, a build is due whatever the record says. */
function missingOutputs(root, inputs) {
  const expected = ["dist/scripts/start.js", "examples"];
  for (const file of inputs) {
    if (/^(nodes|scripts)\/.*\.ts$/.test(file) && !file.endsWith(".d.ts")) expected.push(`dist/${file.replace(/\.ts$/, ".js")}`);
    else if (/^nodes\/[^/]+\/[^/]+\.html$/.test(file)) expected.push(`dist/${file}`);
  }
  return expected.filter((file) => !fs.existsSync(path.join(root, file)));
}

/**
 * Whether a whole `npm run build` (npm ci runs one) finished after every input
 * was last changed: copy-assets.js writes examples/ last, and only after tsc
 * succeeded, so a failed compile never counts.
 */
function builtAfterInputs(root, inputs) {
  let finished;
  try {
    const examples = path.join(root, "examples");
    finished = Math.min(...fs.readdirSync(examples).map((file) => fs.statSync(path.join(examples, file)).mtimeMs));
  } catch {
    return false;
  }
  return Number.isFinite(finished) && inputs.every((file) => fs.statSync(path.join(root, file)).mtimeMs < finished);
}

/** Why a build is due (one line), or undefined when dist/ was built from exactly these inputs. */
function staleReason(root = ROOT, current = fingerprint(root)) {
  const missing = missingOutputs(root, Object.keys(current.files));
  if (missing.length) return `${missing[0]} is missing`;
  let built;
  try {
    built = JSON.parse(fs.readFileSync(path.join(root, RECORD), "utf8"));
  } catch {
    // No record: fresh if the last `npm run build` came after every change.
    return builtAfterInputs(root, Object.keys(current.files)) ? undefined : "no record in dist/ of an earlier build";
  }
  if (built.typescript !== current.typescript) return `TypeScript changed (${built.typescript} -> ${current.typescript})`;
  const changed = Object.keys(current.files).filter((file) => built.files?.[file] !== current.files[file]);
  const removed = Object.keys(built.files ?? {}).filter((file) => !(file in current.files));
  const all = [...changed, ...removed.map((file) => `${file} (removed)`)];
  if (!all.length) return undefined;
  return `${all.slice(0, 3).join(", ")}${all.length > 3 ? ` and ${all.length - 3} more` : ""} changed since the last build`;
}

function main(argv) {
  const current = fingerprint(ROOT);
  const reason = staleReason(ROOT, current);
  if (argv.includes("--check")) {
    console.log(reason ? `stale: ${reason}` : "up to date");
    return reason ? 1 : 0;
  }
  if (!reason) {
    if (!fs.existsSync(path.join(ROOT, RECORD))) fs.writeFileSync(path.join(ROOT, RECORD), `${JSON.stringify(current, null, 1)}\n`);
    console.log("Build: dist/ is up to date with the sources, not rebuilt.");
    return 0;
  }
  console.log(`Build: ${reason}: building (npm run build)...`);
  const npm = process.env.npm_execpath;
  // Under npm, its own CLI with this Node; run by hand, the npm on PATH.
  const [command, args] = npm ? [process.execPath, [npm, "run", "build", "--silent"]] : ["npm", ["run", "build", "--silent"]];
  const build = spawnSync(command, args, { cwd: ROOT, stdio: "inherit" });
  if (build.status !== 0) {
    // No record: the next start builds again and shows the errors again.
    fs.rmSync(path.join(ROOT, RECORD), { force: true });
    console.error("Build failed: fix the errors above, then npm start again.");
    return build.status || 1;
  }
  // The inputs as they were before the build: an edit made during it is built next time.
  fs.writeFileSync(path.join(ROOT, RECORD), `${JSON.stringify(current, null, 1)}\n`);
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));

module.exports = { buildInputs, fingerprint, staleReason };
