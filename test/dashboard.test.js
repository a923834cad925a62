"use strict";
// The FlowFuse Dashboard 2 example in a real browser: `npm start --
// flows/mnist-dashboard.json` prints the dashboard's address; digits drawn on
// its canvas with mouse strokes (and a finger, through touch events) are
// recognised, with the ten probabilities as bars; the MQTT chain fills the
// live accuracy and confusion matrix, and the reset button clears them.
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { dashboardPath, dashboardInstalled } = require("../dist/scripts/user-folder.js");
const { browserSkipReason, launchBrowser, openPage, screenshot, localProblems, startDemo } = require("./support/browser");

const skip = browserSkipReason();
const FLOWS = path.join(__dirname, "..", "flows");

describe("npm start and the dashboard flow", () => {
  it("finds the dashboard's address in a flow, and only in a dashboard flow", () => {
    assert.equal(dashboardPath(path.join(FLOWS, "mnist-dashboard.json")), "/dashboard");
    assert.equal(dashboardPath(path.join(FLOWS, "mnist-chain.json")), undefined);
  });

  it("knows whether FlowFuse Dashboard 2 is installed, in the repository or the user folder", () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-no-dashboard-"));
    try {
      assert.equal(dashboardInstalled(empty), true, "the dev dependency, in this repository's node_modules");
      assert.equal(dashboardInstalled(empty, empty), false);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it("ships the dashboard as a dev dependency only: the published package does not need it", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "package.json"), "utf8"));
    assert.ok(pkg.devDependencies["@flowfuse/node-red-dashboard"]);
    assert.equal(pkg.dependencies["@flowfuse/node-red-dashboard"], undefined);
    assert.equal(pkg.peerDependencies?.["@flowfuse/node-red-dashboard"], undefined);
  });
});

/** Strokes of a digit, in fractions of the pad: each stroke a list of [x, y]. */
const DIGITS = {
  7: [[[0.25, 0.2], [0.72, 0.2], [0.42, 0.82]]],
  1: [[[0.52, 0.15], [0.5, 0.85]]],
  0: [Array.from({ length: 25 }, (_, i) => [0.5 + 0.2 * Math.sin((i / 24) * 2 * Math.PI), 0.5 - 0.3 * Math.cos((i / 24) * 2 * Math.PI)])],
  4: [[[0.35, 0.15], [0.28, 0.55], [0.72, 0.55]], [[0.6, 0.25], [0.6, 0.88]]],
  // Not digits: a dot (the shortest stroke a mouse makes) and a cross.
  dot: [[[0.5, 0.5], [0.505, 0.505]]],
  cross: [[[0.25, 0.25], [0.75, 0.75]], [[0.75, 0.25], [0.25, 0.75]]],
};

