"use strict";
// The package's own PNG decoder (image/png.ts) on PNGs written by sharp, whose
// rows use every one of PNG's five row filters, in every colour type it decodes,
// and on palette and low-bit grey PNGs against sharp's own decoding.
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const zlib = require("zlib");
const sharp = require("sharp");

const { decodePng, pngOfScanlines } = require("../dist/nodes/mnist-infer/image/png.js");
const { inflateImageData } = require("../dist/nodes/mnist-infer/image/inflate.js");

/** A seeded mix of smooth gradients, edges and noise: libpng's adaptive filtering then picks every filter. */
function pixels(width, height, channels, seed) {
  const data = Buffer.alloc(width * height * channels);
  let state = seed;
  for (let i = 0; i < data.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    const x = Math.floor(i / channels) % width;
    const y = Math.floor(i / channels / width);
    data[i] = seed % 3 === 0 ? (x * 9 + y * 5 + (i % channels) * 40) & 255 : seed % 3 === 1 ? ((x ^ y) * 17 + (state >>> 29)) & 255 : state >>> 24;
  }
  return data;
}

/** The row filter of each row, read from the PNG's inflated image data. */
function rowFilters(png, rowBytes) {
  const idat = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    if (png.toString("latin1", at + 4, at + 8) === "IDAT") idat.push(png.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  return Array.from({ length: raw.length / (rowBytes + 1) }, (_, y) => raw[y * (rowBytes + 1)]);
}

describe("PNG decoding", () => {
  it("decodes every row filter, in place: grey, grey with alpha, RGB and RGBA PNGs written by sharp", async () => {
    const filtersSeen = new Set();
    const colourTypesSeen = new Set();
    for (const channels of [1, 2, 3, 4]) {
      for (let seed = 1; seed <= 6; seed++) {
        const [width, height] = [17 + seed * 5, 9 + seed * 3];
        const original = pixels(width, height, channels, seed);
        let image = sharp(original, { raw: { width, height, channels } });
        if (channels <= 2) image = image.toColourspace("b-w"); // written as grey, not as RGB
        const png = await image.png({ adaptiveFiltering: true }).toBuffer();
        colourTypesSeen.add(png[25]); // IHDR's colour type
        for (const filter of rowFilters(png, width * channels)) filtersSeen.add(filter);
        const decoded = decodePng(png);
        assert.deepEqual([decoded.width, decoded.height, decoded.channels], [width, height, channels], `${channels} channels, seed ${seed}`);
        assert.equal(decoded.data.length, width * height * channels, "no filter bytes or spare bytes left in the pixels");
        // PNG is lossless: the pixels sharp was given.
        assert.ok(Buffer.from(decoded.data).equals(original), `the pixels sharp encoded: ${channels} channels, seed ${seed}`);
      }
    }
    assert.deepEqual([...colourTypesSeen].sort(), [0, 2, 4, 6], "grey, RGB, grey with alpha and RGBA PNGs");
    assert.deepEqual([...filtersSeen].sort(), [0, 1, 2, 3, 4], "the PNGs used all five row filters");
  });

  it("decodes palette and 1-, 2- and 4-bit grey PNGs as sharp does", async () => {
    const [width, height] = [23, 19];
    const cases = [
      // Over 16 colours, so 8 bits per index (the decoder leaves smaller palettes to sharp).
      ["a palette of 100 colours", await sharp(pixels(width, height, 3, 4), { raw: { width, height, channels: 3 } }).png({ palette: true, colours: 100, dither: 0 }).toBuffer(), 4],
      ["a palette with transparency", await sharp(pixels(width, height, 4, 5), { raw: { width, height, channels: 4 } }).png({ palette: true, colours: 100, dither: 0 }).toBuffer(), 4],
      ...[1, 2, 4].map((bits) => [`${bits}-bit grey`, lowBitGreyPng(width, height, bits), 1]),
    ];
    for (const [name, png, channels] of cases) {
      const decoded = decodePng(png);
      const expected = await sharp(png)[channels === 4 ? "ensureAlpha" : "toColourspace"](channels === 4 ? 1 : "b-w").raw().toBuffer();
      assert.equal(decoded.channels, channels, name);
      assert.ok(Buffer.from(decoded.data).equals(expected), `the same pixels as sharp: ${name}`);
    }
  });
});

describe("PNG image data inflation (one reused zlib state)", () => {
  /** zlib.inflateSync's answer, as decodePng used to take it: the bytes, or the error it throws. */
  function outcome(inflate) {
    try {
      return `bytes ${inflate().toString("base64")}`;
    } catch (err) {
      return `error ${err.code}: ${err.message}`;
    }
  }

  it("gives zlib.inflateSync's bytes or error for damaged streams, and a good stream after each still inflates", () => {
    const plain = pixels(29, 28, 1, 2); // a 28×28 grey image's rows with their filter bytes
    const good = zlib.deflateSync(plain);
    let state = 7;
    const random = (n) => ((state = (state * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const damaged = [
      ["truncated", good.subarray(0, good.length - 9)],
      ["no Adler-32 check", good.subarray(0, good.length - 4)],
      ["longer than the header says (a bomb)", zlib.deflateSync(Buffer.concat([plain, Buffer.alloc(5000)]))],
      ["one byte longer than the header says", zlib.deflateSync(Buffer.concat([plain, Buffer.alloc(1)]))],
      ["shorter than the header says", zlib.deflateSync(plain.subarray(0, 600))],
      ["empty", Buffer.alloc(0)],
      ["not zlib at all", Buffer.from("not a zlib stream")],
      ["trailing bytes after the stream", Buffer.concat([good, Buffer.from([1, 2, 3])])],
      ...Array.from({ length: 300 }, (_, i) => {
        const copy = Buffer.from(good);
        for (let k = 0; k <= i % 3; k++) copy[random(copy.length)] ^= 1 << random(8);
        return [`bit flips ${i}`, copy];
      }),
    ];
    let refused = 0;
    for (const [name, data] of damaged) {
      const expected = outcome(() => zlib.inflateSync(data, { maxOutputLength: plain.length + 1, chunkSize: plain.length + 1 }));
      assert.equal(outcome(() => inflateImageData(data, plain.length)), expected, name);
      if (expected.startsWith("error")) refused++;
      assert.ok(inflateImageData(good, plain.length).equals(plain), `a good stream after: ${name}`);
    }
    assert.ok(refused > 100, `most damage is refused (${refused} of ${damaged.length})`);
    assert.match(outcome(() => inflateImageData(damaged[2][1], plain.length)), /^error ERR_BUFFER_TOO_LARGE/, "the bomb is refused, not inflated");
  });

  it("keeps each image's bytes its own: a second inflate does not overwrite the first", () => {
    const first = pixels(29, 28, 1, 3);
    const second = pixels(29, 28, 1, 4);
    const a = inflateImageData(zlib.deflateSync(first), first.length);
    const b = inflateImageData(zlib.deflateSync(second), second.length);
    assert.ok(a.equals(first) && b.equals(second));
  });
});

/** A greyscale PNG of `bits` bits per pixel (sharp writes these only for palettes), with a Sub filter on odd rows. */
function lowBitGreyPng(width, height, bits) {
  const stride = Math.ceil((width * bits) / 8);
  const rows = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const packed = Buffer.alloc(stride);
    for (let x = 0; x < width; x++) {
      const level = (x + y * 3) % (1 << bits);
      packed[Math.floor((x * bits) / 8)] |= level << (8 - bits - ((x * bits) % 8));
    }
    const row = y * (stride + 1);
    rows[row] = y % 2; // None on even rows, Sub (byte minus the byte to its left) on odd ones
    for (let i = 0; i < stride; i++) rows[row + 1 + i] = y % 2 ? (packed[i] - (i > 0 ? packed[i - 1] : 0)) & 255 : packed[i];
  }
  return pngOfScanlines(rows, width, height, bits, 0);
}
