"use strict";
// Bad input handed straight to mnist-infer (no broker; test/bad-input.test.js
// sends it through Mosquitto): on both backends, each kind gets a clear error for
// a Catch node with the same code and message, and the next message still works.
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const sharp = require("sharp");
const { startServer, stopServer, unload } = require("./support/flow");
const { loadOn, expectDigit, expectError } = require("./support/infer");
const { loadSamples } = require("./support/samples");

const samples = loadSamples();

describe("mnist-infer: bad input", () => {
  before(startServer);
  after(stopServer);
  afterEach(unload);

  // Both backends must treat bad input the same way: the same codes, the same messages.
  for (const backend of ["native", "wasm"]) describe(`bad input on the ${backend} backend: a clear error for a Catch node, and the next message still works`, () => {
    const loadInfer = (config) => loadOn(backend, config);
    const png = () => samples[5].bytes;
    const hugePng = () => {
      const b = Buffer.from(png());
      b.writeUInt32BE(60000, 16);
      b.writeUInt32BE(60000, 20);
      return b;
    };
    const cases = [
      ["an empty buffer", () => Buffer.alloc(0), "empty"],
      ["an empty string", () => "", "empty"],
      ["a missing property", () => undefined, "empty"],
      ["one byte", () => Buffer.from([0x89]), "unsupported"],
      ["random bytes", () => Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 97 + 13) % 256)), "unsupported"],
      ["plain text", () => "hello, is this a digit?", "bad-base64", /neither JSON nor valid base64/],
      ["HTML", () => Buffer.from("<!doctype html><html><body>7</body></html>"), "bad-base64"],
      ["a PDF", () => Buffer.concat([Buffer.from("%PDF-1.7\n"), Buffer.alloc(200, 0xe2)]), "unsupported", /PDF/],
      ["an SVG referring to an external file", () => Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>').toString("base64"), "unsupported", /SVG/],
      ["a truncated PNG", () => png().subarray(0, 60), "truncated"],
      ["a PNG whose header claims 60000×60000 pixels", hugePng, "too-large", /60000×60000/],
      ["a payload over the size limit", () => Buffer.alloc(6 * 1024 * 1024, 1), "too-large"],
      ["{data,width,height} claiming more pixels than the limit", () => ({ data: new Uint8Array(16), width: 60000, height: 60000 }), "too-large", /60000×60000 pixels is over the limit/],
      ["{data,width,height} with more values than the limit, whatever it claims", () => ({ data: new Uint8Array(24_000_001), width: 2, height: 2 }), "too-large", /24000001 values, over the limit/],
      ["JSON without an image", () => ({ id: "x1", label: 3 }), "bad-envelope", /no "image" field/],
      ["broken JSON text", () => '{"id": "x2", "image": ', "bad-json"],
      ["invalid base64 in an envelope", () => ({ id: "x3", image: "***not base64***" }), "bad-base64"],
      ["a file path", () => "/etc/passwd", "file-path", /looks like a file path .*never reads files/],
      ["a file: URL in an envelope", () => ({ id: "x4", image: "file:///home/user/digit.png" }), "file-path"],
      ["a Windows path", () => "C:\\Users\\me\\digit.png", "file-path"],
      ["a pixel array of the wrong length", () => new Array(100).fill(0), "bad-pixels", /784 values/],
      ["pixels that are NaN", () => new Array(784).fill(Number.NaN), "bad-pixels", /NaN/],
      ["pixels that are Infinity", () => new Array(784).fill(Number.POSITIVE_INFINITY), "bad-pixels"],
      ["pixels of 1e308", () => new Array(784).fill(1e308), "bad-pixels"],
      ["a label that is not a digit", () => ({ label: 12, image: png().toString("base64") }), "bad-label"],
      ["a blank image", () => new Array(784).fill(0), "no-ink"],
      ["a corrupt JPEG", () => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(100, 7)]), "corrupt"],
    ];
    for (const [name, payload, code, pattern] of cases) {
      it(`refuses ${name} (${code})`, async () => {
        const node = await loadInfer();
        await expectError(node, { payload: payload() }, code, pattern);
        await expectDigit(node, { payload: png() }, samples[5].label);
      });
    }

    it("reads a JPEG sent as base64, although its base64 starts like a path (/9j/…)", async () => {
      const node = await loadInfer();
      const jpeg = await sharp(samples[3].bytes).jpeg({ quality: 95 }).toBuffer();
      assert.ok(jpeg.toString("base64").startsWith("/9j/"));
      await expectDigit(node, { payload: jpeg.toString("base64") }, samples[3].label);
    });

    it("keeps the request id on an error when the envelope had one", async () => {
      const node = await loadInfer();
      const err = await expectError(node, { payload: { id: "keep-me", image: "!!!" } }, "bad-base64");
      assert.equal(err.id, "keep-me");
    });
  });
});
