// A second look at the images the model was unsure of: their probabilities are
// averaged over the image and four copies of it moved one pixel diagonally. An
// ambiguous digit can tip either way on where its strokes fall against the
// model's pooling grid; the average reads more of them right (models/README.md,
// "Second look"). The answer stays unsure: a second look improves the best
// guess, it never clears the doubt. Sure answers, nearly all, cost nothing more.
import { SIDE } from "../image/preprocess";

const PIXELS = SIDE * SIDE;

/** The moves, as (down, right) in pixels: the four diagonal neighbours. */
export const MOVES: ReadonlyArray<readonly [number, number]> = [[1, 1], [-1, -1], [1, -1], [-1, 1]];

/** The most copies given to the model at once: a large batch's doubtful images need not all be in memory four times. */
const MAX_COPIES_PER_RUN = 256;

/** Writes the image at `from[fromAt…]` moved by (dy, dx) to `to[toAt…]`; what moves in is blank (0). */
export function moveImage(from: Float32Array, fromAt: number, dy: number, dx: number, to: Float32Array, toAt: number): void {
  for (let y = 0; y < SIDE; y++) {
    const sy = y - dy;
    const row = toAt + y * SIDE;
    if (sy < 0 || sy >= SIDE) {
      to.fill(0, row, row + SIDE);
      continue;
    }
    for (let x = 0; x < SIDE; x++) {
      const sx = x - dx;
      to[row + x] = sx < 0 || sx >= SIDE ? 0 : from[fromAt + sy * SIDE + sx];
    }
  }
}

/** The images whose top probability is below their own threshold. */
export function doubtful(probabilities: Float32Array[], lookAgainBelow: ArrayLike<number>): number[] {
  const which: number[] = [];
  for (let k = 0; k < probabilities.length; k++) {
    const answer = probabilities[k];
    let top = 0;
    for (let d = 0; d < answer.length; d++) if (answer[d] > top) top = answer[d];
    if (top < lookAgainBelow[k]) which.push(k);
  }
  return which;
}

type Predict = (pixels: Float32Array, count: number) => Promise<Float32Array[]>;

/**
 * Replaces the probabilities of images `which` (image k at `pixels[k * 784…]`)
 * with their average over the image and its moved copies, running the copies
 * in batches of at most `maxBatch` (1 for a model with a fixed batch of one).
 */
export async function lookAgain(predict: Predict, pixels: Float32Array, probabilities: Float32Array[], which: number[], maxBatch: number): Promise<void> {
  const copies = which.length * MOVES.length;
  const perRun = Math.max(1, Math.min(maxBatch, MAX_COPIES_PER_RUN));
  const batch = new Float32Array(Math.min(copies, perRun) * PIXELS);
  const sums = which.map((k) => Float32Array.from(probabilities[k]));
  for (let first = 0; first < copies; first += perRun) {
    const count = Math.min(perRun, copies - first);
    for (let c = 0; c < count; c++) {
      const [dy, dx] = MOVES[(first + c) % MOVES.length];
      moveImage(pixels, which[Math.floor((first + c) / MOVES.length)] * PIXELS, dy, dx, batch, c * PIXELS);
    }
    const answers = await predict(batch.subarray(0, count * PIXELS), count);
    answers.forEach((answer, c) => {
      const sum = sums[Math.floor((first + c) / MOVES.length)];
      for (let d = 0; d < sum.length; d++) sum[d] += answer[d];
    });
  }
  which.forEach((k, j) => {
    for (let d = 0; d < sums[j].length; d++) probabilities[k][d] = sums[j][d] / (MOVES.length + 1);
  });
}

/** What mnist-infer does with a batch's first answers: looks again at those below their threshold; returns which. */
export async function lookAgainWhereUnsure(predict: Predict, pixels: Float32Array, probabilities: Float32Array[], lookAgainBelow: ArrayLike<number>, maxBatch: number): Promise<number[]> {
  const which = doubtful(probabilities, lookAgainBelow);
  if (which.length > 0) await lookAgain(predict, pixels, probabilities, which, maxBatch);
  return which;
}
