// Decides how an encoded image gets to pixels. Small plain PNGs (the MQTT
// chain's traffic) go to the inference worker undecoded, where the pure-JS
// decoder handles them in microseconds; every other format goes through sharp,
// which decodes on libuv's thread pool and so never blocks the event loop.
// sharp is optional: where its binary is missing (npm --omit=optional, a
// platform without a build), PNGs and pixel arrays still work.
import type Sharp from "sharp";
import { ACCEPTED, InputError } from "../errors";
import { isPng, sniffFormat, type ImageFormat } from "../../shared/image-format";
import { canDecodeFast, readPngHeader } from "./png";
import type { RawImage } from "./raw-image";

/** What the worker receives: PNG bytes it decodes itself, or pixels. */
export type WorkerImage = { kind: "png"; bytes: Uint8Array } | { kind: "raw"; image: RawImage };

/** The bytes a decoded request holds in the queue. */
export function workerImageBytes(image: WorkerImage): number {
  return image.kind === "png" ? image.bytes.byteLength : image.image.data.byteLength;
}

/** Larger PNGs are shrunk by sharp first: the worker should not average a 12-megapixel photo. */
const FAST_PNG_MAX_PIXELS = 1024 * 1024;
/** Photos are reduced to this size before preprocessing; the digit ends up 20 px tall anyway. */
const WORKING_SIDE = 512;

/**
 * The most memory `bytes` can take in the queue once decoded, known before
 * decoding: a small PNG waits as it is; anything else becomes pixels of at most
 * WORKING_SIDE² with up to 4 channels. The queue reserves this much up front,
 * so it never decodes a photo only to find there is no room for it.
 */
export function queuedSizeBound(bytes: Buffer): number {
  if (isPng(bytes)) {
    try {
      const header = readPngHeader(bytes);
      if (canDecodeFast(header) && header.width * header.height <= FAST_PNG_MAX_PIXELS) return bytes.length;
    } catch {
      return bytes.length; // refused as truncated or corrupt before it is queued
    }
  }
  return WORKING_SIDE * WORKING_SIDE * 4;
}

/**
 * The image as the worker takes it, when that needs no waiting: a small plain PNG
 * goes as it is, undecoded. Undefined when sharp must decode it first
 * (decodeWithSharpForWorker); an image refused outright throws here already.
 */
export function readyForWorker(bytes: Buffer, maxPixels: number): WorkerImage | undefined {
  const format = sniffFormat(bytes);
  if (format === "png") {
    const header = readPngHeader(bytes);
    checkPixels(header.width, header.height, maxPixels);
    if (canDecodeFast(header) && header.width * header.height <= FAST_PNG_MAX_PIXELS) return { kind: "png", bytes };
  } else if (format === "svg" || format === "pdf" || format === "html" || format === "unknown") {
    // SVG is refused on purpose: rendering it could fetch files it refers to.
    const what = format === "unknown" ? "not a recognised image format" : `a ${format.toUpperCase()} document, not a raster image`;
    throw new InputError("unsupported", `the bytes are ${what}; ${ACCEPTED}`);
  }
  return undefined;
}

/** An image readyForWorker left to sharp (a photo, a large or unusual PNG), as pixels for the worker. */
export async function decodeWithSharpForWorker(bytes: Buffer, maxPixels: number): Promise<WorkerImage> {
  return { kind: "raw", image: await decodeWithSharp(bytes, sniffFormat(bytes), maxPixels) };
}

let sharpModule: { sharp: typeof Sharp } | { problem: string } | undefined;

/** sharp, loaded on first use; or why it cannot load here. */
function loadSharp(): { sharp: typeof Sharp } | { problem: string } {
  if (!sharpModule) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      sharpModule = { sharp: require("sharp") as typeof Sharp };
    } catch (err) {
      sharpModule = { problem: String((err as Error)?.message ?? err).split("\n")[0].slice(0, 200) };
    }
  }
  return sharpModule;
}

/** Why images other than small PNGs cannot be read here, or undefined when they can. */
export function sharpProblem(): string | undefined {
  const loaded = loadSharp();
  return "problem" in loaded ? loaded.problem : undefined;
}

async function decodeWithSharp(bytes: Buffer, format: ImageFormat, maxPixels: number): Promise<RawImage> {
  const loaded = loadSharp();
  if ("problem" in loaded) {
    throw new InputError(
      "unsupported",
      `this ${format.toUpperCase()} needs the image library sharp, which cannot load on this Node-RED (${loaded.problem}); ` +
        "send a PNG of at most 1 megapixel (8-bit, not interlaced) or pixels instead, or install sharp",
    );
  }
  const { sharp } = loaded;
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: "error", animated: false })
      .rotate() // honour EXIF orientation: phone photos are often stored sideways
      .resize({ width: WORKING_SIDE, height: WORKING_SIDE, fit: "inside", withoutEnlargement: true })
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, channels: info.channels };
  } catch (err) {
    const reason = (err as Error).message;
    if (/pixel limit/i.test(reason)) throw new InputError("too-large", `the ${format.toUpperCase()} is larger than the limit of ${maxPixels} pixels`);
    if (format === "bmp" && /unsupported image format/i.test(reason)) {
      throw new InputError("unsupported", `BMP is not supported by this system's image library; send PNG, JPEG, WebP, GIF or TIFF instead`);
    }
    throw new InputError("corrupt", `the ${format.toUpperCase()} could not be decoded (${reason.split("\n")[0]}); it may be truncated or corrupt`);
  }
}

function checkPixels(width: number, height: number, maxPixels: number): void {
  if (width * height > maxPixels) {
    throw new InputError("too-large", `the image header says ${width}×${height} pixels, over the limit of ${maxPixels} pixels`);
  }
}
