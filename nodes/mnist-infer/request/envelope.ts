// Everything a user may send to mnist-infer, reduced to one of two request
// shapes: one image (bytes or decoded pixels) or a batch of them, plus the
// id / label / sentAt / threshold that travel with it.
import { ACCEPTED, InputError } from "../errors";
import type { RawImage } from "../image/raw-image";
import { pixelsFromArray, pixelsFromObject } from "./pixels";

export type ImageInput = { kind: "bytes"; bytes: Buffer } | { kind: "pixels"; image: RawImage };

interface RequestMeta {
  id?: string | number;
  sentAt?: number;
  /** This request's own "unsure below" confidence, overriding the node's. */
  threshold?: number;
}

export interface ImageRequest extends RequestMeta {
  image: ImageInput;
  label?: number;
}

/**
 * `{"id", "images": [...], "labels"?: [...]}`: each item anything `image` takes.
 * An item that cannot be read is its error, answered in its own slot.
 */
export interface BatchRequest extends RequestMeta {
  images: Array<ImageInput | InputError>;
  labels?: Array<number | undefined>;
}

export type Request = ImageRequest | BatchRequest;

export interface RequestLimits {
  /** Largest encoded image or JSON text accepted, in bytes. */
  maxBytes: number;
  /** Largest width × height accepted (also for pixel arrays). */
  maxPixels: number;
  /** Most images one batch request may carry. */
  maxBatchImages: number;
}

/** Keys an envelope may carry; anything else is ignored rather than refused. */
interface Envelope {
  id?: unknown;
  label?: unknown;
  image?: unknown;
  images?: unknown;
  labels?: unknown;
  sentAt?: unknown;
  threshold?: unknown;
}

const MAX_ID_LENGTH = 256;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * Parses the configured message property. `fallback` supplies msg.id / msg.label
 * when the value itself carries none.
 */
export function parseRequest(value: unknown, fallback: Envelope, limits: RequestLimits): Request {
  if (value === undefined || value === null) throw new InputError("empty", `no image in the message (the property is ${value}); ${ACCEPTED}`);
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return fromBytes(Buffer.from(value.buffer, value.byteOffset, value.byteLength), fallback, limits);
  if (typeof value === "string") return fromText(value, fallback, limits);
  if (Array.isArray(value) || value instanceof Float32Array || value instanceof Float64Array) {
    return withMeta({ kind: "pixels", image: pixelsFromArray(value, limits) }, fallback, fallback);
  }
  if (typeof value === "object") return fromObject(value as Record<string, unknown>, fallback, limits);
  throw new InputError("unsupported", `cannot classify a ${typeof value}; ${ACCEPTED}`);
}

function fromBytes(bytes: Buffer, fallback: Envelope, limits: RequestLimits): Request {
  if (bytes.length === 0) throw new InputError("empty", `the image is empty (0 bytes); ${ACCEPTED}`);
  if (bytes.length > limits.maxBytes) {
    throw new InputError("too-large", `the payload is ${bytes.length} bytes, over the limit of ${limits.maxBytes} bytes`);
  }
  const first = firstNonSpace(bytes);
  // JSON arrives as a Buffer from mqtt in set to "buffer"; text base64 likewise.
  if (first === 0x7b /* { */ || first === 0x5b /* [ */) return fromText(bytes.toString("utf8"), fallback, limits);
  if (looksLikeText(bytes)) return fromText(bytes.toString("latin1"), fallback, limits);
  return withMeta({ kind: "bytes", bytes }, fallback, fallback);
}

function fromText(text: string, fallback: Envelope, limits: RequestLimits): Request {
  const trimmed = text.trim();
  if (trimmed.length === 0) throw new InputError("empty", `the message is an empty string; ${ACCEPTED}`);
  if (trimmed.length > limits.maxBytes * 1.4) throw new InputError("too-large", `the text is ${trimmed.length} characters, over the limit for a ${limits.maxBytes}-byte image`);
  if (trimmed[0] === "{" || trimmed[0] === "[") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (err) {
      throw new InputError("bad-json", `the message looks like JSON but does not parse (${(err as Error).message}); ${ACCEPTED}`);
    }
    if (Array.isArray(parsed)) return withMeta({ kind: "pixels", image: pixelsFromArray(parsed, limits) }, fallback, fallback);
    if (parsed === null || typeof parsed !== "object") throw new InputError("bad-envelope", `the JSON is not an object; ${ACCEPTED}`);
    return fromObject(parsed as Record<string, unknown>, fallback, limits);
  }
  return withMeta({ kind: "bytes", bytes: decodeBase64(trimmed, limits) }, fallback, fallback);
}

