"use strict";
// What a Node-RED user sees of the package in the editor, in a real browser
// (Debian's Chromium) against `npm start`: the palette and its icons, nodes
// dragged in fresh, the edit dialogs with their validation and the model-info
// button, the help sidebar in English and Chinese, every example imported from
// the Import menu, and a deployed chain showing live status under its nodes.
// One file: every test shares one Chromium and one `npm start` (seconds each to start).
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { browserSkipReason, launchBrowser, openPage, screenshot, localProblems, startDemo } = require("./support/browser");

/** The bundled model's card: what the model panel must show. */
const CARD = require("../models/mnist-cnn.json");
const heldOut = () => `${(CARD.heldOutAccuracy * 100).toFixed(2)}%`.replace(".", "\\.");

const TYPES = ["mnist-image-source", "mnist-infer", "mnist-result"];
const PASSWORD = "editor-test-password";
const EXAMPLES = path.join(__dirname, "..", "examples");

// ---- a small ONNX model whose input is a 3-channel 32×32 image, for the model-info refusal.
// Protocol-buffer encoding of onnx.proto's ModelProto, by hand: nothing else here writes ONNX.
function varint(n) {
  const bytes = [];
  do {
    bytes.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return Buffer.from(bytes);
}
const field = (number, value) =>
  typeof value === "number"
    ? Buffer.concat([varint(number << 3), varint(value)])
    : Buffer.concat([varint((number << 3) | 2), varint(Buffer.byteLength(value)), Buffer.from(value)]);
const dims = (shape) => Buffer.concat(shape.map((d) => field(1, typeof d === "number" ? field(1, d) : field(2, d))));
const tensor = (name, shape) => Buffer.concat([field(1, name), field(2, field(1, Buffer.concat([field(1, 1 /* FLOAT */), field(2, dims(shape))])))]);
function flattenModel(inputShape, outputShape) {
  const node = Buffer.concat([field(1, "x"), field(2, "y"), field(3, "flatten"), field(4, "Flatten")]);
  const graph = Buffer.concat([field(1, node), field(2, "wrong-shape"), field(11, tensor("x", inputShape)), field(12, tensor("y", outputShape))]);
  return Buffer.concat([field(1, 7), field(2, "editor-test"), field(7, graph), field(8, Buffer.concat([field(1, ""), field(2, 13)]))]);
}

/**
 * Pairs of a flow's nodes that cover each other in the editor: each node's box
 * from its x, y, w, h (ports included), and under every node that shows a
 * status the line its status takes, wide enough for the longest status text.
 * Also nodes cut off at the top or left of the workspace.
 */
const STATUS_WIDTH = { "mnist-image-source": 190, "mnist-infer": 190, "mnist-result": 190, "mqtt in": 100, "mqtt out": 100 };
function coveredNodes(nodes) {
  const boxes = [];
  const problems = [];
  for (const n of nodes) {
    const left = n.x - n.w / 2;
    const top = n.y - n.h / 2;
    if (left < 0 || top < 0) problems.push(`${n.name} is cut off at the workspace's edge`);
    boxes.push({ id: n.id, what: n.name, box: [left - 6, top, left + n.w + 6, top + n.h] });
    if (STATUS_WIDTH[n.type]) boxes.push({ id: n.id, what: `${n.name}'s status`, box: [left, top + n.h, left + 6 + STATUS_WIDTH[n.type], top + n.h + 17] });
  }
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const [a, b] = [boxes[i], boxes[j]];
      if (a.id === b.id) continue;
      const overlap = Math.min(a.box[2], b.box[2]) > Math.max(a.box[0], b.box[0]) && Math.min(a.box[3], b.box[3]) > Math.max(a.box[1], b.box[1]);
      if (overlap) problems.push(`${a.what} overlaps ${b.what}`);
    }
  }
  return problems;
}

const skip = browserSkipReason();

