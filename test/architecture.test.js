"use strict";
// The shape of the source tree (docs/architecture.md): no import circles in
// nodes/ and scripts/, no file under nodes/ over 300 lines, nodes/shared/
// holding only what two or more nodes use, and the wire contract depending on
// nothing. Reads the TypeScript sources with TypeScript's own import scanner;
// needs no build.
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const ts = require("typescript");

const ROOT = path.join(__dirname, "..");
const MAX_NODE_FILE_LINES = 300;
const SHARED = "nodes/shared";

/** Repository-relative paths of the .ts files under `dir`. */
function sources(dir) {
  const found = [];
  for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const relative = `${dir}/${entry.name}`;
    if (entry.isDirectory()) found.push(...sources(relative));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) found.push(relative);
  }
  return found.sort();
}

/** Every module specifier a file names: import and export ... from, import type, import(), require(). */
function specifiers(file) {
  const info = ts.preProcessFile(fs.readFileSync(path.join(ROOT, file), "utf8"), true, true);
  return info.importedFiles.map((imported) => imported.fileName);
}

/** The repository file a relative specifier names, or undefined for a package or a file outside the tree. */
function resolve(from, specifier) {
  if (!specifier.startsWith(".")) return undefined;
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier)).replace(/\.js$/, "");
  return [`${base}.ts`, `${base}/index.ts`].find((candidate) => fs.existsSync(path.join(ROOT, candidate)));
}

const FILES = [...sources("nodes"), ...sources("scripts")];
/** file -> the repository files it imports. */
const GRAPH = new Map(FILES.map((file) => [file, [...new Set(specifiers(file).map((s) => resolve(file, s)).filter(Boolean))]]));

/** The import circles: one cycle (as a path a → b → … → a) per strongly connected component (Tarjan). */
function cycles(graph) {
  let counter = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  function visit(file) {
    index.set(file, counter);
    low.set(file, counter++);
    stack.push(file);
    onStack.add(file);
    for (const next of graph.get(file) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(file, Math.min(low.get(file), low.get(next)));
      } else if (onStack.has(next)) {
        low.set(file, Math.min(low.get(file), index.get(next)));
      }
    }
    if (low.get(file) !== index.get(file)) return;
    const component = [];
    let member;
    do {
      member = stack.pop();
      onStack.delete(member);
      component.push(member);
    } while (member !== file);
    if (component.length > 1 || (graph.get(file) ?? []).includes(file)) found.push(cycleThrough(graph, new Set(component), file));
  }
  for (const file of graph.keys()) if (!index.has(file)) visit(file);
  return found;
}

/** The shortest path from `start` back to itself inside `component` (breadth first). */
function cycleThrough(graph, component, start) {
  const previous = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift();
    for (const next of graph.get(file) ?? []) {
      if (!component.has(next)) continue;
      if (next === start) {
        const trail = [file];
        while (trail[0] !== start) trail.unshift(previous.get(trail[0]));
        return [...trail, start];
      }
      if (!previous.has(next)) {
        previous.set(next, file);
        queue.push(next);
      }
    }
  }
  return [start, start];
}

/** "nodes/mnist-infer/image/png.ts" -> "mnist-infer"; undefined outside nodes/. */
function nodeFolder(file) {
  const [top, folder] = file.split("/");
  return top === "nodes" ? folder : undefined;
}

describe("architecture", () => {
  it("finds the sources it checks", () => {
    assert.ok(FILES.includes("nodes/shared/contract.ts") && FILES.includes("scripts/broker.ts"), FILES.join("\n"));
  });

  it("has no import circle in nodes/ or scripts/", () => {
    const found = cycles(GRAPH);
    assert.deepEqual(found.map((cycle) => cycle.join(" → ")), [], `import circles:\n${found.map((cycle) => `  ${cycle.join(" → ")}`).join("\n")}`);
  });

  it(`has no source file under nodes/ over ${MAX_NODE_FILE_LINES} lines`, () => {
    const long = FILES.filter((file) => file.startsWith("nodes/"))
      .map((file) => ({ file, lines: fs.readFileSync(path.join(ROOT, file), "utf8").split("\n").length - 1 }))
      .filter(({ lines }) => lines > MAX_NODE_FILE_LINES)
      .map(({ file, lines }) => `${file}: ${lines} lines`);
    assert.deepEqual(long, [], `split these by what they do:\n  ${long.join("\n  ")}`);
  });

  it("keeps in nodes/shared/ only what two or more nodes use", () => {
    // Who uses a shared file: the node folders whose files import it, directly or through other shared files.
    const users = new Map(FILES.filter((file) => file.startsWith(`${SHARED}/`)).map((file) => [file, new Set()]));
    for (const [file, imports] of GRAPH) {
      const folder = nodeFolder(file);
      if (!folder || folder === "shared") continue;
      const seen = new Set();
      const pending = imports.filter((target) => users.has(target));
      while (pending.length > 0) {
        const target = pending.pop();
        if (seen.has(target)) continue;
        seen.add(target);
        users.get(target).add(folder);
        pending.push(...GRAPH.get(target).filter((next) => users.has(next)));
      }
    }
    const lonely = [...users].filter(([, folders]) => folders.size < 2).map(([file, folders]) => `${file}: used by ${[...folders].join(", ") || "no node"}`);
    assert.deepEqual(lonely, [], `move these beside the one node that uses them (or delete them):\n  ${lonely.join("\n  ")}`);
  });

  it("keeps the wire contract (nodes/shared/contract.ts) free of imports", () => {
    assert.deepEqual(specifiers(`${SHARED}/contract.ts`), [], "the contract defines what travels on the wire itself, and depends on nothing");
  });

  it("reports a circle by its path (checked on a made-up graph)", () => {
    const graph = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts"]],
      ["c.ts", ["a.ts", "d.ts"]],
      ["d.ts", []],
      ["e.ts", ["e.ts"]],
    ]);
    assert.deepEqual(cycles(graph).map((cycle) => cycle.join(" → ")).sort(), ["a.ts → b.ts → c.ts → a.ts", "e.ts → e.ts"]);
  });
});
