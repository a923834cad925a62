// Uneven paper (a shadow across the page, a lamp to one side) is flattened
// before the crop looks for ink. The crop takes anything above a fifth of the
// contrast for ink, so a shadow deeper than that made it take most of the photo
// for the digit. Photos with an even border are left exactly as they were.
// Python port: models/synth/preprocess.py (flatten_background).
import { borderValues } from "./border";

/** Flattened when the border's spread (90th − 10th percentile) reaches this share of the contrast. */
const SHADING_GATE = 0.2;
/** The background is estimated on a grid whose shorter side has FLAT_GRID to 2 × FLAT_GRID − 1 cells: cheap for any photo size. */
const FLAT_GRID = 32;
/** Half the window of the opening and of the mean, as a share of the grid's shorter side: wider than any stroke. */
const FLAT_WINDOW = 0.4;

/**
 * `grey` (ink high, `width` × `height`) with its border median `background` and
 * its lightest value `peak`: subtracts the paper's unevenness from `grey` in
 * place and returns the new border median, or returns undefined and leaves
 * `grey` alone when the border is even.
 */
export function flattenBackground(grey: Float32Array, width: number, height: number, background: number, peak: number): number | undefined {
  const border = borderValues(grey, width, height).sort();
  const n = border.length;
  const spread = border[Math.floor(0.9 * (n - 1))] - border[Math.floor(0.1 * (n - 1))];
  if (spread < SHADING_GATE * (peak - background)) return undefined;

  // The mean of each f × f block (fewer pixels in the last row and column of blocks).
  const f = Math.max(1, Math.floor(Math.min(width, height) / FLAT_GRID));
  const gw = Math.ceil(width / f);
  const gh = Math.ceil(height / f);
  const cells = new Float64Array(gw * gh);
  const counts = new Float64Array(gw * gh);
  // Per column, worked out once: its block, and where it falls between the cells' centres.
  const column = new Int32Array(width);
  const x0s = new Int32Array(width);
  const x1s = new Int32Array(width);
  const txs = new Float64Array(width);
  for (let x = 0; x < width; x++) {
    column[x] = Math.floor(x / f);
    const gx = Math.min(gw - 1, Math.max(0, (x + 0.5) / f - 0.5));
    x0s[x] = Math.floor(gx);
    x1s[x] = Math.min(x0s[x] + 1, gw - 1);
    txs[x] = gx - x0s[x];
  }
  for (let y = 0; y < height; y++) {
    const row = Math.floor(y / f) * gw;
    for (let x = 0; x < width; x++) {
      cells[row + column[x]] += grey[y * width + x];
      counts[row + column[x]]++;
    }
  }
  for (let i = 0; i < cells.length; i++) cells[i] /= counts[i];

  // An opening (the darkest nearby, then the lightest nearby) removes the ink; a mean smooths what is left.
  const r = Math.max(1, Math.round(FLAT_WINDOW * Math.min(gw, gh)));
  const both = (grid: Float64Array, reduce: Reduce) => slide(slide(grid, gw, gh, r, "across", reduce), gw, gh, r, "down", reduce);
  const paper = both(both(both(cells, lowest), highest), mean);
  const base = Float64Array.from(paper).sort()[paper.length >> 1];

  // Back to full size by bilinear interpolation between the cells' centres.
  for (let y = 0; y < height; y++) {
    const gy = Math.min(gh - 1, Math.max(0, (y + 0.5) / f - 0.5));
    const y0 = Math.floor(gy);
    const y1 = Math.min(y0 + 1, gh - 1);
    const ty = gy - y0;
    for (let x = 0; x < width; x++) {
      const x0 = x0s[x];
      const x1 = x1s[x];
      const tx = txs[x];
      const top = (1 - tx) * paper[y0 * gw + x0] + tx * paper[y0 * gw + x1];
      const bottom = (1 - tx) * paper[y1 * gw + x0] + tx * paper[y1 * gw + x1];
      const at = y * width + x;
      grey[at] = Math.min(1, Math.max(0, grey[at] - ((1 - ty) * top + ty * bottom) + base));
    }
  }
  const flattened = borderValues(grey, width, height).sort();
  return flattened[flattened.length >> 1];
}

type Reduce = (values: Float64Array, from: number, to: number, step: number) => number;

const lowest: Reduce = (v, from, to, step) => {
  let m = Infinity;
  for (let i = from; i <= to; i += step) if (v[i] < m) m = v[i];
  return m;
};
const highest: Reduce = (v, from, to, step) => {
  let m = -Infinity;
  for (let i = from; i <= to; i += step) if (v[i] > m) m = v[i];
  return m;
};
const mean: Reduce = (v, from, to, step) => {
  let sum = 0;
  let count = 0;
  for (let i = from; i <= to; i += step, count++) sum += v[i];
  return sum / count;
};

/** `reduce` over a window of 2r + 1 cells across each row or down each column, cut short at the grid's edges. */
function slide(grid: Float64Array, gw: number, gh: number, r: number, direction: "across" | "down", reduce: Reduce): Float64Array {
  const out = new Float64Array(grid.length);
  for (let y = 0; y < gh; y++) {
    for (let x = 0; x < gw; x++) {
      out[y * gw + x] =
        direction === "across"
          ? reduce(grid, y * gw + Math.max(0, x - r), y * gw + Math.min(gw - 1, x + r), 1)
          : reduce(grid, Math.max(0, y - r) * gw + x, Math.min(gh - 1, y + r) * gw + x, gw);
    }
  }
  return out;
}
