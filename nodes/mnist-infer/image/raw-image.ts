/** Decoded pixels, row-major, interleaved channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA). */
export interface RawImage {
  data: Uint8Array | Float32Array;
  width: number;
  height: number;
  channels: number;
  /** Largest possible sample value: 255 for bytes, 1 for normalised floats. */
  maxValue?: number;
}
