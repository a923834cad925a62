// A small PNG codec in plain JavaScript. sharp costs about a millisecond per
// call even for a 28×28 digit; this decoder handles the common non-interlaced
// PNGs in microseconds, and sharp remains the fallback for everything else.
import * as zlib from "zlib";
import { isPng, PNG_SIGNATURE } from "../../shared/image-format";
import { InputError } from "../errors";
import { inflateImageData } from "./inflate";
import type { RawImage } from "./raw-image";

/** Channels per colour type (PNG spec 11.2.2, table 11.1). */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colourType: number;
  interlaced: boolean;
}

/** Reads IHDR only, so callers can refuse huge images before inflating anything. */
export function readPngHeader(bytes: Uint8Array): PngHeader {
  if (!isPng(bytes) || bytes.length < 33) throw new InputError("truncated", "the PNG is truncated (no complete header)");
  // Read from the bytes as they are (no Buffer view): this runs for every request.
  if (bytes[12] !== 0x49 || bytes[13] !== 0x48 || bytes[14] !== 0x44 || bytes[15] !== 0x52) throw new InputError("corrupt", "the PNG has no IHDR header chunk");
  const header = {
    width: uint32(bytes, 16),
    height: uint32(bytes, 20),
    bitDepth: bytes[24],
    colourType: bytes[25],
    interlaced: bytes[28] === 1,
  };
  if (header.width === 0 || header.height === 0) throw new InputError("corrupt", "the PNG header says the image is empty (0 pixels)");
  if (!(header.colourType in CHANNELS)) throw new InputError("corrupt", `the PNG has an invalid colour type ${header.colourType}`);
  return header;
}

/** Chunk types as big-endian numbers (PNG spec 5.4). */
const IDAT = 0x49444154;
const PLTE = 0x504c5445;
const TRNS = 0x74524e53;
const IEND = 0x49454e44;

function chunkName(type: number): string {
  return String.fromCharCode(type >>> 24, (type >>> 16) & 0xff, (type >>> 8) & 0xff, type & 0xff);
}

/** A big-endian unsigned 32-bit number. */
function uint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) >>> 0) + (bytes[at + 1] << 16) + (bytes[at + 2] << 8) + bytes[at + 3];
}

/** True when decodePng below can handle the image (the rest goes to sharp). */
export function canDecodeFast(header: PngHeader): boolean {
  return !header.interlaced && (header.bitDepth === 8 || (header.bitDepth < 8 && header.colourType === 0));
}

/**
 * Decodes a non-interlaced 8-bit PNG (any colour type, palette included) or a
 * 1/2/4-bit greyscale PNG. The caller has already checked the pixel limit.
 */
export function decodePng(bytes: Uint8Array): RawImage {
  const header = readPngHeader(bytes);
  if (!canDecodeFast(header)) throw new InputError("unsupported", "this PNG layout needs the general decoder");
  // Chunks are walked on the bytes as they are (no Buffer views, no type strings): this runs per image.
  const idat: Uint8Array[] = [];
  let palette: Uint8Array | undefined;
  let transparency: Uint8Array | undefined;
  let offset = 8;
  let ended = false;
  while (offset + 8 <= bytes.length) {
    const length = uint32(bytes, offset);
    const type = uint32(bytes, offset + 4);
    const start = offset + 8;
    if (start + length > bytes.length) throw new InputError("truncated", `the PNG is truncated inside its ${chunkName(type)} chunk`);
    if (type === IDAT) idat.push(bytes.subarray(start, start + length));
    else if (type === PLTE) palette = bytes.subarray(start, start + length);
    else if (type === TRNS) transparency = bytes.subarray(start, start + length);
    else if (type === IEND) { ended = true; break; }
    offset = start + length + 4; // skip the CRC
  }
  if (idat.length === 0) throw new InputError("truncated", "the PNG has no image data (IDAT)");
  if (!ended) throw new InputError("truncated", "the PNG is truncated (no IEND chunk)");

  const { width, height, bitDepth, colourType } = header;
  const channels = CHANNELS[colourType];
  const bitsPerPixel = channels * bitDepth;
  const stride = Math.ceil((width * bitsPerPixel) / 8);
  const bytesPerPixel = Math.max(1, bitsPerPixel >> 3);
  let inflated: Buffer;
  try {
    // Never more than one byte past what the header promised: a deflate bomb is refused, not allocated.
    inflated = inflateImageData(idat.length === 1 ? idat[0] : Buffer.concat(idat), (stride + 1) * height);
  } catch {
    throw new InputError("corrupt", "the PNG image data is corrupt or truncated");
  }
  if (inflated.length < (stride + 1) * height) throw new InputError("truncated", "the PNG image data is shorter than its header says");

  const rows = unfilterInPlace(new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.length), stride, height, bytesPerPixel);
  if (colourType === 3) return expandPalette(rows, width, height, palette, transparency);
  if (bitDepth < 8) return expandLowBitGrey(rows, width, height, stride, bitDepth);
  return { data: rows, width, height, channels };
}

