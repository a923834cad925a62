"use strict";
// mnist-image-source reading its folder in a Node-RED runtime: list files and
// their order, missing and empty folders, unreadable files and malformed lines
// (each reported once), paths and links that lead out of the folder, size limits,
// and errors that never name an absolute path. Run after `npm run build`:
//   node --test test/mnist-image-source-folders.test.js
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { helper, sourceSuite, UNLABELLED, start, png } = require("./support/source");
const { waitFor } = require("./support/wait");

describe("mnist-image-source: the folder it reads", () => {
  const { folder, scratch } = sourceSuite();

  it("reads a custom folder with a list file in the list's order", async () => {
    const dir = folder("custom", { "a.png": png(1), "b.png": png(2), "c.png": png(3), "mylabels.txt": "c.png 3\na.png 1\n\n# comment\n" });
    const t = await start({ folder: dir, listFile: "mylabels.txt", mode: "burst", burstCount: 10, loop: false });
    await t.send({});
    assert.deepEqual(t.names(), ["c.png", "a.png"]);
    assert.deepEqual(t.sent.map((msg) => msg.label), [3, 1]);
    assert.deepEqual(t.errors(), []);
  });

  it("warns when a configured list file is missing, and sends unlabelled", async () => {
    const t = await start({ folder: UNLABELLED, listFile: "missing.txt", mode: "input" });
    await t.send({});
    assert.equal(t.sent[0].filename, "1.png");
    assert.equal(t.sent[0].label, undefined);
    assert.deepEqual(t.warnings(), ["mnist-image-source.warnings.no-list"]);
  });

  it("reports a missing folder clearly, refuses messages, and recovers on reset", async () => {
    helper.settings({ userDir: scratch() });
    const t = await start({ folder: "later", mode: "input" });
    await t.waitStatus("no-folder", "red");
    const [error] = t.errors();
    assert.match(error, /folder not found: .*later; expected a folder of image files ending in \.png/);
    assert.match(error, /errors\.relative/, "says relative folders are resolved against the user directory");

    await t.send({});
    assert.equal(t.sent.length, 0);
    assert.equal(t.caught.length, 1, "the message ends in an error a Catch node sees");
    assert.match(t.caught[0].error.message, /folder not found/);

    folder("later", { "x.png": png(0) });
    await t.send({ command: "reset" });
    await t.send({});
    assert.equal(t.sent[0].filename, "x.png");
  });

  it("starts its timer once a reset finds the folder that was missing at deploy", async () => {
    const dir = path.join(scratch(), "arrives-later");
    const t = await start({ folder: dir, interval: 20 });
    await t.waitStatus("no-folder", "red");
    folder("arrives-later", { "x.png": png(0) });
    await t.send({ command: "reset" });
    await waitFor(() => t.sent.length >= 2, "messages after the reset");
    await t.waitStatus("running", "blue");
  });

  it("reports a folder without images", async () => {
    const t = await start({ folder: folder("empty", { "readme.md": "no images" }), mode: "input" });
    await t.waitStatus("no-images", "red");
    assert.match(t.errors()[0], /no image files in .*empty; expected image files ending in/);
  });

  it("skips malformed list lines with an error, and sends the good ones", async () => {
    const dir = folder("malformed", {
      "0.png": png(0),
      "1.png": png(1),
      "2.png": png(2),
      "3.png": png(3),
      "labels.txt": "0.png 7\njust-a-name\n1.png seven\n2.png 3\n3.png 12\nnot-here.png 4\nnotes.txt 1\n",
    });
    const t = await start({ folder: dir, mode: "burst", burstCount: 10, loop: false });
    await t.send({});
    assert.deepEqual(t.names(), ["0.png", "2.png"]);
    assert.deepEqual(t.sent.map((msg) => msg.label), [7, 3]);
    const errors = t.errors();
    assert.equal(errors.length, 5);
    assert.match(errors[0], /labels\.txt line 2: "just-a-name" is not of the form "<file> <digit>", for example "0\.png 7"; line skipped/);
    assert.match(errors[1], /line 3: the label "seven" is not a digit 0–9/);
    assert.match(errors[2], /line 5: the label "12" is not a digit 0–9/);
    assert.match(errors[3], /line 6: "not-here\.png" is not in /);
    assert.match(errors[4], /line 7: "notes\.txt" is not an image file/);
    await t.waitStatus("done", "grey");
    assert.match(t.status().text, /skipped|…/, "the status counts what was skipped");
  });

  it("skips files that cannot be read or are not images, reporting each once", async () => {
    const dir = folder("unreadable", { "0.png": png(0), "fake.png": "this is text", "z.png": png(3) });
    fs.symlinkSync(path.join(dir, "does-not-exist.png"), path.join(dir, "gone.png"));
    const t = await start({ folder: dir, mode: "burst", burstCount: 6 });
    await t.send({});
    assert.deepEqual(t.names(), ["0.png", "z.png", "0.png", "z.png", "0.png", "z.png"]);
    const errors = t.errors();
    assert.equal(errors.length, 2, `each bad file reported once: ${errors.join(" | ")}`);
    assert.match(errors[0], /fake\.png is not an image: its content is not PNG, JPEG/);
    assert.match(errors[1], /cannot read gone\.png \(it no longer exists\); skipped/);
  });

  it("fails clearly when no image in the folder can be read", async () => {
    const dir = folder("all-bad", { "a.png": "text", "b.png": "" });
    const t = await start({ folder: dir, mode: "input" });
    await t.send({});
    assert.equal(t.sent.length, 0);
    await t.waitStatus("none-readable", "red");
    assert.equal(t.caught.length, 0, "the first message only finds out");
    await t.send({});
    assert.equal(t.caught.length, 1, "later messages are refused");
    assert.ok(t.errors().some((e) => e.includes("b.png is empty")));
  });

  it("rejects list entries outside the folder", async () => {
    folder("escape", { "outside.png": png(9) });
    const dir = folder("escape/inner", {
      "0.png": png(0),
      "labels.txt": "../outside.png 1\n/etc/passwd.png 2\nsub/../0.png 5\n0.png 4\n",
    });
    const t = await start({ folder: dir, mode: "burst", burstCount: 10, loop: false });
    await t.send({});
    assert.deepEqual(t.names(), ["0.png", "0.png"]);
    assert.deepEqual(t.sent.map((msg) => msg.label), [5, 4]);
    const errors = t.errors();
    assert.equal(errors.length, 2);
    assert.match(errors[0], /line 1: "\.\.\/outside\.png" is outside the folder; list entries must name files inside/);
    assert.match(errors[1], /line 2: "\/etc\/passwd\.png" is outside the folder/);
  });

  it("skips a symbolic link that leads out of the folder, counting it as skipped; links inside the folder work", async () => {
    const outside = folder("secrets", { "secret.png": png(9) });
    const dir = folder("linked", { "0.png": png(0) });
    fs.symlinkSync(path.join(outside, "secret.png"), path.join(dir, "1.png"));
    fs.symlinkSync(path.join(dir, "0.png"), path.join(dir, "2.png")); // inside: fine
    const t = await start({ folder: dir, mode: "burst", burstCount: 6 });
    await t.send({});
    assert.deepEqual(t.names(), ["0.png", "2.png", "0.png", "2.png", "0.png", "2.png"]);
    const errors = t.errors();
    assert.equal(errors.length, 1, errors.join(" | "));
    assert.match(errors[0], /cannot read 1\.png \(it is a link to a file outside the folder, which is not followed\); skipped/);
    assert.ok(!errors[0].includes(scratch()), "no absolute path in the error");
    await waitFor(() => /skipped|…/.test(t.status().text), "the status counts the skipped file");

    // A folder that is itself a link is read where it leads; a list file linked from outside is not read.
    fs.symlinkSync(dir, path.join(scratch(), "via-link"));
    fs.writeFileSync(path.join(outside, "labels.txt"), "0.png 5\n");
    fs.symlinkSync(path.join(outside, "labels.txt"), path.join(dir, "labels.txt"));
    await helper.unload();
    const u = await start({ folder: path.join(scratch(), "via-link"), mode: "input" });
    await u.send({});
    assert.equal(u.sent[0].filename, "0.png");
    assert.equal(u.sent[0].label, undefined, "the outside list was not used");
    assert.match(u.errors()[0], /cannot read the list file labels\.txt \(it is a link to a file outside the folder/);
  });

  it("skips an image file over the size limit before reading it, and a list entry escaping through a linked sub-folder", async () => {
    const outside = folder("elsewhere", { "x.png": png(4) });
    const big = Buffer.concat([png(1), Buffer.alloc(4096)]); // a PNG with trailing bytes: valid, but 4 kB too big
    const dir = folder("sizes", { "small.png": png(0), "big.png": big, "labels.txt": "small.png 0\nbig.png 1\nsub/x.png 4\n" });
    fs.symlinkSync(outside, path.join(dir, "sub"));
    const t = await start({ folder: dir, mode: "burst", burstCount: 3, maxFileSize: String(2048 / 1024 / 1024) });
    await t.send({});
    assert.deepEqual(t.names(), ["small.png", "small.png", "small.png"]);
    const errors = t.errors();
    assert.equal(errors.length, 2, errors.join(" | "));
    assert.match(errors[0], /cannot read big\.png \(it is over the 0\.002 MB limit\); skipped\. Expected an image file of at most 0\.002 MB/);
    assert.match(errors[1], /cannot read sub\/x\.png \(it is a link to a file outside the folder/);
    assert.ok(errors.every((e) => !e.includes(scratch())), "no absolute path in the errors");

    await helper.unload();
    const u = await start({ folder: dir, mode: "burst", burstCount: 2, loop: false });
    await u.send({});
    assert.deepEqual(u.names(), ["small.png", "big.png"], "under the default 5 MB the same file is sent");
  });

  it("does not read a list file over 8 MB: the images go unlabelled, and the error says why", async () => {
    const dir = folder("huge-list", { "0.png": png(0) });
    const line = "0.png 7\n";
    fs.writeFileSync(path.join(dir, "labels.txt"), line.repeat(Math.ceil((8 * 1024 * 1024 + 1) / line.length)));
    const t = await start({ folder: dir, mode: "input" });
    await t.send({});
    assert.equal(t.sent[0].filename, "0.png");
    assert.equal(t.sent[0].label, undefined);
    assert.match(t.errors()[0], /^cannot read the list file labels\.txt \(it is over the 8 MB limit\); the images are sent unlabelled$/);
  });

  it("names a missing relative folder as configured, never by its absolute path", async () => {
    helper.settings({ userDir: scratch() });
    const t = await start({ folder: "not/there", mode: "input" });
    await t.waitStatus("no-folder", "red");
    assert.match(t.errors()[0], /^folder not found: not\/there; expected/);
    assert.ok(!t.errors()[0].includes(scratch()));
  });
});
