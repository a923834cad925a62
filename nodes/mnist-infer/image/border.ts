// An image's border pixels: where preprocessing reads the paper's shade (the ink
// rarely touches all four edges), shared by preprocess.ts and flatten-background.ts.

/**
 * The border pixels of a `width` × `height` grey image: top and bottom by column,
 * then the two sides by row (a one-row image's row counts twice). Written into
 * `scratch` when it is large enough (no allocation per image), else into a new array.
 */
export function borderValues(grey: Float32Array, width: number, height: number, scratch?: Float32Array): Float32Array {
  const count = 2 * width + 2 * Math.max(0, height - 2);
  const values = scratch && count <= scratch.length ? scratch.subarray(0, count) : new Float32Array(count);
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
