// Turns any decoded image into the 28×28 input MNIST was made of: white ink on
// black, the digit fitted into a 20×20 box (aspect kept) and centred by its
// centre of mass (LeCun et al., "The MNIST database", normalisation notes).
// This is what lets photos and scans work, not only perfect MNIST crops.
import { InputError } from "../errors";
import { borderValues } from "./border";
import { flattenBackground } from "./flatten-background";
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

  // The border's usual shade is the background, and the ink is the extreme further from it: dark
  // ink on paper or a screen is flipped to MNIST's polarity. (Splitting at 0.5 read grey paper in
  // dim light, or chalk on a pale board, the wrong way round.)
  const borderLevel = median(borderValues(grey, width, height, borderScratch));
  let darkest = 1;
  let lightest = 0;
  for (let i = 0; i < grey.length; i++) {
    if (grey[i] < darkest) darkest = grey[i];
    if (grey[i] > lightest) lightest = grey[i];
  }
  const inverted = borderLevel - darkest > lightest - borderLevel;
  if (inverted) for (let i = 0; i < grey.length; i++) grey[i] = 1 - grey[i];

  let peak = inverted ? Math.fround(1 - darkest) : lightest;
  let background = inverted ? 1 - borderLevel : borderLevel;
  // A shadow showing on the border: the paper is flattened first, and its shade and the peak read again.
  const flattenedLevel = flattenBackground(grey, width, height, background, peak);
  if (flattenedLevel !== undefined) {
    background = flattenedLevel;
    peak = 0;
    for (let i = 0; i < grey.length; i++) if (grey[i] > peak) peak = grey[i];
  }
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
  const fitted = resample(grey, width, box, outW, outH);
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
    // The table as a local: an imported binding is read as a property of the module, once per pixel.
    const toUnit = BYTE_TO_UNIT;
    if (data instanceof Uint8Array && max === 255) for (let i = 0; i < n; i++) grey[i] = toUnit[data[i]];
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

/** One axis of the resample: output cell o reads count[o] pixels from first[o], with weights summing to 1 at o × stride. */
interface AxisTaps {
  first: Int32Array;
  count: Int32Array;
  weights: Float64Array;
  stride: number;
}

/**
 * Shrinking averages the pixels under each output cell (no aliasing in large photos).
 * Enlarging interpolates between the two nearest pixel centres: area sampling
 * copied each pixel into a block, and small digits on paper came out jagged.
 */
function axisTaps(lo: number, hi: number, cells: number): AxisTaps {
  const s = (hi - lo) / cells;
  const stride = s >= 1 ? Math.ceil(s) + 1 : 2;
  const taps: AxisTaps = { first: new Int32Array(cells), count: new Int32Array(cells), weights: new Float64Array(cells * stride), stride };
  for (let o = 0; o < cells; o++) {
    const at = o * stride;
    if (s >= 1) {
      const a = lo + o * s;
      const b = a + s;
      const first = Math.floor(a);
      // Clamped to the box: b can land a hair past its edge in floating point, and one pixel
      // further may be outside the image (a NaN that would blank the whole input).
      const end = Math.min(Math.ceil(b), hi);
      taps.first[o] = first;
      taps.count[o] = end - first;
      for (let p = first; p < end; p++) taps.weights[at + p - first] = (Math.min(p + 1, b) - Math.max(p, a)) / s;
    } else {
      const centre = Math.min(Math.max(lo + (o + 0.5) * s - 0.5, lo), hi - 1);
      const p = Math.floor(centre);
      const f = centre - p;
      taps.first[o] = p;
      taps.count[o] = f > 0 ? 2 : 1;
      taps.weights[at] = 1 - f;
      taps.weights[at + 1] = f;
    }
  }
  return taps;
}

/** Resamples the box into outW×outH, one axis's taps at a time. */
function resample(grey: Float32Array, width: number, box: Box, outW: number, outH: number): Float32Array {
  const out = new Float32Array(outW * outH);
  const xs = axisTaps(box.left, box.right, outW);
  const ys = axisTaps(box.top, box.bottom, outH);
  for (let oy = 0; oy < outH; oy++) {
    for (let ox = 0; ox < outW; ox++) {
      let sum = 0;
      for (let j = 0; j < ys.count[oy]; j++) {
        const row = (ys.first[oy] + j) * width + xs.first[ox];
        let rowSum = 0;
        for (let i = 0; i < xs.count[ox]; i++) rowSum += grey[row + i] * xs.weights[ox * xs.stride + i];
        sum += rowSum * ys.weights[oy * ys.stride + j];
      }
      out[oy * outW + ox] = Math.min(1, sum);
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