/**
 * Reverses the per-row filters (PNG spec 9.2) in the inflated bytes themselves,
 * dropping each row's filter byte: row y moves y + 1 bytes towards the start,
 * so every byte is written after it was read, and the row above is final when
 * it is read. One tight loop per filter type: this runs for every request, and a
 * switch per byte made it the decoder's slowest part; an unfiltered row is one
 * copyWithin (half the time of a loop over a new array, and no allocation).
 */
function unfilterInPlace(src: Uint8Array, stride: number, height: number, bpp: number): Uint8Array {
  const out = src;
  for (let y = 0; y < height; y++) {
    const filter = src[y * (stride + 1)];
    const inRow = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    const first = Math.min(bpp, stride); // bytes with no left neighbour
    if (filter === 0 || (filter === 2 && y === 0)) {
      out.copyWithin(row, inRow, inRow + stride);
    } else if (filter === 1) {
      for (let x = 0; x < first; x++) out[row + x] = src[inRow + x];
      for (let x = first; x < stride; x++) out[row + x] = (src[inRow + x] + out[row + x - bpp]) & 0xff;
    } else if (filter === 2) {
      for (let x = 0; x < stride; x++) out[row + x] = (src[inRow + x] + out[prev + x]) & 0xff;
    } else if (filter === 3) {
      if (y === 0) {
        for (let x = 0; x < first; x++) out[row + x] = src[inRow + x];
        for (let x = first; x < stride; x++) out[row + x] = (src[inRow + x] + (out[row + x - bpp] >> 1)) & 0xff;
      } else {
        for (let x = 0; x < first; x++) out[row + x] = (src[inRow + x] + (out[prev + x] >> 1)) & 0xff;
        for (let x = first; x < stride; x++) out[row + x] = (src[inRow + x] + ((out[row + x - bpp] + out[prev + x]) >> 1)) & 0xff;
      }
    } else if (filter === 4) {
      if (y === 0) {
        // Paeth with no row above predicts from the left neighbour alone.
        for (let x = 0; x < first; x++) out[row + x] = src[inRow + x];
        for (let x = first; x < stride; x++) out[row + x] = (src[inRow + x] + out[row + x - bpp]) & 0xff;
      } else {
        for (let x = 0; x < first; x++) out[row + x] = (src[inRow + x] + out[prev + x]) & 0xff;
        for (let x = first; x < stride; x++) {
          const a = out[row + x - bpp];
          const b = out[prev + x];
          const c = out[prev + x - bpp];
          const p = a + b - c;
          const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
          out[row + x] = (src[inRow + x] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff;
        }
      }
    } else {
      throw new InputError("corrupt", `the PNG uses an unknown row filter ${filter}`);
    }
  }
  return out.subarray(0, stride * height);
}

function expandPalette(indices: Uint8Array, width: number, height: number, palette?: Uint8Array, trns?: Uint8Array): RawImage {
  if (!palette) throw new InputError("corrupt", "the palette PNG has no PLTE chunk");
  const out = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const index = indices[i];
    if (index * 3 + 2 >= palette.length) throw new InputError("corrupt", "the PNG refers to a colour outside its palette");
    out[i * 4] = palette[index * 3];
    out[i * 4 + 1] = palette[index * 3 + 1];
    out[i * 4 + 2] = palette[index * 3 + 2];
    out[i * 4 + 3] = trns && index < trns.length ? trns[index] : 255;
  }
  return { data: out, width, height, channels: 4 };
}

function expandLowBitGrey(packed: Uint8Array, width: number, height: number, stride: number, bitDepth: number): RawImage {
  const out = new Uint8Array(width * height);
  const max = (1 << bitDepth) - 1;
  const perByte = 8 / bitDepth;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const byte = packed[y * stride + Math.floor(x / perByte)];
      const shift = 8 - bitDepth * ((x % perByte) + 1);
      out[y * width + x] = Math.round((((byte >> shift) & max) * 255) / max);
    }
  }
  return { data: out, width, height, channels: 1 };
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** Encodes 8-bit greyscale pixels as a PNG (used for the "what the model saw" output). */
export function encodeGreyPng(pixels: Uint8Array, width: number, height: number): Buffer {
  const scanlines = Buffer.alloc((width + 1) * height); // filter byte 0 (none) before each row
  for (let y = 0; y < height; y++) {
    scanlines.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  }
  return pngOfScanlines(scanlines, width, height, 8, 0);
}

/** A PNG file of rows already laid out as PNG stores them, each after its filter byte (PNG spec 7.3). */
export function pngOfScanlines(scanlines: Buffer, width: number, height: number, bitDepth: number, colourType: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colourType;
  return Buffer.concat([PNG_SIGNATURE, chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(scanlines)), chunk("IEND", Buffer.alloc(0))]);
}
