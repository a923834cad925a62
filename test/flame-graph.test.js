"use strict";
// The bench's flame graphs (scripts/bench/flame-graph.ts, issue #16): checked
// on a made-up profile whose stacks and times are known, then on a real
// `node --cpu-prof` profile of a small busy script.
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const { flameGraphSvg, writeFlameGraphs } = require("../dist/scripts/bench/flame-graph.js");

const CLI = path.join(__dirname, "..", "dist", "scripts", "bench", "flame-graph.js");
const GRAPH_WIDTH = 1200 - 2 * 10; // default width less the padding either side

const frame = (id, functionName, url, lineNumber, children) => ({
  id,
  callFrame: { functionName, scriptId: "0", url, lineNumber, columnNumber: url ? 4 : -1 },
  hitCount: 0,
  ...(children ? { children } : {}),
});

/**
 * 200 samples of 1 ms: 100 idle, so 100 ms busy. heavy 75 ms, reached
 * through two V8 nodes (two call sites in main); main 4 ms itself, "a<b>&c"
 * 10 ms, tiny 1 ms; (program) 5 ms, (garbage collector) 5 ms.
 */
function syntheticProfile() {
  const nodes = [
    frame(1, "(root)", "", -1, [2, 3, 4, 5]),
    frame(2, "(program)", "", -1),
    frame(3, "(idle)", "", -1),
    frame(4, "(garbage collector)", "", -1),
    frame(5, "main", "file:///app/main.js", 0, [6, 7, 8, 9]),
    frame(6, "heavy", "file:///app/lib.js", 10),
    frame(7, "heavy", "file:///app/lib.js", 10),
    frame(8, `a<b>&c"'`, "file:///app/main.js", 20),
    frame(9, "tiny", "file:///app/main.js", 30),
  ];
  const counts = { 2: 5, 3: 100, 4: 5, 5: 4, 6: 40, 7: 35, 8: 10, 9: 1 };
  // Interleaved, as a sampler would see them.
  const samples = [];
  for (let round = 0; samples.length < 200; round++) {
    for (const [id, count] of Object.entries(counts)) if (round < count) samples.push(Number(id));
  }
  return { nodes, startTime: 0, endTime: 200000, samples, timeDeltas: samples.map(() => 1000) };
}

/** Every frame drawn: its tooltip and rect geometry. */
function frames(svg) {
  const found = [];
  const pattern = /<g><title>([^<]*)<\/title><rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"/g;
  for (let match; (match = pattern.exec(svg)); ) found.push({ title: match[1], x: Number(match[2]), y: Number(match[3]), width: Number(match[4]) });
  return found;
}

function only(list, prefix) {
  const hits = list.filter((f) => f.title.startsWith(prefix));
  assert.equal(hits.length, 1, `one frame titled "${prefix}…", got ${hits.length}:\n${list.map((f) => f.title).join("\n")}`);
  return hits[0];
}

