// Where the ink is: the crop both preprocessing paths take before fitting the
// digit into MNIST's 20×20 box.

export interface Box { left: number; top: number; right: number; bottom: number }

/** Column and row sums for images up to this many pixels wide or tall, reused from call to call. */
const SCRATCH_SIDE = 4096;
const colScratch = new Float64Array(SCRATCH_SIDE);
const rowScratch = new Float64Array(SCRATCH_SIDE);

/**
 * The box holding the ink, trimmed from each side while the trimmed part holds
 * under 0.5% of the ink, so a stray speck or a shadow at the edge of a photo
 * does not stretch the crop. Right and bottom are exclusive.
 */
export function inkBox(grey: Float32Array, width: number, height: number): Box {
  const cols = width <= SCRATCH_SIDE ? colScratch.subarray(0, width).fill(0) : new Float64Array(width);
  const rows = height <= SCRATCH_SIDE ? rowScratch.subarray(0, height).fill(0) : new Float64Array(height);
  let total = 0;
  for (let y = 0; y < height; y++) {
    let row = 0;
    for (let x = 0; x < width; x++) {
      const v = grey[y * width + x];
      cols[x] += v;
      row += v;
      total += v;
    }
    rows[y] = row;
  }
  return boxOfProfiles(cols, rows, total);
}

/** The box from the ink per column and per row (`total` is their sum). */
export function boxOfProfiles(cols: Float64Array, rows: Float64Array, total: number): Box {
  const allowance = total * 0.005;
  const [left, right] = trim(cols, allowance);
  const [top, bottom] = trim(rows, allowance);
  return { left, top, right, bottom };
}

function trim(profile: Float64Array, allowance: number): [number, number] {
  let start = 0;
  let end = profile.length;
  let cut = 0;
  while (start < end - 1 && cut + profile[start] <= allowance) cut += profile[start++];
  cut = 0;
  while (end - 1 > start && cut + profile[end - 1] <= allowance) cut += profile[--end];
  return [start, end];
}
