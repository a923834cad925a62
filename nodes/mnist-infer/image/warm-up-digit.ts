// The image the node warms its path with before the first request (the worker
// its session, decoder and preprocessing; the node its main-thread code): a "1"
// drawn white on black, 28×28, as the PNG a sender would publish.
import { encodeGreyPng } from "./png";
import { SIDE } from "./preprocess";

export function warmUpDigitPng(): Buffer {
  const stroke = new Uint8Array(SIDE * SIDE);
  for (let y = 6; y < 22; y++) stroke[y * SIDE + 13] = stroke[y * SIDE + 14] = 255;
  return encodeGreyPng(stroke, SIDE, SIDE);
}