function fromObject(value: Record<string, unknown>, fallback: Envelope, limits: RequestLimits): Request {
  // A Buffer that went through JSON.stringify: {"type":"Buffer","data":[...]}
  if (value.type === "Buffer" && Array.isArray(value.data)) return fromBytes(Buffer.from(value.data as number[]), fallback, limits);
  if ("data" in value && "width" in value && "height" in value) {
    return withMeta({ kind: "pixels", image: pixelsFromObject(value, limits) }, fallback, fallback);
  }
  try {
    if ("images" in value) return batchOf(value, fallback, limits);
    if (!("image" in value)) {
      throw new InputError("bad-envelope", `the object has no "image" field (keys: ${Object.keys(value).slice(0, 8).join(", ") || "none"}); ${ACCEPTED}`);
    }
    return withMeta(imageOf(value.image, limits), value, fallback);
  } catch (err) {
    // Keep the id when only the image was bad, so the error reply can name the request.
    const id = value.id ?? fallback.id;
    if (err instanceof InputError && (typeof id === "string" || typeof id === "number")) err.requestId = id;
    throw err;
  }
}

function imageOf(image: unknown, limits: RequestLimits): ImageInput {
  if (typeof image === "string") {
    if (image.trim().length === 0) throw new InputError("empty", 'the envelope\'s "image" is an empty string');
    return { kind: "bytes", bytes: decodeBase64(image.trim(), limits) };
  }
  if (Array.isArray(image)) return { kind: "pixels", image: pixelsFromArray(image, limits) };
  if (image !== null && typeof image === "object" && "data" in image) {
    return { kind: "pixels", image: pixelsFromObject(image as Record<string, unknown>, limits) };
  }
  throw new InputError("bad-envelope", `the envelope's "image" is ${image === null ? "null" : typeof image}; it must be a base64 string, a data: URL or a pixel array`);
}

function batchOf(value: Envelope, fallback: Envelope, limits: RequestLimits): BatchRequest {
  const { images, labels } = value;
  if (!Array.isArray(images)) throw new InputError("bad-envelope", `"images" must be an array of images (each anything "image" takes), not ${images === null ? "null" : typeof images}`);
  if (images.length === 0) throw new InputError("empty", 'the batch request\'s "images" is empty');
  if (images.length > limits.maxBatchImages) {
    throw new InputError("too-large", `the batch request has ${images.length} images, over the limit of ${limits.maxBatchImages}; split it`);
  }
  if (labels !== undefined && labels !== null && (!Array.isArray(labels) || labels.length !== images.length)) {
    throw new InputError("bad-label", `"labels" must be an array with one label (a digit 0–9, or null) per image: ${images.length}`);
  }
  const request: BatchRequest = { images: images.map((image) => itemOf(image, limits)) };
  if (Array.isArray(labels)) request.labels = labels.map((label) => digitOf(label));
  addMeta(request, value, fallback);
  return request;
}