/** A small well-formedness check: one <svg> root, tags balanced, no stray < > or bare & in text or attributes. */
function assertWellFormed(svg) {
  assert.ok(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\""), svg.slice(0, 80));
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  assert.doesNotMatch(svg, /<script|on\w+="/i, "no scripts");
  const stack = [];
  const tag = /<(\/?)([a-zA-Z]+)((?:\s+[\w:-]+="[^"<>]*")*)\s*(\/?)>/g;
  let last = 0;
  let roots = 0;
  for (let match; (match = tag.exec(svg)); last = tag.lastIndex) {
    const between = svg.slice(last, match.index);
    assert.doesNotMatch(between, /[<>]|&(?!(amp|lt|gt|quot|#39);)/, `stray markup before ${match[0]}: ${JSON.stringify(between)}`);
    for (const [, value] of match[3].matchAll(/="([^"]*)"/g)) assert.doesNotMatch(value, /&(?!(amp|lt|gt|quot|#39);)/);
    const [, closing, name, , selfClosing] = match;
    if (closing) assert.equal(stack.pop(), name, `</${name}> closes the open tag`);
    else if (!selfClosing) {
      if (stack.length === 0) roots++;
      stack.push(name);
    }
  }
  assert.equal(svg.slice(last).trim(), "", "nothing after the last tag");
  assert.deepEqual(stack, [], "every tag closed");
  assert.equal(roots, 1, "one root element");
}

describe("flame graph", () => {
  const svg = flameGraphSvg(syntheticProfile(), { title: "made up <profile> & co" });
  const drawn = frames(svg);

  it("draws a well-formed static SVG", () => {
    assertWellFormed(svg);
  });

  it("makes each frame as wide as its share of busy time, with (idle) left out", () => {
    const all = only(drawn, "all busy time");
    assert.equal(all.width, GRAPH_WIDTH);
    assert.match(all.title, /— 100\.0% \(100 ms\)$/);
    assert.match(svg, /100 ms busy in 100 samples/);
    assert.ok(!drawn.some((f) => f.title.includes("(idle)")), "no (idle) frame");
    const heavy = only(drawn, "heavy");
    assert.equal(heavy.title, "heavy app/lib.js:11 — 75.0% (75.0 ms)");
    assert.ok(Math.abs(heavy.width - 0.75 * GRAPH_WIDTH) < 0.05, `heavy is ${heavy.width} px wide`);
    const main = only(drawn, "main");
    assert.ok(Math.abs(main.width - 0.9 * GRAPH_WIDTH) < 0.05, `main (90 ms with its callees) is ${main.width} px wide`);
    assert.ok(Math.abs(only(drawn, "(program)").width - 0.05 * GRAPH_WIDTH) < 0.05);
  });

  it("merges identical stacks into one frame", () => {
    // heavy came from two V8 nodes (two call sites); one frame of 75 ms.
    assert.equal(drawn.filter((f) => f.title.startsWith("heavy")).length, 1);
  });

  it("puts callers below callees and siblings in name order", () => {
    const [all, main, heavy] = [only(drawn, "all busy time"), only(drawn, "main"), only(drawn, "heavy")];
    assert.ok(all.y > main.y && main.y > heavy.y, "the root at the bottom");
    assert.equal(heavy.y, only(drawn, "tiny").y);
    const order = ["a&lt;b&gt;", "heavy", "tiny"].map((name) => only(drawn, name).x);
    assert.deepEqual([...order].sort((a, b) => a - b), order, `x positions ${order}`);
    assert.equal(order[0], main.x, "the first callee starts where its caller does");
  });

  it("keeps the garbage collector as its own frame, and lists owners with their shares", () => {
    assert.equal(only(drawn, "(garbage collector)").title, "(garbage collector) — 5.0% (5.00 ms)");
    assert.match(svg, />garbage collector 5\.0%</);
    assert.match(svg, />app\/lib\.js 75\.0%</);
    assert.match(svg, />app\/main\.js 15\.0%</);
    assert.match(svg, />V8 \/ native \(program\) 5\.0%</);
  });

  it("escapes <, > and & (and quotes) in names and titles", () => {
    assert.ok(svg.includes("a&lt;b&gt;&amp;c&quot;&#39; app/main.js:21 — 10.0% (10.0 ms)"), "the tooltip, escaped");
    assert.ok(svg.includes("made up &lt;profile&gt; &amp; co"), "the title, escaped");
    assert.ok(!svg.includes("a<b>"));
  });

  it("drops frames under minShare, leaving their time in the caller", () => {
    assert.ok(drawn.some((f) => f.title.startsWith("tiny")), "1% is drawn at the default 0.2%");
    const pruned = frames(flameGraphSvg(syntheticProfile(), { title: "t", minShare: 0.02 }));
    assert.ok(!pruned.some((f) => f.title.startsWith("tiny")), "1% is dropped at 2%");
    assert.equal(only(pruned, "main").width, only(drawn, "main").width);
    assert.equal(pruned.length, drawn.length - 1);
    assert.match(flameGraphSvg(syntheticProfile(), { title: "t", minShare: 0.02 }), /frames under 2% of busy time hidden/);
  });

  it("labels frames that are wide enough, cutting long names with …", () => {
    const long = syntheticProfile();
    long.nodes[8].callFrame.functionName = "aVeryLongFunctionNameThatCannotFitInTwelvePixels";
    const narrow = flameGraphSvg(long, { title: "t", width: 400 });
    // tiny's frame (1% of 380 px) is too narrow for any label; heavy's (285 px) holds its whole name.
    assert.ok(!/<text[^>]*>aVery/.test(narrow));
    assert.match(narrow, /<text[^>]*>heavy<\/text>/);
    const wide = flameGraphSvg(long, { title: "t", width: 8000, minShare: 0 });
    assert.match(wide, /<text[^>]*>aVery[A-Za-z]+…<\/text>/);
  });

  it("gives the same SVG for the same profile, whatever order V8 listed the calls in", () => {
    assert.equal(flameGraphSvg(syntheticProfile(), { title: "made up <profile> & co" }), svg);
    const reordered = syntheticProfile();
    for (const node of reordered.nodes) node.children?.reverse();
    reordered.nodes.reverse();
    assert.equal(flameGraphSvg(reordered, { title: "made up <profile> & co" }), svg);
  });

  it("counts only the samples inside a window, on the profile's clock", () => {
    // Samples of 1 ms from startTime 1 s (the k-th at 1 s + (k + 1) ms): 40 early,
    // 20 idle, 30 in mid, 30 in mid's callee, 40 late. The window, from 40.2 ms to 120.2 ms, holds the middle 80.
    const nodes = [
      frame(1, "(root)", "", -1, [2, 3, 4, 6]),
      frame(2, "(idle)", "", -1),
      frame(3, "early", "file:///app/a.js", 0),
      frame(4, "mid", "file:///app/a.js", 10, [5]),
      frame(5, "midCallee", "file:///app/b.js", 20),
      frame(6, "late", "file:///app/a.js", 30),
    ];
    const samples = [...Array(40).fill(3), ...Array(20).fill(2), ...Array(30).fill(4), ...Array(30).fill(5), ...Array(40).fill(6)];
    const profile = { nodes, startTime: 1_000_000, endTime: 1_160_000, samples, timeDeltas: samples.map(() => 1000) };
    const windowed = flameGraphSvg(profile, { title: "t", window: { fromUs: 1_040_200, toUs: 1_120_200 } });
    assertWellFormed(windowed);
    const drawn = frames(windowed);
    assert.ok(!drawn.some((f) => /^(early|late)/.test(f.title)), "samples outside the window left out");
    assert.match(only(drawn, "all busy time").title, /— 100\.0% \(60\.0 ms\)$/);
    assert.equal(only(drawn, "mid ").width, GRAPH_WIDTH);
    assert.equal(only(drawn, "midCallee").title, "midCallee app/b.js:21 — 50.0% (30.0 ms)");
    assert.ok(Math.abs(only(drawn, "midCallee").width - 0.5 * GRAPH_WIDTH) < 0.05);
    assert.match(windowed, /60\.0 ms busy in 60 samples/);
    assert.match(windowed, /window of 0\.080 s: the samples from 0\.040 s to 0\.120 s into the profile/);
    // [fromUs, toUs): a sample exactly at toUs is out, one exactly at fromUs in.
    const edges = frames(flameGraphSvg(profile, { title: "t", window: { fromUs: 1_040_000, toUs: 1_120_000 } }));
    assert.match(only(edges, "early").title, /\(1\.00 ms\)$/);
    assert.match(only(edges, "all busy time").title, /\(60\.0 ms\)$/);
    // Nothing busy in the window: said so, with the window still named.
    const empty = flameGraphSvg(profile, { title: "t", window: { fromUs: 1_041_000, toUs: 1_061_000 } });
    assert.match(empty, /no busy samples in this window/);
    assert.match(empty, /window of 0\.020 s/);
    // No window: the whole profile, as before.
    assert.match(flameGraphSvg(profile, { title: "t" }), /140 ms busy in 140 samples/);
  });

  it("draws a real node --cpu-prof profile over a window marked with process.hrtime", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "flame-graph-window-"));
    try {
      const script = path.join(dir, "phases.js");
      fs.writeFileSync(
        script,
        `const spin = (ms) => { let x = 0; const end = Date.now() + ms; while (Date.now() < end) x += Math.sqrt(x + 1); return x; };
         function before() { return spin(200); } function inWindow() { return spin(300); } function after() { return spin(200); }
         before(); const fromUs = process.hrtime.bigint() / 1000n; inWindow(); const toUs = process.hrtime.bigint() / 1000n; after();
         require("fs").writeFileSync(${JSON.stringify(path.join(dir, "window.json"))}, JSON.stringify({ fromUs: Number(fromUs), toUs: Number(toUs) }));\n`,
      );
      const run = spawnSync(process.execPath, ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--cpu-prof-interval", "500", script], { encoding: "utf8" });
      assert.equal(run.status, 0, run.stderr);
      const window = JSON.parse(fs.readFileSync(path.join(dir, "window.json"), "utf8"));
      const [written] = writeFlameGraphs(dir, (thread) => `thread ${thread}, windowed`, { window, suffix: ".in-window" });
      assert.match(written, /\.in-window\.svg$/);
      const svgText = fs.readFileSync(written, "utf8");
      assertWellFormed(svgText);
      assert.match(svgText, /thread 0, windowed/);
      assert.match(svgText, /window of 0\.3\d\d s/);
      const real = frames(svgText);
      // The window holds the middle phase: its samples, and none of before() or after()
      // (the script's own loading stays: inWindow() runs under it).
      assert.ok(only(real, "inWindow").width > 0.9 * GRAPH_WIDTH, `inWindow is ${only(real, "inWindow").width} px wide`);
      for (const name of ["before", "after"]) assert.ok(!real.some((f) => f.title.startsWith(`${name} `)), `no ${name}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("draws a real node --cpu-prof profile, from the command line and as the bench does", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "flame-graph-"));
    try {
      const script = path.join(dir, "busy.js");
      fs.writeFileSync(
        script,
        `function busyWork() { let kept = []; for (let i = 0; i < 3e5; i++) { kept.push({ i, s: String(i) }); if (kept.length > 1000) kept = []; } return kept.length; }
         const end = Date.now() + 300; let n = 0; while (Date.now() < end) n += busyWork(); console.log(n > 0);\n`,
      );
      const run = spawnSync(process.execPath, ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--cpu-prof-interval", "200", script], { encoding: "utf8" });
      assert.equal(run.status, 0, run.stderr);
      const [profileFile] = fs.readdirSync(dir).filter((file) => file.endsWith(".cpuprofile"));
      assert.ok(profileFile, "node wrote a profile");

      const out = path.join(dir, "cli.svg");
      const cli = spawnSync(process.execPath, [CLI, path.join(dir, profileFile), out, "--title", "busy <script>"], { encoding: "utf8" });
      assert.equal(cli.status, 0, cli.stderr);
      const fromCli = fs.readFileSync(out, "utf8");
      assertWellFormed(fromCli);
      assert.match(fromCli, /busy &lt;script&gt;/);

      const [written] = writeFlameGraphs(dir, "busy script");
      assert.equal(written, path.join(dir, profileFile.replace(/\.cpuprofile$/, ".svg")));
      const svgText = fs.readFileSync(written, "utf8");
      assertWellFormed(svgText);
      assert.match(svgText, /main thread/);

      // A rect for each kind of frame the profile holds enough of: the root, the
      // script's function, Node's module loader under it, and V8's own (program) / GC time.
      const real = frames(svgText);
      only(real, "all busy time");
      assert.match(only(real, "busyWork").title, /busyWork .*busy\.js:1 — \d+\.\d% \(/);
      assert.ok(real.some((f) => f.title.startsWith("Module._compile")), "Node's loader, below the script");
      const profile = JSON.parse(fs.readFileSync(path.join(dir, profileFile), "utf8"));
      const idOf = (name) => profile.nodes.find((node) => node.callFrame.functionName === name)?.id;
      const busy = profile.samples.filter((id) => id !== idOf("(idle)")).length;
      for (const name of ["(program)", "(garbage collector)"]) {
        const share = profile.samples.filter((id) => id === idOf(name)).length / busy;
        if (share >= 0.004) only(real, name); // comfortably above the 0.2% cut, whatever the time deltas
      }
      assert.match(svgText, />[\w-]+\/busy\.js \d+\.\d%</, "the script in the legend of owners");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
