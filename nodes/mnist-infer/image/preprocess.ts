// Turns any decoded image into the 28×28 input MNIST was made of: white ink on
// black, the digit fitted into a 20×20 box (aspect kept) and centred by its
// centre of mass (LeCun et al., "The MNIST database", normalisation notes).
// This is what lets photos and scans work, not only perfect MNIST crops.
import { InputError } from "../errors";
import { inkBox, type Box } from "./ink-box";
import { BYTE_TO_UNIT, preprocessMnistStyle, SIDE } from "./mnist-style";
import type { RawImage } from "./raw-image";

export { SIDE };
const BOX = 20;
/**
 * Working buffers for images up to 64×64 pixels (the chain's 28×28 digits),
 * reused from call to call: preprocess is synchronous and allocating them took
 * a fifth of its time. Larger images get buffers of their own.
 */
const SCRATCH_PIXELS = 4096;
const greyScratch = new Float32Array(SCRATCH_PIXELS);
const borderScratch = new Float32Array(SCRATCH_PIXELS);

export interface Preprocessed {
  /** 784 values in 0–1, ink high, row-major. */
  pixels: Float32Array;
  /** The input had a light background and was inverted. */
  inverted: boolean;
}

/**
 * `into`, when given, receives the 784 values at `offset` (the worker's batch
 * tensor): one allocation and one copy less per image.
 */
export function preprocess(image: RawImage, into?: Float32Array, offset = 0): Preprocessed {
  const { width, height } = image;
  // The chain's own traffic, already MNIST-style, needs only re-centring (mnist-style.ts: same values, fewer passes).
  if (width === SIDE && height === SIDE && image.channels === 1 && image.data instanceof Uint8Array && (image.maxValue ?? 255) === 255) {
    const out = into ? into.subarray(offset, offset + SIDE * SIDE) : new Float32Array(SIDE * SIDE);
    if (preprocessMnistStyle(image.data, out)) return { pixels: out, inverted: false };
  }
  const grey = toGrey(image);

  // A light border means dark ink on paper or a screen: flip to MNIST's polarity.
  const borderLevel = median(borderValues(grey, width, height));
  const inverted = borderLevel > 0.5;
  if (inverted) for (let i = 0; i < grey.length; i++) grey[i] = 1 - grey[i];

  const background = inverted ? 1 - borderLevel : borderLevel;
  let peak = 0;
  for (let i = 0; i < grey.length; i++) if (grey[i] > peak) peak = grey[i];
  if (peak - background < 0.1) {
    throw new InputError("no-ink", "the image shows no digit (it is blank or has almost no contrast); send a digit darker or lighter than its background");
  }
  // Clean MNIST-style input is left alone; anything else is stretched to 0–1
  // with a noise floor, so grey paper and uneven light do not read as ink.
  const clean = background < 0.02 && peak > 0.9;
  if (!clean) {
    const floor = 0.2;
    for (let i = 0; i < grey.length; i++) {
      const v = (grey[i] - background) / (peak - background);
      grey[i] = v <= floor ? 0 : Math.min(1, (v - floor) / (1 - floor));
    }
  }

  const box = inkBox(grey, width, height);
  const longest = Math.max(box.right - box.left, box.bottom - box.top);
  // Already a 28×28 MNIST-style digit: only re-centred.
  const alreadyMnist = clean && !inverted && width === SIDE && height === SIDE && longest >= 16 && longest <= 22;
  const out = into ? into.subarray(offset, offset + SIDE * SIDE).fill(0) : new Float32Array(SIDE * SIDE);
  if (alreadyMnist) return { pixels: centreByMass(grey, SIDE, SIDE, out), inverted };

  const scale = BOX / longest;
  const outW = Math.max(1, Math.round((box.right - box.left) * scale));
  const outH = Math.max(1, Math.round((box.bottom - box.top) * scale));
  const fitted = resampleArea(grey, width, box, outW, outH);
  return { pixels: centreByMass(fitted, outW, outH, out), inverted };
}