describe("the dashboard example in Chromium", { skip: skip ?? false, timeout: 180000 }, () => {
  let demo;
  let browser;
  let page;
  let problems;
  let context;

  before(async () => {
    demo = await startDemo("flows/mnist-dashboard.json");
    browser = await launchBrowser();
    ({ page, problems, context } = await openPage(browser, { hasTouch: true }));
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  /** The pad's box on the page. */
  const pad = () => page.locator("canvas.mnist-draw-pad").boundingBox();

  /** Draws `digit` with the mouse, stroke by stroke, and resolves with the digit the dashboard shows for it. */
  async function drawWithMouse(digit) {
    const before = await shownResult();
    await page.locator(".mnist-draw-clear").click();
    const box = await pad();
    for (const stroke of DIGITS[digit]) {
      const [x0, y0] = stroke[0];
      await page.mouse.move(box.x + x0 * box.width, box.y + y0 * box.height);
      await page.mouse.down();
      for (const [x, y] of stroke.slice(1)) await page.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps: 8 });
      await page.mouse.up();
    }
    return nextResult(before);
  }

  /** Draws `digit` with one finger: real touch events, as a phone sends them. */
  async function drawWithFinger(digit) {
    const before = await shownResult();
    await page.locator(".mnist-draw-clear").tap();
    const box = await pad();
    const cdp = await context.newCDPSession(page);
    const at = ([x, y]) => [{ x: box.x + x * box.width, y: box.y + y * box.height }];
    for (const stroke of DIGITS[digit]) {
      await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: at(stroke[0]) });
      for (let i = 1; i < stroke.length; i++) {
        // Eight touch moves per segment, as a finger reports them.
        for (let step = 1; step <= 8; step++) {
          const [xa, ya] = stroke[i - 1];
          const [xb, yb] = stroke[i];
          await cdp.send("Input.dispatchTouchEvent", { type: "touchMove", touchPoints: at([xa + ((xb - xa) * step) / 8, ya + ((yb - ya) * step) / 8]) });
        }
      }
      await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
    }
    await cdp.detach();
    return nextResult(before);
  }

  /** What the prediction card shows now: digit, confidence line, preview source. */
  function shownResult() {
    return page.evaluate(() => ({
      digit: document.querySelector("[data-digit]")?.textContent.trim(),
      confidence: document.querySelector(".mnist-prediction-confidence")?.textContent.trim(),
      // Whole: two answers with the same digit and text differ only in the image the model saw.
      preview: document.querySelector(".mnist-prediction-preview img")?.getAttribute("src"),
      error: document.querySelector(".mnist-prediction-error")?.textContent.trim(),
    }));
  }

  /** Waits for the card to change from `before`. */
  async function nextResult(before) {
    const deadline = Date.now() + 15000;
    for (;;) {
      const now = await shownResult();
      if (JSON.stringify(now) !== JSON.stringify(before) && (now.digit || now.error)) return now;
      if (Date.now() > deadline) throw new Error(`the prediction card did not change from ${JSON.stringify(before).slice(0, 200)}`);
      await page.waitForTimeout(100);
    }
  }

  it("is printed by npm start and serves the dashboard", async () => {
    assert.match(demo.output(), new RegExp(`UI     : http://127\\.0\\.0\\.1:${demo.port}/dashboard`));
    await page.goto(`${demo.url}/dashboard`);
    await page.locator("canvas.mnist-draw-pad").waitFor({ timeout: 60000 });
    assert.match(await page.locator(".mnist-prediction-empty").innerText(), /Draw a digit/);
  });

  it("recognises digits drawn with mouse strokes, with the ten probabilities and the 28×28 image the model saw", async () => {
    for (const digit of ["7", "1", "0", "4"]) {
      const shown = await drawWithMouse(digit);
      assert.equal(shown.digit, digit, `drew a ${digit}, the dashboard says ${JSON.stringify(shown)}`);
      assert.match(shown.confidence, /^\d+\.\d% sure$/);
      assert.match(shown.preview, /^data:image\/png;base64,/);
      if (digit === "7") await screenshot(page, "dashboard-7");
    }
    // The bar chart has its canvas, drawn by the chart widget.
    const chart = page.locator(".nrdb-ui-chart canvas, .nrdb-ui-chart svg").first();
    await chart.waitFor();
    const { width, height } = await chart.boundingBox();
    assert.ok(width > 100 && height > 100, `chart ${width}×${height}`);
  });

  it("recognises a digit drawn with a finger", async () => {
    const shown = await drawWithFinger("1");
    assert.equal(shown.digit, "1", JSON.stringify(shown));
  });

  it("answers 'not sure that is a digit' for a dot and for a cross, with its best guess", async () => {
    for (const drawing of ["dot", "cross"]) {
      const shown = await drawWithMouse(drawing);
      assert.equal(shown.digit, "?", `drew a ${drawing}, the dashboard says ${JSON.stringify(shown)}`);
      assert.equal(shown.confidence, "not sure that is a digit");
    }
    assert.match(await page.locator(".mnist-prediction-runner").innerText(), /^best guess: \d \(\d+\.\d%\)$/);
  });

  it("shows the chain's live accuracy and confusion matrix, and resets them", async () => {
    const stats = () =>
      page.evaluate(() => {
        const rows = [...document.querySelectorAll(".mnist-matrix-table tbody tr")];
        const cells = rows.map((row) => [...row.querySelectorAll("td")].map((td) => Number(td.textContent) || 0));
        return {
          accuracy: document.querySelector("[data-accuracy]")?.textContent.trim(),
          rows: rows.length,
          total: cells.flat().reduce((a, b) => a + b, 0),
          diagonal: cells.reduce((sum, row, i) => sum + (row[i] ?? 0), 0),
        };
      });
    const deadline = Date.now() + 60000;
    let now = await stats();
    while (!(now.rows === 10 && now.total >= 20)) {
      if (Date.now() > deadline) assert.fail(`confusion matrix: ${JSON.stringify(now)}`);
      await page.waitForTimeout(500);
      now = await stats();
    }
    assert.match(now.accuracy, /^\d+\.\d%$/);
    assert.ok(now.diagonal / now.total > 0.9, `most of the chain's digits are right: ${JSON.stringify(now)}`);
    // The README's picture: a drawn 7 beside the chain's statistics.
    assert.equal((await drawWithMouse("7")).digit, "7");
    await screenshot(page, "dashboard-chain", { docs: "dashboard" });

    await page.getByRole("button", { name: /Reset statistics/ }).click();
    const after = Date.now() + 15000;
    let reset = await stats();
    while (!(reset.total < now.total)) {
      if (Date.now() > after) assert.fail(`after reset: ${JSON.stringify(reset)} (before ${JSON.stringify(now)})`);
      await page.waitForTimeout(200);
      reset = await stats();
    }
    assert.deepEqual(localProblems(problems(), demo.url), [], "no request of the dashboard failed");
  });

  it("shows the running flow in the editor with no node or status under another", async () => {
    const editor = await openPage(browser);
    try {
      const ed = editor.page;
      await ed.goto(demo.url);
      await ed.waitForSelector(`.red-ui-palette-node[data-palette-type="mnist-infer"]`, { timeout: 60000 });
      await ed.waitForTimeout(500);
      await ed.keyboard.press("Escape");
      // The statuses as they run, at their longest: counts in the hundreds.
      await ed.waitForFunction(() => {
        const texts = RED.nodes.filterNodes({ type: "mnist-result" }).map((n) => n.status?.text ?? "");
        return texts.length === 1 && /right of \d{3}/.test(texts[0]);
      }, null, { timeout: 60000, polling: 500 });
      // What the editor drew: each node's shape (ports included) and its status.
      const drawn = await ed.evaluate(() => {
        const boxes = [];
        RED.nodes.filterNodes({ z: RED.workspaces.active() }).forEach((n) => {
          const group = document.getElementById(n.id);
          const shape = group?.querySelector(".red-ui-flow-node");
          if (!shape) return;
          const name = RED.utils.getNodeLabel(n, n.type);
          const r = shape.getBoundingClientRect();
          boxes.push({ id: n.id, what: name, box: [r.left - 6, r.top, r.right + 6, r.bottom] });
          const status = group.querySelector(".red-ui-flow-node-status-group");
          const s = status && status.style.display !== "none" ? status.getBoundingClientRect() : null;
          if (s && s.width > 0) boxes.push({ id: n.id, what: `${name}'s status "${n.status?.text}"`, box: [s.left, s.top, s.right, s.bottom] });
        });
        return boxes;
      });
      assert.ok(drawn.filter((b) => /status/.test(b.what)).length >= 8, `statuses shown: ${drawn.map((b) => b.what).join(", ")}`);
      const covered = [];
      for (let i = 0; i < drawn.length; i++) {
        for (let j = i + 1; j < drawn.length; j++) {
          const [a, b] = [drawn[i], drawn[j]];
          if (a.id === b.id) continue;
          if (Math.min(a.box[2], b.box[2]) > Math.max(a.box[0], b.box[0]) && Math.min(a.box[3], b.box[3]) > Math.max(a.box[1], b.box[1])) covered.push(`${a.what} / ${b.what}`);
        }
      }
      await screenshot(ed, "editor-dashboard-flow");
      assert.deepEqual(covered, [], "nodes or statuses drawn over each other");
    } finally {
      await editor.context.close();
    }
  });
});
