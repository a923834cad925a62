"use strict";
// `npm start` builds first (scripts/build-if-stale.js): in a copy of the
// repository it builds once, then not again until an input's content changes.
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("child_process");
const { once } = require("events");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { REPO_ROOT } = require("../dist/scripts/broker.js");

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "mnist-start-test-"));

/** Runs a node script to its end: { code, output, ms }. */
async function runScript(file, args, cwd) {
  const started = Date.now();
  const child = spawn(process.execPath, [file, ...args], { cwd, env: process.env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const [code] = await once(child, "exit");
  return { code, output, ms: Date.now() - started };
}

describe("npm start builds only what changed", { timeout: 180000 }, () => {
  it("runs scripts/build-if-stale.js before the launcher", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
    assert.equal(pkg.scripts.start, "node scripts/build-if-stale.js && node dist/scripts/start.js");
  });

  it("builds a copy of the repository once, then not again until an input's content changes", async () => {
    // A copy, so the test never rebuilds the dist/ other tests are running from.
    const copy = tempDir();
    try {
      for (const entry of ["nodes", "scripts", "icons", "flows", "tsconfig.json", "package.json"]) {
        fs.cpSync(path.join(REPO_ROOT, entry), path.join(copy, entry), { recursive: true });
      }
      fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(copy, "node_modules"), "dir");
      const script = path.join(copy, "scripts", "build-if-stale.js");
      const check = () => runScript(script, ["--check"], copy);

      const none = await check();
      assert.equal(none.code, 1);
      assert.match(none.output, /^stale: dist\/scripts\/start\.js is missing/);
      const first = await runScript(script, [], copy);
      assert.equal(first.code, 0, first.output);
      assert.match(first.output, /Build: dist\/scripts\/start\.js is missing: building \(npm run build\)/);
      for (const built of ["dist/scripts/start.js", "dist/nodes/mnist-infer/mnist-infer.js", "dist/nodes/mnist-result/locales/zh-CN/mnist-result.json", "examples/mnist-chain.json"]) {
        assert.ok(fs.existsSync(path.join(copy, built)), built);
      }

      const startJs = path.join(copy, "dist", "scripts", "start.js");
      const builtAt = fs.statSync(startJs).mtimeMs;
      const second = await runScript(script, [], copy);
      assert.equal(second.code, 0, second.output);
      assert.equal(second.output.trim(), "Build: dist/ is up to date with the sources, not rebuilt.");
      assert.equal(fs.statSync(startJs).mtimeMs, builtAt, "nothing was compiled");
      assert.ok(second.ms < 3000, `the check took ${second.ms} ms`);

      // A new time alone is not a change; new contents are, in any kind of input.
      const ts = path.join(copy, "nodes", "mnist-result", "mnist-result.ts");
      const later = new Date(Date.now() + 60000);
      fs.utimesSync(ts, later, later);
      assert.equal((await check()).code, 0);
      fs.appendFileSync(ts, "// edited\n");
      const edited = await check();
      assert.equal(edited.code, 1);
      assert.match(edited.output, /^stale: nodes\/mnist-result\/mnist-result\.ts changed since the last build/);
      fs.writeFileSync(ts, fs.readFileSync(path.join(REPO_ROOT, "nodes", "mnist-result", "mnist-result.ts")));
      assert.equal((await check()).code, 0, "back to what was built");
      for (const input of ["nodes/mnist-infer/locales/zh-CN/mnist-infer.json", "nodes/mnist-image-source/mnist-image-source.html", "icons/mnist-infer.svg", "flows/mnist-infer.json", "tsconfig.json", "scripts/broker.ts"]) {
        const file = path.join(copy, input);
        const original = fs.readFileSync(file);
        fs.appendFileSync(file, "\n");
        const stale = await check();
        fs.writeFileSync(file, original);
        assert.equal(stale.code, 1, input);
        assert.match(stale.output, new RegExp(`^stale: ${input.replace(/[.]/g, "\\.")} changed`), input);
      }
      fs.rmSync(startJs);
      assert.match((await check()).output, /^stale: dist\/scripts\/start\.js is missing/);

      // After a plain `npm run build` (npm ci runs one) there is no record, but the
      // build came after every change: the next npm start does not build again.
      fs.rmSync(path.join(copy, "dist", ".build-inputs.json"));
      const build = spawn("npm", ["run", "build", "--silent"], { cwd: copy, stdio: "ignore" });
      assert.equal((await once(build, "exit"))[0], 0, "npm run build in the copy");
      const afterBuild = await runScript(script, [], copy);
      assert.equal(afterBuild.output.trim(), "Build: dist/ is up to date with the sources, not rebuilt.");
      assert.ok(fs.existsSync(path.join(copy, "dist", ".build-inputs.json")), "the record is written then");
      // Without a record, an input changed after that build is a reason to build.
      fs.rmSync(path.join(copy, "dist", ".build-inputs.json"));
      fs.utimesSync(ts, later, later);
      assert.match((await check()).output, /^stale: no record in dist\/ of an earlier build/);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});