/** One image of a batch: read as `image` would be, or its error. */
function itemOf(image: unknown, limits: RequestLimits): ImageInput | InputError {
  try {
    return imageOf(image, limits);
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
}

function withMeta(image: ImageInput, source: Envelope, fallback: Envelope): ImageRequest {
  const request: ImageRequest = { image };
  addMeta(request, source, fallback);
  const label = digitOf(source.label ?? fallback.label);
  if (label !== undefined) request.label = label;
  return request;
}

/** A label: a digit 0–9 (or its text), or undefined when absent. */
function digitOf(label: unknown): number | undefined {
  if (label === undefined || label === null || label === "") return undefined;
  const digit = typeof label === "string" ? Number(label.trim()) : label;
  if (typeof digit !== "number" || !Number.isInteger(digit) || digit < 0 || digit > 9) {
    throw new InputError("bad-label", `"label" must be a digit 0–9, got ${JSON.stringify(label).slice(0, 40)}`);
  }
  return digit;
}

/** Adds the id, sentAt and threshold to `request` (written in place: this runs for every request). */
function addMeta(request: RequestMeta, source: Envelope, fallback: Envelope): void {
  const id = source.id ?? fallback.id;
  if (id !== undefined && id !== null) {
    if ((typeof id !== "string" && typeof id !== "number") || String(id).length > MAX_ID_LENGTH) {
      throw new InputError("bad-envelope", `"id" must be a string or number of at most ${MAX_ID_LENGTH} characters`);
    }
    request.id = id;
  }
  const sentAt = source.sentAt ?? fallback.sentAt;
  if (typeof sentAt === "number" && Number.isFinite(sentAt)) request.sentAt = sentAt;
  const threshold = source.threshold ?? fallback.threshold;
  if (threshold !== undefined && threshold !== null && threshold !== "") {
    const value = typeof threshold === "string" ? Number(threshold.trim()) : threshold;
    if (typeof value !== "number" || !(value >= 0 && value <= 1)) {
      throw new InputError("bad-threshold", `"threshold" must be a confidence from 0 to 1 below which a result is unsure, got ${JSON.stringify(threshold).slice(0, 40)}`);
    }
    request.threshold = value;
  }
}

/**
 * A file path or file: URL rather than an image: say so, rather than "not
 * base64". Base64 has neither "." nor a backslash, and a real image's base64 (a JPEG's
 * starts with "/9j/") is longer than any path without them.
 */
function looksLikePath(text: string): boolean {
  const t = text.trim();
  if (t.length > 1024) return false;
  if (/^file:/i.test(t) || /^[a-z]:[\\/]/i.test(t) || t.startsWith("\\\\")) return true;
  return /^(~|\.{1,2})?[\\/]/.test(t) && (t.length < 128 || /[.\\]/.test(t));
}

function decodeBase64(text: string, limits: RequestLimits): Buffer {
  if (looksLikePath(text)) {
    throw new InputError("file-path", `the text looks like a file path (${describeText(text)}); mnist-infer never reads files named in messages: send the image itself. ${ACCEPTED}`);
  }
  let body = text;
  if (body.startsWith("data:")) {
    const comma = body.indexOf(",");
    const header = comma < 0 ? body : body.slice(0, comma);
    if (comma < 0 || !/;base64$/i.test(header)) {
      throw new InputError("bad-base64", 'a data: URL must be base64-encoded ("data:image/png;base64,...")');
    }
    body = body.slice(comma + 1);
  }
  // White space (line breaks of MIME base64) is rare: removed only when the text does not pass as it is.
  let valid = BASE64.test(body);
  if (!valid) {
    body = body.replace(/\s+/g, "");
    valid = BASE64.test(body);
  }
  if (!valid || body.length % 4 === 1) {
    throw new InputError("bad-base64", `the text is neither JSON nor valid base64 (${describeText(text)}); ${ACCEPTED}`);
  }
  if ((body.length * 3) / 4 > limits.maxBytes) {
    throw new InputError("too-large", `the base64 image is about ${Math.round((body.length * 3) / 4)} bytes, over the limit of ${limits.maxBytes} bytes`);
  }
  const bytes = Buffer.from(body, "base64");
  if (bytes.length === 0) throw new InputError("empty", "the base64 text decodes to 0 bytes");
  return bytes;
}

function firstNonSpace(bytes: Buffer): number {
  for (let i = 0; i < Math.min(bytes.length, 64); i++) {
    const b = bytes[i];
    if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return b;
  }
  return -1;
}

/** Printable ASCII only in the first bytes: base64, a data: URL, or some other text. */
function looksLikeText(bytes: Buffer): boolean {
  const n = Math.min(bytes.length, 256);
  for (let i = 0; i < n; i++) {
    const b = bytes[i];
    if ((b < 0x20 || b > 0x7e) && b !== 0x09 && b !== 0x0a && b !== 0x0d) return false;
  }
  return true;
}

function describeText(text: string): string {
  const start = text.slice(0, 24).replace(/[^\x20-\x7e]/g, "?");
  return `it starts with "${start}${text.length > 24 ? "…" : ""}"`;
}
