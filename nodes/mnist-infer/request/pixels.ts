// Images sent as numbers rather than encoded bytes: a 784-value array (28×28),
// or {data, width, height} with 1–4 interleaved channels.
import { InputError } from "../errors";
import type { RawImage } from "../image/raw-image";

interface PixelLimits {
  /** Largest width × height accepted, and largest count of values. */
  maxPixels: number;
}

export function pixelsFromObject(value: Record<string, unknown>, limits: PixelLimits): RawImage {
  const width = value.width;
  const height = value.height;
  if (!Number.isInteger(width) || !Number.isInteger(height) || (width as number) < 1 || (height as number) < 1) {
    throw new InputError("bad-pixels", "{data,width,height} needs positive whole numbers for width and height");
  }
  const data = value.data;
  if (!Array.isArray(data) && !ArrayBuffer.isView(data)) throw new InputError("bad-pixels", "{data,width,height} needs data as an array of numbers");
  // Checked before width × height is trusted for anything, so no request makes the node allocate more.
  if ((data as ArrayLike<number>).length > limits.maxPixels) {
    throw new InputError("too-large", `{data,width,height} has ${(data as ArrayLike<number>).length} values, over the limit of ${limits.maxPixels} (pixels × channels)`);
  }
  return pixelsFromArray(data as ArrayLike<number>, limits, width as number, height as number);
}

/**
 * Pixel values in 0–1 or 0–255 (decided by the largest value), one channel,
 * or 2–4 interleaved channels when {data,width,height} says so by its length.
 */
export function pixelsFromArray(data: ArrayLike<unknown>, limits: PixelLimits, width?: number, height?: number): RawImage {
  const length = data.length;
  if (width === undefined || height === undefined) {
    if (length !== 784) throw new InputError("bad-pixels", `a pixel array must have 784 values (28×28), got ${length}; for other sizes send {data,width,height}`);
    width = height = 28;
  }
  const pixels = width * height;
  if (pixels > limits.maxPixels) throw new InputError("too-large", `${width}×${height} pixels is over the limit of ${limits.maxPixels} pixels`);
  if (length > limits.maxPixels) throw new InputError("too-large", `${length} pixel values are over the limit of ${limits.maxPixels}`);
  const channels = length / pixels;
  if (![1, 2, 3, 4].includes(channels)) {
    throw new InputError("bad-pixels", `${length} values do not fit ${width}×${height} pixels with 1–4 channels (expected ${pixels} for greyscale)`);
  }
  const values = new Float32Array(length);
  let max = 0;
  for (let i = 0; i < length; i++) {
    const v = data[i];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 255) {
      throw new InputError("bad-pixels", `pixel ${i} is ${typeof v === "number" ? String(v) : typeof v}; every value must be a number in 0–1 or 0–255`);
    }
    values[i] = v;
    if (v > max) max = v;
  }
  return { data: values, width, height, channels, maxValue: max > 1 ? 255 : 1 };
}
