// The node's first request, made by the node itself as soon as its model is
// ready: a "1" drawn here goes through the same steps as a request from the
// broker (envelope, queue, worker, result), and the answer is thrown away.
// V8 compiles each function on its first call; without this, the first real
// request after a deploy pays for compiling all of the node's main-thread code.
import type { InferenceService } from "./inference/inference-service";
import { encodeGreyPng } from "./image/png";
import { parseRequest, type RequestLimits } from "./request/envelope";
import { toResult } from "./result";

const SIDE = 28;

export async function rehearse(service: InferenceService, limits: RequestLimits, threshold?: number): Promise<void> {
  // Real requests already waiting warm the path themselves; this must not take their place.
  if (service.backlog > 0) return;
  const stroke = new Uint8Array(SIDE * SIDE);
  for (let y = 6; y < 22; y++) stroke[y * SIDE + 13] = stroke[y * SIDE + 14] = 255;
  const envelope = Buffer.from(JSON.stringify({ id: "rehearsal", image: encodeGreyPng(stroke, SIDE, SIDE).toString("base64") }));
  const request = parseRequest(envelope, {}, limits);
  if ("images" in request) return;
  toResult(await service.rehearse(request.image), request, service, threshold);
}
