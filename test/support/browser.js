// Browser tests: `npm start` as a child process (the launcher a user runs) and
// Debian's Chromium driven by playwright-core. Outside CI a missing Chromium
// or playwright-core skips the tests and says why; in CI it is a failure.
"use strict";
const { spawn } = require("child_process");
const { once } = require("events");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { freePort, REPO_ROOT } = require("../../dist/scripts/broker.js");

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const START = path.join(REPO_ROOT, "dist", "scripts", "start.js");
/** Screenshots of every run land here (git-ignored); docs/screenshots/ gets copies on request. */
const RESULTS = path.join(REPO_ROOT, "test-results");
const DOCS_SCREENSHOTS = path.join(REPO_ROOT, "docs", "screenshots");
const NOT_IN_CI = "the browser tests need Debian's Chromium at /usr/bin/chromium and playwright-core (apt-get install chromium; npm ci), as .ci/run installs them";

let playwright;
/**
 * Why no browser can run here (undefined when one can). In CI a missing
 * browser is an error, thrown, so the run fails instead of skipping.
 */
function browserSkipReason() {
  let reason;
  if (!fs.existsSync(CHROMIUM)) reason = `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
  else {
    try {
      playwright ??= require("playwright-core");
    } catch {
      reason = "playwright-core is not installed (npm ci)";
    }
  }
  if (reason && process.env.CI) throw new Error(`${reason}: ${NOT_IN_CI}`);
  return reason;
}

/**
 * Headless Debian Chromium. playwright-core gives every launch a fresh
 * profile (its own --user-data-dir in a temp folder, removed on close).
 */
async function launchBrowser() {
  playwright ??= require("playwright-core");
  return playwright.chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
}

/**
 * A page that records what went wrong while it was open: responses with a
 * status of 400 or more (a missing icon is a 404), failed requests and
 * uncaught page errors. `problems()` lists them; `responses()` lists every
 * response's url and status.
 */
async function openPage(browser, { locale = "en-US", viewport = { width: 1400, height: 900 }, ...options } = {}) {
  const context = await browser.newContext({ locale, viewport, ...options });
  const page = await context.newPage();
  let problems = [];
  const responses = [];
  page.on("response", (response) => {
    responses.push({ url: response.url(), status: response.status() });
    if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
  });
  page.on("requestfailed", (request) => {
    const failure = request.failure()?.errorText ?? "";
    // Navigating away aborts pending requests; that is not a missing resource.
    if (!/ERR_ABORTED/.test(failure)) problems.push(`failed ${request.url()} (${failure})`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  return {
    page,
    context,
    problems: () => [...problems],
    /** Forgets the problems so far (the editor's 401s before a login are expected). */
    clearProblems: () => (problems = []),
    responses: () => [...responses],
  };
}

/**
 * Saves a screenshot as test-results/<name>.png and returns its path. With
 * UPDATE_DOCS_SCREENSHOTS=1 (npm run screenshots) a `docs` name also updates
 * docs/screenshots/<docs>.png, the pictures the README shows.
 */
async function screenshot(page, name, { docs, ...options } = {}) {
  fs.mkdirSync(RESULTS, { recursive: true });
  const file = path.join(RESULTS, `${name}.png`);
  await page.screenshot({ path: file, ...options });
  if (docs && process.env.UPDATE_DOCS_SCREENSHOTS === "1") {
    fs.mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
    fs.copyFileSync(file, path.join(DOCS_SCREENSHOTS, `${docs}.png`));
  }
  return file;
}

/** Requests that went wrong on this machine: ignores the editor's look-ups of outside sites (the palette catalogue), which fail offline. */
function localProblems(problems, base) {
  return problems.filter((problem) => problem.includes(base) || problem.startsWith("page error"));
}

/**
 * Runs `node dist/scripts/start.js <flow>` on free ports with a temporary
 * Node-RED user folder, and resolves once it prints the editor's address.
 * `stop()` sends Ctrl-C (SIGINT), waits for the exit and removes the folder.
 */
async function startDemo(flow, { env = {}, timeoutMs = 90000 } = {}) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-browser-test-"));
  const port = await freePort();
  const mqttUrl = `mqtt://127.0.0.1:${await freePort()}`;
  const child = spawn(process.execPath, [START, flow], {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", NODE_RED_USER_DIR: userDir, MQTT_URL: mqttUrl, NODE_RED_ADMIN_PASSWORD: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const exited = once(child, "exit");

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(userDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + timeoutMs;
  while (!/Editor : http/.test(output)) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`start.js exited with ${child.exitCode} before the editor was up:\n${output}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`start.js did not print the editor address within ${timeoutMs / 1000} s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `http://127.0.0.1:${port}`, port, mqttUrl, userDir, child, output: () => output, stop };
}

module.exports = { browserSkipReason, launchBrowser, openPage, screenshot, localProblems, startDemo, RESULTS };
