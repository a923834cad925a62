"use strict";
// The package's side of the Flow Library's scorecard (the rules node-red-dev
// validate checks: P01-P08, N01-N02, D01-D03), checked offline from
// package.json, the lockfile and what `npm pack` would ship. The rules that need
// the Flow Library's catalogue (P08 similar names, N01 unique node types) or
// npm's latest versions (P06, P07, D03) are checked against what is known here.
const { describe, it, before } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");
const { REPO_ROOT } = require("../dist/scripts/broker.js");
const { packedFiles } = require("./support/package-install");

const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
const lock = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package-lock.json"), "utf8"));
const GITHUB = "https://github.com/node-red-contrib-mnist/node-red-contrib-mnist";

/** node-red-dev 0.1.6, src/libs/checkdeps.js: D01 allows at most this many dependencies. */
const MAX_DEPENDENCIES = 6;
/** node-red-dev 0.1.6, src/badpackages.json: packages (and versions) known to break Node-RED (D02). */
const BAD_PACKAGES = { "agent-base": "<6.0.0" };
/** Node-RED 5 (npm's `latest` of node-red) declares engines.node ">=22.9"; P07 takes its minimum. */
const NODE_RED_LATEST_MIN_NODE = "22.9.0";

/** [major, minor, patch] of "1.2.3" (a leading "v" allowed). */
function parts(version) {
  const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  assert.ok(match, `${version} is a version`);
  return match.slice(1).map(Number);
}
function compare(a, b) {
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}
/** The x.y.z of a ">=x.y[.z]" range; these rules are met only with such plain lower bounds. */
function lowerBound(range) {
  const match = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(String(range).trim());
  assert.ok(match, `"${range}" is a plain lower bound (>=x.y.z)`);
  return `${match[1]}.${match[2] ?? 0}.${match[3] ?? 0}`;
}
/** Whether `version` is in `range`, for "<x.y.z" ranges (all the bad-package list uses). */
function belowRange(version, range) {
  const match = /^<\s*(\S+)$/.exec(range);
  assert.ok(match, `"${range}" is an upper bound (<x.y.z)`);
  return compare(version, match[1]) < 0;
}

