"use strict";
// Which model files mnist-infer may read: the user directory, the package's
// models, or folders an admin allowed in settings.js; and what it says of a file
// it cannot use (a folder, not ONNX, outside those folders), without absolute paths.
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { helper, statusOf, startServer, stopServer, unload } = require("./support/flow");
const { loadInfer, expectDigit, expectError } = require("./support/infer");
const { loadSamples } = require("./support/samples");

const samples = loadSamples();

describe("mnist-infer: model files only from the user directory, the package's models or folders an admin allowed", () => {
  before(startServer);
  after(stopServer);
  afterEach(unload);

  let userDir;
  let outside;
  before(() => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-user-"));
    outside = fs.mkdtempSync(path.join(os.tmpdir(), "mnist-elsewhere-"));
    fs.mkdirSync(path.join(userDir, "folder.onnx"));
    fs.writeFileSync(path.join(userDir, "bogus.onnx"), "this is not a model");
    fs.copyFileSync(path.join(__dirname, "..", "models", "mnist-cnn.onnx"), path.join(outside, "copy.onnx"));
    fs.symlinkSync(path.join(outside, "copy.onnx"), path.join(userDir, "link.onnx"));
  });
  afterEach(() => helper.settings({}));
  after(() => [userDir, outside].forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

  /** Loads a node on `model` with `settings`; resolves with the error a request then gets. */
  async function refusalOf(model, settings = {}) {
    helper.settings({ userDir, ...settings });
    await loadInfer({ model });
    await statusOf("n-infer", "red");
    return expectError(helper.getNode("n-infer"), { payload: samples[0].bytes }, "model");
  }

  it("says a model path that is a folder is a folder, not that it does not exist", async () => {
    const err = await refusalOf("folder.onnx");
    assert.match(err.error.message, /folder\.onnx is a folder, not a file/);
  });

  it("refuses a file that is not an ONNX model", async () => {
    const err = await refusalOf("bogus.onnx");
    assert.match(err.error.message, /bogus\.onnx is not a loadable ONNX model/);
  });

  it("refuses a file elsewhere, also through a link, without naming its absolute path", async () => {
    for (const model of [path.join(outside, "copy.onnx"), "link.onnx", "../" + path.basename(outside) + "/copy.onnx"]) {
      const err = await refusalOf(model);
      assert.match(err.error.message, /is outside the folders models may be read from .*mnistInferModelDirs in settings\.js/, model);
      assert.ok(!err.error.message.includes(os.tmpdir()), `no absolute path in ${err.error.message}`);
      await unload();
    }
    const res = await helper.request().get("/mnist-infer/model-info").query({ model: path.join(outside, "copy.onnx") }).expect(403);
    assert.equal(res.body.error.code, "not-allowed");
    assert.ok(!JSON.stringify(res.body).includes(outside), "the model panel does not echo the absolute path");
  });

  it("reads a model from a folder an admin allowed in settings.js", async () => {
    helper.settings({ userDir, mnistInferModelDirs: [outside] });
    const node = await loadInfer({ model: "link.onnx" });
    await expectDigit(node, { payload: samples[0].bytes }, samples[0].label);
    const info = await helper.request().get("/mnist-infer/model-info").query({ model: "link.onnx" }).expect(200);
    assert.equal(info.body.file, "link.onnx", "named as given");
  });
});