/** Luminance in 0–1. Transparent pixels take the colour that contrasts with the ink. */
function toGrey(image: RawImage): Float32Array {
  const { data, width, height, channels } = image;
  const max = image.maxValue ?? 255;
  const n = width * height;
  const grey = n <= SCRATCH_PIXELS ? greyScratch.subarray(0, n) : new Float32Array(n);
  if (channels === 1) {
    // Greyscale: the common case, MNIST-style PNGs.
    if (data instanceof Uint8Array && max === 255) for (let i = 0; i < n; i++) grey[i] = BYTE_TO_UNIT[data[i]];
    else for (let i = 0; i < n; i++) grey[i] = data[i] / max;
    return grey;
  }
  const hasAlpha = channels === 2 || channels === 4;
  const colour = channels >= 3;
  let inkSum = 0;
  let inkWeight = 0;
  let transparent = 0;
  for (let i = 0; i < n; i++) {
    const p = i * channels;
    grey[i] = colour ? (0.299 * data[p] + 0.587 * data[p + 1] + 0.114 * data[p + 2]) / max : data[p] / max;
    if (hasAlpha) {
      const alpha = data[p + channels - 1] / max;
      inkSum += grey[i] * alpha;
      inkWeight += alpha;
      if (alpha < 0.5) transparent++;
    }
  }
  if (!hasAlpha || transparent === 0) return grey;
  // Strokes drawn on a transparent canvas: composite over the opposite shade.
  const backdrop = inkWeight > 0 && inkSum / inkWeight < 0.5 ? 1 : 0;
  for (let i = 0; i < n; i++) {
    const alpha = data[i * channels + channels - 1] / max;
    grey[i] = alpha * grey[i] + (1 - alpha) * backdrop;
  }
  return grey;
}

function borderValues(grey: Float32Array, width: number, height: number): Float32Array {
  const count = 2 * width + 2 * Math.max(0, height - 2);
  const values = count <= SCRATCH_PIXELS ? borderScratch.subarray(0, count) : new Float32Array(count);
  let k = 0;
  for (let x = 0; x < width; x++) {
    values[k++] = grey[x];
    values[k++] = grey[(height - 1) * width + x];
  }
  for (let y = 1; y < height - 1; y++) {
    values[k++] = grey[y * width];
    values[k++] = grey[y * width + width - 1];
  }
  return values;
}

/** The value at index length/2 of `values` once sorted, by quickselect (Hoare); reorders `values`. */
function median(values: Float32Array): number {
  const k = values.length >> 1;
  let lo = 0;
  let hi = values.length - 1;
  while (lo < hi) {
    const pivot = values[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[i] < pivot) i++;
      while (values[j] > pivot) j--;
      if (i <= j) {
        const t = values[i];
        values[i++] = values[j];
        values[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return values[k];
}

/** Area-averaging resample of the box into outW×outH: no aliasing when shrinking photos. */
function resampleArea(grey: Float32Array, width: number, box: Box, outW: number, outH: number): Float32Array {
  const out = new Float32Array(outW * outH);
  const sx = (box.right - box.left) / outW;
  const sy = (box.bottom - box.top) / outH;
  for (let oy = 0; oy < outH; oy++) {
    const y0 = box.top + oy * sy;
    const y1 = y0 + sy;
    for (let ox = 0; ox < outW; ox++) {
      const x0 = box.left + ox * sx;
      const x1 = x0 + sx;
      let sum = 0;
      // Clamped to the box: y0 + sy can land a hair past its edge in floating point, and one row
      // or column further is outside the image (a NaN that would blank the whole input).
      for (let y = Math.floor(y0); y < Math.min(Math.ceil(y1), box.bottom); y++) {
        const wy = Math.min(y + 1, y1) - Math.max(y, y0);
        for (let x = Math.floor(x0); x < Math.min(Math.ceil(x1), box.right); x++) {
          const wx = Math.min(x + 1, x1) - Math.max(x, x0);
          sum += grey[y * width + x] * wx * wy;
        }
      }
      out[oy * outW + ox] = Math.min(1, sum / (sx * sy));
    }
  }
  return out;
}

/** Places the image in the 28×28 field `out` (zeros) so its centre of mass sits at the centre. */
function centreByMass(image: Float32Array, width: number, height: number, out: Float32Array): Float32Array {
  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = image[y * width + x];
      mass += v;
      mx += v * x;
      my += v * y;
    }
  }
  // MNIST's own digits have their centre of mass at pixel (14, 14) on average.
  const side = SIDE;
  const dx = Math.round(side / 2 - mx / mass);
  const dy = Math.round(side / 2 - my / mass);
  // The rows and columns that land inside the field (none if mass is 0: dx is NaN).
  const xFrom = Math.max(0, -dx);
  const xTo = Math.min(width, side - dx);
  const yTo = Math.min(height, side - dy);
  for (let y = Math.max(0, -dy); y < yTo; y++) {
    const from = y * width;
    const to = (y + dy) * side + dx;
    for (let x = xFrom; x < xTo; x++) out[to + x] = image[from + x];
  }
  return out;
}