/** The node types each of the package's editor files registers, with their categories. */
function registeredTypes() {
  const types = [];
  for (const file of Object.values(pkg["node-red"].nodes)) {
    const html = fs.readFileSync(path.join(REPO_ROOT, file.replace(/\.js$/, ".html")), "utf8");
    for (const match of html.matchAll(/RED\.nodes\.registerType\(\s*["']([^"']+)["']\s*,\s*\{[^]*?category:\s*["']([^"']+)["']/g)) {
      types.push({ type: match[1], category: match[2] });
    }
  }
  return types;
}

describe("the package, as the Flow Library scores it", () => {
  let files;

  before(() => {
    for (const file of Object.values(pkg["node-red"].nodes)) {
      assert.ok(fs.existsSync(path.join(REPO_ROOT, file)), `${file} is built (npm run build)`);
    }
    files = packedFiles().map((file) => file.path);
  });

  it("P01, P03: a licence, the repository, its issues and a homepage", () => {
    assert.equal(pkg.license, "MIT");
    assert.ok(files.includes("LICENSE"));
    assert.equal(pkg.repository.type, "git");
    assert.equal(pkg.repository.url, `git+${GITHUB}.git`);
    assert.equal(pkg.bugs.url, `${GITHUB}/issues`);
    assert.ok(pkg.homepage.startsWith(GITHUB), pkg.homepage);
  });

  it("P04: a node-red-contrib- name (an unscoped name starting node-red must use that prefix)", () => {
    assert.match(pkg.name, /^node-red-contrib-[a-z0-9-]+$/);
  });

  it("P05: node-red among the keywords", () => {
    assert.ok(pkg.keywords.includes("node-red"), JSON.stringify(pkg.keywords));
  });

  it("P06, P07: the Node-RED and Node versions it needs, Node-RED 5's included", () => {
    const nodeRed = lowerBound(pkg["node-red"].version);
    assert.ok(compare(nodeRed, "4.0.0") >= 0 && compare(nodeRed, "5.0.0") <= 0, `node-red.version ${pkg["node-red"].version} admits Node-RED 5`);
    const installed = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "node_modules", "node-red", "package.json"), "utf8")).version;
    assert.ok(compare(installed, nodeRed) >= 0, `the Node-RED the tests run on (${installed}) is one it declares`);
    const node = lowerBound(pkg.engines.node);
    assert.ok(compare(NODE_RED_LATEST_MIN_NODE, node) >= 0, `engines.node ${pkg.engines.node} admits Node ${NODE_RED_LATEST_MIN_NODE}, Node-RED 5's minimum`);
    assert.ok(compare(process.version, node) >= 0, `engines.node ${pkg.engines.node} admits the Node the tests run on (${process.version})`);
    // It must not claim Node versions its dependencies refuse (npm --engine-strict, as the palette manager installs, would fail).
    for (const name of [...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies ?? {})]) {
      const needs = lock.packages[`node_modules/${name}`].engines?.node;
      if (needs) assert.ok(compare(node, lowerBound(needs.split("||").map((r) => r.trim()).find((r) => r.startsWith(">=")) ?? needs)) >= 0, `${name} needs Node ${needs}`);
    }
  });

  it("N02: an example flow in examples/ for every node type the package registers", () => {
    const types = registeredTypes();
    assert.deepEqual(types.map((t) => t.type).sort(), ["mnist-image-source", "mnist-infer", "mnist-result"]);
    assert.ok(types.every((t) => t.category !== "config"), "no config nodes: every type needs an example");
    const examples = files.filter((file) => /^examples\/.+\.json$/.test(file));
    assert.ok(examples.length > 0, "examples/ is in the tarball");
    const used = new Set(examples.flatMap((file) => JSON.parse(fs.readFileSync(path.join(REPO_ROOT, file), "utf8")).map((node) => node.type)));
    for (const { type } of types) assert.ok(used.has(type), `an example uses ${type}`);
  });

  it(`D01: at most ${MAX_DEPENDENCIES} dependencies`, () => {
    const count = Object.keys(pkg.dependencies).length;
    assert.ok(count <= MAX_DEPENDENCIES, `${count} dependencies`);
  });

  it("D02: no package from node-red-dev's list of known-bad ones among what installs with it", () => {
    const found = [];
    for (const [where, entry] of Object.entries(lock.packages)) {
      if (!where || entry.dev) continue;
      const name = where.slice(where.lastIndexOf("node_modules/") + "node_modules/".length);
      if (BAD_PACKAGES[name] && belowRange(entry.version, BAD_PACKAGES[name])) found.push(`${name}@${entry.version}`);
    }
    assert.deepEqual(found, []);
  });

  it("onnxruntime-node only optional, on the same onnxruntime-common as onnxruntime-web", () => {
    assert.equal(pkg.dependencies["onnxruntime-node"], undefined);
    assert.ok(pkg.optionalDependencies["onnxruntime-node"]);
    assert.ok(pkg.dependencies["onnxruntime-web"]);
    const common = (name) => lock.packages[`node_modules/${name}`].dependencies["onnxruntime-common"];
    assert.equal(common("onnxruntime-node"), common("onnxruntime-web"));
    const copies = Object.keys(lock.packages).filter((where) => where.endsWith("node_modules/onnxruntime-common"));
    assert.deepEqual(copies, ["node_modules/onnxruntime-common"], "one onnxruntime-common, shared");
    assert.equal(lock.packages["node_modules/onnxruntime-common"].version, common("onnxruntime-web"));
  });

  it("install scripts: every dependency's is decided in allowScripts, onnxruntime-node's download denied", () => {
    const withScripts = [...new Set(Object.entries(lock.packages).filter(([where, entry]) => where && entry.hasInstallScript).map(([where]) => where.slice(where.lastIndexOf("node_modules/") + 13)))];
    for (const name of withScripts) assert.equal(typeof pkg.allowScripts?.[name], "boolean", `allowScripts decides ${name}`);
    assert.equal(pkg.allowScripts["onnxruntime-node"], false);
    const npmrc = path.join(REPO_ROOT, ".npmrc");
    if (fs.existsSync(npmrc)) assert.doesNotMatch(fs.readFileSync(npmrc, "utf8"), /onnxruntime/, "no package's own setting in .npmrc (npm 12: EUNKNOWNCONFIG)");
  });

  it("the tarball: the built nodes with their editor files, the model, the samples, examples; no tests, docs, sources or tarballs", () => {
    for (const file of Object.values(pkg["node-red"].nodes)) {
      assert.ok(files.includes(file), file);
      assert.ok(files.includes(file.replace(/\.js$/, ".html")), file.replace(/\.js$/, ".html"));
    }
    for (const file of ["README.md", "LICENSE", "package.json", "models/mnist-cnn.onnx", "models/samples/labels.txt"]) assert.ok(files.includes(file), file);
    assert.equal(files.filter((file) => /^models\/samples\/\d+\.png$/.test(file)).length, 500);
    const unwanted = files.filter((file) => /\.tgz$|\.map$|\.ts$|^test\/|^docs\/|^nodes\/|^scripts\/|^node_modules\/|^\.|\/\./.test(file));
    assert.deepEqual(unwanted, []);
  });

  it("README images are absolute URLs (npm and flows.nodered.org show the README without the repository)", () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
    const images = [...readme.matchAll(/!\[[^\]]*\]\(([^)\s]+)[^)]*\)/g), ...readme.matchAll(/<img[^>]*\ssrc=["']([^"']+)["']/g)].map((m) => m[1]);
    assert.ok(images.length > 0, "the README shows the screenshots");
    for (const url of images) {
      assert.match(url, /^https:\/\//, url);
      const local = url.match(/^https:\/\/raw\.githubusercontent\.com\/node-red-contrib-mnist\/node-red-contrib-mnist\/main\/(.+)$/);
      assert.ok(local, `${url} is the repository's raw file on main`);
      assert.ok(fs.existsSync(path.join(REPO_ROOT, local[1])), `${local[1]} exists in the repository`);
    }
  });
});