describe("the editor in Chromium", { skip: skip ?? false, timeout: 240000 }, () => {
  let demo;
  let browser;
  let page;
  let problems;
  let responses;
  let clearProblems;
  let token;

  /** The admin API with the editor's login, as the editor itself calls it. */
  async function admin(url) {
    const response = await fetch(`${demo.url}/${url}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: response.status, body: await response.json().catch(() => undefined) };
  }

  /** Runs `fn` in the editor page. */
  const inEditor = (fn, arg) => page.evaluate(fn, arg);

  before(async () => {
    const empty = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "mnist-editor-flow-")), "empty-flow.json");
    fs.writeFileSync(empty, JSON.stringify([{ id: "e0f1a2b3c4d5e6f7", type: "tab", label: "Flow 1", disabled: false, info: "" }]));
    demo = await startDemo(empty, { env: { NODE_RED_ADMIN_PASSWORD: PASSWORD } });
    // A model the node must refuse, and a file that is not a model, in the user directory.
    fs.writeFileSync(path.join(demo.userDir, "rgb-32.onnx"), flattenModel(["N", 3, 32, 32], ["N", 3072]));
    fs.writeFileSync(path.join(demo.userDir, "notes.txt"), "not a model");
    fs.mkdirSync(path.join(demo.userDir, "folder.onnx"));

    browser = await launchBrowser();
    ({ page, problems, responses, clearProblems } = await openPage(browser));
    await page.goto(demo.url);
    // adminAuth is on: the editor asks for a login first.
    await page.fill("#node-dialog-login-username", "admin");
    await page.fill("#node-dialog-login-password", PASSWORD);
    await page.click("#node-dialog-login-submit");
    await page.waitForSelector(`.red-ui-palette-node[data-palette-type="mnist-infer"]`, { timeout: 60000 });
    token = await inEditor(() => RED.settings.get("auth-tokens").access_token);
    clearProblems(); // the 401s that made the editor ask for the login
    // The welcome tour of a new Node-RED version covers the workspace.
    await page.waitForTimeout(500);
    await page.keyboard.press("Escape");
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  it("shows the three nodes in one palette category, with their icons and labels", async () => {
    const category = page.locator("#red-ui-palette-container-machine_learning");
    assert.equal((await category.locator(".red-ui-palette-header").innerText()).trim(), "machine learning");
    const types = await category.locator(".red-ui-palette-node").evaluateAll((els) => els.map((el) => el.dataset.paletteType));
    assert.deepEqual(types.sort(), [...TYPES].sort());
    const labels = await category.locator(".red-ui-palette-label").allInnerTexts();
    assert.deepEqual(labels.map((l) => l.replace(/\s+/g, " ").trim()).sort(), ["mnist infer", "mnist result", "mnist source"]);

    for (const type of TYPES) {
      const icon = await category.locator(`[data-palette-type="${type}"] .red-ui-palette-icon-container`).getAttribute("data-palette-icon");
      assert.equal(icon, `icons/node-red-contrib-mnist/${type}.svg`);
      const response = await page.request.get(`${demo.url}/${icon}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(response.status(), 200, icon);
      const svg = await response.text();
      assert.match(svg, /viewBox="0, 0, 40, 60"/, `${icon} uses Node-RED's 40×60 icon box`);
      assert.doesNotMatch(svg, /<text|fill="#(?!fff)/i, `${icon} is white shapes only`);
      // The palette shows the icon as a background image, which the browser fetched.
      const shown = await category.locator(`[data-palette-type="${type}"] .red-ui-palette-icon`).evaluate((el) => getComputedStyle(el).backgroundImage);
      assert.match(shown, new RegExp(`/icons/node-red-contrib-mnist/${type}\\.svg`));
      assert.ok(responses().some((r) => r.url.endsWith(`/icons/node-red-contrib-mnist/${type}.svg`) && r.status === 200), `the browser loaded the ${type} icon`);
    }
    assert.equal(await inEditor(() => RED.nodes.getType("mnist-infer").color), "#3FADB5");
    await screenshot(page, "editor-palette", { clip: { x: 0, y: 40, width: 300, height: 300 } });
    assert.deepEqual(localProblems(problems(), demo.url), [], "no request of the editor failed");
  });

  it("takes a node dragged from the palette as it is: valid, with a useful label", async () => {
    const workspace = page.locator("#red-ui-workspace-chart");
    const spots = { "mnist-image-source": { x: 190, y: 120 }, "mnist-infer": { x: 440, y: 120 }, "mnist-result": { x: 690, y: 120 } };
    for (const type of TYPES) {
      await page.locator(`#red-ui-palette-container-machine_learning [data-palette-type="${type}"]`).dragTo(workspace, { targetPosition: spots[type] });
    }
    const dragged = await inEditor((types) =>
      types.map((type) => {
        const node = RED.nodes.filterNodes({ type })[0];
        return node && { type, valid: node.valid, label: RED.utils.getNodeLabel(node) };
      }), TYPES);
    assert.deepEqual(dragged, [
      { type: "mnist-image-source", valid: true, label: "MNIST samples · every 1000 ms" },
      { type: "mnist-infer", valid: true, label: "mnist infer" },
      { type: "mnist-result", valid: true, label: "mnist result · summary every 100" },
    ]);
  });

  it("edits mnist-infer with TypedInputs and clear validation messages", async () => {
    await page.locator(".red-ui-flow-node-group").filter({ hasText: "mnist infer" }).first().dblclick();
    await page.waitForSelector("#node-input-model-info");
    for (const id of ["property", "output"]) {
      assert.equal(await page.locator(`#node-input-${id} + .red-ui-typedInput-container`).count(), 1, `${id} is a TypedInput`);
      assert.equal(await inEditor((id) => $(`#node-input-${id}`).typedInput("type"), id), "msg");
    }
    assert.equal(await page.locator("#node-input-preview").isChecked(), false, "preview is offered, off by default");
    assert.equal(await page.locator("#node-input-secondLook").isChecked(), true, "the second look is offered, on by default");
    assert.match(await page.locator("label[for=node-input-secondLook]:not(:has(i))").last().innerText(), /^Look again at an unsure image/);
    await page.waitForFunction(() => /not deployed yet/.test(document.querySelector("#mnist-infer-stats").textContent), null, { timeout: 10000 });
    // The reliability settings, each with a readable label. Confirming deliveries needs a
    // Complete node wired back, so a node fresh from the palette has it off.
    assert.equal(await page.locator("#node-input-confirmDelivery").isChecked(), false, "confirm delivery is offered, off by default");
    assert.match(await page.locator("label[for=node-input-confirmDelivery]:not(:has(i))").last().innerText(), /until a Complete node on its mqtt out hands it back/);
    assert.equal(await page.inputValue("#node-input-repeatWindow"), "60");
    assert.match(await page.locator("#node-input-repeatWindow + span").innerText(), /seconds: a request sent again is given the first one's answer/);
    assert.equal(await page.inputValue("#node-input-queueMemory"), "64");
    assert.match(await page.locator("#node-input-queueMemory + span").innerText(), /MB of images/);
    // Every limit on a row of its own, with a label and its unit.
    const row = async (id) => (await page.locator(`.form-row:has(#node-input-${id})`).innerText()).replace(/\s+/g, " ").trim();
    assert.equal(await row("queueSize"), "Queue requests waiting, at most");
    assert.equal(await row("queueMemory"), "Memory MB of images at most in the queue");
    assert.match(await row("overflow"), /^When full /);
    assert.equal(await row("maxBytes"), "Max file size bytes per image file (1 MB = 1048576)");
    assert.equal(await row("maxPixels"), "Max pixels pixels per image, width × height");
    await page.fill("#node-input-maxPixels", "12");
    await page.locator("#node-input-maxPixels").dispatchEvent("change");
    await page.waitForSelector("#node-input-maxPixels.input-error");
    await page.hover("#node-input-maxPixels");
    await page.waitForSelector(".red-ui-popover:has-text('Max pixels must be a whole number from 784 to 268402689')");
    await page.fill("#node-input-maxPixels", "");
    await page.locator("#node-input-maxPixels").dispatchEvent("change");
    await page.fill("#node-input-repeatWindow", "-1");
    await page.locator("#node-input-repeatWindow").dispatchEvent("change");
    await page.waitForSelector("#node-input-repeatWindow.input-error");
    await page.hover("#node-input-repeatWindow");
    await page.waitForSelector(".red-ui-popover:has-text('Repeats must be a whole number from 0 to 86400')");
    await page.fill("#node-input-repeatWindow", "60");
    await page.locator("#node-input-repeatWindow").dispatchEvent("change");

    await page.fill("#node-input-maxBatch", "0");
    await page.locator("#node-input-maxBatch").dispatchEvent("change");
    await page.waitForSelector("#node-input-maxBatch.input-error");
    await page.hover("#node-input-maxBatch");
    await page.waitForSelector(".red-ui-popover:has-text('Max batch must be a whole number from 1 to 1024')");
    await page.fill("#node-input-maxBatch", "32");
    await page.locator("#node-input-maxBatch").dispatchEvent("change");
    await page.waitForSelector("#node-input-maxBatch:not(.input-error)");

    await page.fill("#node-input-model", "notes.txt");
    await page.locator("#node-input-model").dispatchEvent("change");
    await page.waitForSelector("#node-input-model.input-error");
    await page.hover("#node-input-model");
    await page.waitForSelector(".red-ui-popover:has-text('Model must be the path of an .onnx file')");
  });

  it("shows the bundled model's inputs, outputs and model card with the model-info button", async () => {
    await page.fill("#node-input-model", "");
    await page.click("#node-input-model-info");
    const box = page.locator("#mnist-infer-model-info");
    await box.locator("table").waitFor();
    const text = await box.innerText();
    assert.match(text, /mnist-infer can use this model/);
    // The figures are the model card's (models/mnist-cnn.json).
    assert.ok(text.includes(`mnist-cnn ${CARD.version} · bundled with the package`), text);
    assert.match(text, /Input\s+image \[batch, 1, 28, 28\]/);
    assert.match(text, /Output\s+logits \[batch, 10\]/);
    assert.match(text, new RegExp(`Held-out accuracy\\s+${heldOut()} \\(${CARD.heldOutCorrect.toLocaleString("en-US")} of 1,500 digits it never trained on\\)`));
    assert.match(text, new RegExp(`Unsure below\\s+${CARD.unsureBelow} confidence`));
    assert.match(text, new RegExp(`Parameters\\s+${CARD.parameters.toLocaleString("en-US")} · ONNX opset 13`));
    assert.match(text, /Backend\s+native here, once deployed/);
    await screenshot(page, "editor-infer-dialog", { docs: "editor-infer-dialog" });
  });

  it("refuses, with a clear message, a model that is not one 28×28 channel, a missing file and a non-.onnx file", async () => {
    const box = page.locator("#mnist-infer-model-info");
    const ask = async (model) => {
      await page.fill("#node-input-model", model);
      await page.click("#node-input-model-info");
      await box.locator(".mnist-infer-model-error, table").first().waitFor();
      return (await box.innerText()).replace(/\s+/g, " ");
    };
    assert.match(await ask("rgb-32.onnx"), /mnist-infer cannot use this model .*input "x" has shape \[N, 3, 32, 32\]; it needs one 28×28 channel/);
    await screenshot(page, "editor-infer-refused");
    assert.match(await ask("no-such-model.onnx"), /There is no model file at this path/);
    assert.match(await ask("notes.txt"), /Only \.onnx files can be used as a model/);
    await page.click("#node-dialog-cancel");
    clearProblems(); // those three answers were 422, 404 and 400 on purpose
  });

  it("edits mnist-image-source: the shuffle seed on its own row, saying what it does", async () => {
    await page.locator(".red-ui-flow-node-group").filter({ hasText: "MNIST samples" }).first().dblclick();
    await page.waitForSelector("#node-input-shuffle");
    assert.equal(await page.locator("#node-input-shuffle").isChecked(), false);
    assert.equal(await page.locator("#node-input-seed").isVisible(), false, "no seed without shuffling");
    await page.locator("#node-input-shuffle").check();
    await page.locator("#node-input-seed").waitFor();
    assert.equal((await page.locator("label[for=node-input-seed]").innerText()).trim(), "Seed");
    assert.equal(
      await page.locator("#mnist-image-source-seed-note").innerText(),
      "Any text: the same seed gives the same order on every deploy and restart. Empty: a new order on each deploy. A reset replays the current order.",
    );
    assert.equal(await page.getAttribute("#node-input-seed", "placeholder"), "empty: a new order on each deploy");
    assert.equal((await page.locator(".form-row:has(#node-input-loop) > label").first().innerText()).trim(), "At the end");
    assert.match(await page.locator(".form-row:has(#node-input-limit)").innerText(), /images in all, then stop \(0: no limit\)/);
    await screenshot(page, "editor-source-dialog");
    await page.click("#node-dialog-cancel");
  });

  it("serves model info only to a logged-in user, resolving paths against the user directory", async () => {
    const anonymous = await fetch(`${demo.url}/mnist-infer/model-info`);
    assert.equal(anonymous.status, 401);

    const bundled = await admin("mnist-infer/model-info");
    assert.equal(bundled.status, 200);
    assert.equal(bundled.body.bundled, true);
    assert.deepEqual(bundled.body.input, { name: "image", shape: ["batch", 1, 28, 28], layout: "nchw" });
    assert.deepEqual(bundled.body.output, { name: "logits", shape: ["batch", 10] });
    assert.equal(bundled.body.card.heldOutAccuracy, require("../models/mnist-cnn.json").heldOutAccuracy, "the model card's figure");
    assert.equal(bundled.body.card.heldOutIndices, undefined, "only the card's key figures");

    // The bundled model named by an absolute path is the same model.
    const model = path.join(__dirname, "..", "models", "mnist-cnn.onnx");
    const byPath = await admin(`mnist-infer/model-info?model=${encodeURIComponent(model)}`);
    assert.equal(byPath.status, 200);
    assert.equal(byPath.body.sha256, bundled.body.sha256);

    const refused = await admin("mnist-infer/model-info?model=rgb-32.onnx");
    assert.equal(refused.status, 422);
    assert.equal(refused.body.error.code, "invalid-model");
    assert.match(refused.body.error.message, /28×28/);
    assert.equal((await admin("mnist-infer/model-info?model=no-such.onnx")).body.error.code, "not-found");
    assert.equal((await admin("mnist-infer/model-info?model=folder.onnx")).body.error.code, "not-a-file");
    for (const other of ["notes.txt", "../../../etc/passwd", "/etc/hostname"]) {
      const answer = await admin(`mnist-infer/model-info?model=${encodeURIComponent(other)}`);
      assert.equal(answer.status, 400, other);
      assert.equal(answer.body.error.code, "not-onnx", other);
    }
  });

  it("shows each node's help in the sidebar: summary, Inputs, Outputs, Details, References", async () => {
    await inEditor(() => RED.view.select({ nodes: [] }));
    await page.locator(".red-ui-editor-stack, #red-ui-editor-shade").first().waitFor({ state: "hidden", timeout: 5000 }).catch(() => {});
    await page.waitForTimeout(400); // the closing edit tray fades the workspace
    for (const type of TYPES) {
      await inEditor((type) => RED.sidebar.help.show(type), type);
      const help = page.locator(".red-ui-sidebar-info .red-ui-help").last();
      await help.locator("h3").first().waitFor();
      const headings = await help.locator("h3").allInnerTexts();
      assert.deepEqual(headings.map((h) => h.trim()), ["Inputs", "Outputs", "Details", "References"], type);
      const summary = (await help.locator("p").first().innerText()).trim();
      assert.ok(summary.length > 40 && /\.$/.test(summary), `${type} starts with a one-sentence summary: ${summary}`);
      // Long code (message shapes) wraps in the sidebar instead of being cut off at its edge.
      const cut = await help.evaluate((el) => {
        const edge = el.getBoundingClientRect().right;
        return [...el.querySelectorAll("code")].filter((code) => [...code.getClientRects()].some((r) => r.right > edge + 1)).map((code) => code.textContent);
      });
      assert.deepEqual(cut, [], `${type}: code cut off at the sidebar's edge`);
      if (type === "mnist-infer") {
        assert.match(await help.innerText(), /msg\.preview/);
        await screenshot(page, "editor-help-mnist-infer", { docs: "editor-help" });
      }
    }
  });

  it("imports every example from Import → Examples, with no unknown node", async () => {
    const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith(".json")).sort();
    assert.ok(files.includes("mnist-dashboard.json") && files.includes("mnist-chain.json"), files.join());
    // The chain last: it stays and is deployed by the next test.
    files.sort((a, b) => (a === "mnist-chain.json") - (b === "mnist-chain.json"));
    for (const file of files) {
      const flow = JSON.parse(fs.readFileSync(path.join(EXAMPLES, file), "utf8"));
      const tab = flow.find((n) => n.type === "tab");
      await page.click("#red-ui-header-button-sidemenu");
      await page.click("#menu-item-import");
      await page.click("#red-ui-tab-red-ui-clipboard-dialog-import-tab-examples a");
      const examples = page.locator("#red-ui-clipboard-dialog-import-tab-examples");
      const folder = examples.locator(".red-ui-treeList-label", { hasText: "node-red-contrib-mnist" });
      if (!(await examples.locator(".red-ui-treeList-label-text", { hasText: /^mnist-chain$/ }).isVisible())) await folder.click();
      await examples.locator(".red-ui-treeList-label-text").getByText(file.replace(/\.json$/, ""), { exact: true }).click();
      await page.click("#red-ui-clipboard-dialog-ok");
      // The editor fetches the example after the dialog closes, then adds its tab.
      await page.waitForFunction((id) => !!RED.nodes.workspace(id), tab.id, { timeout: 10000 });
      const imported = await inEditor(({ tabId, ids }) => ({
        tab: !!RED.nodes.workspace(tabId),
        missing: ids.filter((id) => RED.nodes.node(id)?.z !== tabId),
        unknown: RED.nodes.filterNodes({ z: tabId }).filter((n) => n.type === "unknown" || !RED.nodes.getType(n.type)).map((n) => n.type),
      }), { tabId: tab.id, ids: flow.filter((n) => n.z === tab.id).map((n) => n.id) });
      assert.deepEqual(imported, { tab: true, missing: [], unknown: [] }, file);
      // Laid out so that no node, nor the status under it, covers another (sizes as the editor draws them).
      await inEditor((tabId) => RED.workspaces.show(tabId), tab.id);
      await page.waitForFunction((tabId) => RED.nodes.filterNodes({ z: tabId }).every((n) => n.w > 0 && n.h > 0), tab.id, { timeout: 5000 });
      const placed = await inEditor((tabId) => RED.nodes.filterNodes({ z: tabId }).map((n) => ({ id: n.id, type: n.type, name: RED.utils.getNodeLabel(n), x: n.x, y: n.y, w: n.w, h: n.h })), tab.id);
      assert.deepEqual(coveredNodes(placed), [], `${file}: nodes and statuses cover each other`);
      // The dashboard's ui-* configuration nodes sit outside any tab: count them too.
      const global = flow.filter((n) => !n.z && n.type !== "tab").map((n) => n.id);
      assert.deepEqual(await inEditor((ids) => ids.filter((id) => !RED.nodes.node(id)), global), [], `${file}: global configuration nodes`);
      if (file !== "mnist-chain.json") {
        await inEditor((tabId) => RED.workspaces.delete(RED.nodes.workspace(tabId)), tab.id);
        assert.equal(await inEditor((tabId) => !!RED.nodes.workspace(tabId), tab.id), false, `${file}: its tab is deleted again`);
      }
    }
  });

  it("deploys the chain and shows live status text under its nodes", async () => {
    const chain = JSON.parse(fs.readFileSync(path.join(EXAMPLES, "mnist-chain.json"), "utf8")).find((n) => n.type === "tab");
    await inEditor((id) => RED.workspaces.show(id), chain.id);
    await page.click("#red-ui-header-button-deploy");
    // The dashboard example's tab is gone but its ui-* configuration nodes stay, unused: confirm.
    const confirm = page.locator("#node-dialog-confirm-deploy-deploy");
    await confirm.waitFor({ timeout: 3000 }).then(() => confirm.click(), () => {});
    const statusOf = (type) =>
      inEditor((type) => {
        const node = RED.nodes.filterNodes({ type }).find((n) => n.z === RED.workspaces.active());
        return node && document.querySelector(`#${CSS.escape(node.id)} .red-ui-flow-node-status-label`)?.textContent;
      }, type);
    // Each number says what it is.
    const expected = { "mnist-image-source": /^running · [\d,]+ images sent$/, "mnist-infer": /^(digit \d, |\? maybe \d, only )\d+\.\d% sure/, "mnist-result": /^last \??\d · \d+\.\d% right of [\d,]+$/ };
    const deadline = Date.now() + 60000;
    let seen;
    for (;;) {
      seen = Object.fromEntries(await Promise.all(TYPES.map(async (type) => [type, await statusOf(type)])));
      if (TYPES.every((type) => expected[type].test(seen[type] ?? ""))) break;
      if (Date.now() > deadline) assert.fail(`status under the chain's nodes: ${JSON.stringify(seen)}`);
      await page.waitForTimeout(500);
    }
    await inEditor(() => RED.view.select({ nodes: [] }));
    // Let the "Imported" and "Successfully deployed" notifications go before the picture.
    await page.locator(".red-ui-notification").first().waitFor({ state: "detached", timeout: 15000 }).catch(() => {});
    await screenshot(page, "editor-chain-deployed", { docs: "editor-chain" });
    // The nodes dragged in fresh run too, unconfigured: the source sends the bundled digits.
    const fresh = () =>
      inEditor(() => Object.fromEntries(RED.nodes.filterNodes({ z: "e0f1a2b3c4d5e6f7" }).map((n) => [n.type, n.status && n.status.text])));
    let statuses = await fresh();
    while (!/^running · [\d,]+ images sent/.test(statuses["mnist-image-source"] ?? "") || !/^ready\b/.test(statuses["mnist-infer"] ?? "")) {
      if (Date.now() > deadline) assert.fail(`status of the fresh nodes: ${JSON.stringify(statuses)}`);
      await page.waitForTimeout(250);
      statuses = await fresh();
    }
    assert.equal(statuses["mnist-result"], "waiting for results");
    // The deployed chain's mnist-infer shows its counters in the edit dialog.
    await inEditor(() => RED.editor.edit(RED.nodes.filterNodes({ type: "mnist-infer" }).find((n) => n.z === RED.workspaces.active())));
    await page.waitForSelector("#mnist-infer-stats");
    await page.waitForFunction(() => /\d+ classified, 0 refused \(queue full\), 0 bad input; \d+ requests sent again given their first answer, \d+ replies sent again; \d+ waiting now/.test(document.querySelector("#mnist-infer-stats").textContent), null, { timeout: 10000 });
    assert.ok(Number(/(\d+) classified/.exec(await page.locator("#mnist-infer-stats").innerText())[1]) > 0);
    await page.click("#node-dialog-cancel");
    assert.deepEqual(localProblems(problems(), demo.url), [], "no request of the editor failed");
  });

  it("speaks Chinese to a zh-CN browser: palette category, dialog labels, help and status", async () => {
    const chinese = await openPage(browser, { locale: "zh-CN" });
    try {
      const zh = chinese.page;
      // Same login, kept by the editor in localStorage.
      await zh.goto(demo.url);
      await zh.fill("#node-dialog-login-username", "admin");
      await zh.fill("#node-dialog-login-password", PASSWORD);
      await zh.click("#node-dialog-login-submit");
      await zh.waitForSelector(`.red-ui-palette-node[data-palette-type="mnist-infer"]`, { timeout: 60000 });
      chinese.clearProblems();
      await zh.waitForTimeout(500);
      await zh.keyboard.press("Escape");
      assert.equal((await zh.locator("#red-ui-palette-container-machine_learning .red-ui-palette-header").innerText()).trim(), "机器学习");
      await zh.evaluate(() => RED.sidebar.help.show("mnist-infer"));
      const help = zh.locator(".red-ui-sidebar-info .red-ui-help").last();
      await help.locator("h3").first().waitFor();
      assert.deepEqual((await help.locator("h3").allInnerTexts()).map((h) => h.trim()), ["输入", "输出", "详细", "参考"]);
      assert.match(await help.locator("p").first().innerText(), /识别图像中的手写数字/);
      const cut = await help.evaluate((el) => {
        const edge = el.getBoundingClientRect().right;
        return [...el.querySelectorAll("code")].filter((code) => [...code.getClientRects()].some((r) => r.right > edge + 1)).map((code) => code.textContent);
      });
      assert.deepEqual(cut, [], "code cut off at the sidebar's edge");
      await zh.evaluate(() => RED.editor.edit(RED.nodes.filterNodes({ type: "mnist-infer" })[0]));
      await zh.waitForSelector("#node-input-model-info");
      assert.equal((await zh.locator("label[for=node-input-property]").innerText()).trim(), "图像");
      await zh.click("#node-input-model-info");
      await zh.locator("#mnist-infer-model-info table").waitFor();
      assert.match(await zh.locator("#mnist-infer-model-info").innerText(), new RegExp(`mnist-infer 可以使用此模型[\\s\\S]*留出集准确率\\s+${heldOut()}`));
      await screenshot(zh, "editor-zh-CN", { docs: "editor-zh-CN" });
      await zh.click("#node-dialog-cancel");
      assert.deepEqual(localProblems(chinese.problems(), demo.url), []);
    } finally {
      await chinese.context.close();
    }
  });
});

