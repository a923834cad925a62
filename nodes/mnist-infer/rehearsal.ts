// The node's first request, made by the node itself as soon as its model is
// ready: a drawn "1" (image/warm-up-digit.ts) goes through the same steps as a request from the
// broker (envelope, queue, worker, result), and the answer is thrown away.
// V8 compiles each function on its first call; without this, the first real
// request after a deploy pays for compiling all of the node's main-thread code.
import type { InferenceService } from "./inference/inference-service";
import { warmUpDigitPng } from "./image/warm-up-digit";
import { parseRequest, type RequestLimits } from "./request/envelope";
import { toResult } from "./result";

export async function rehearse(service: InferenceService, limits: RequestLimits, threshold?: number): Promise<void> {
  // Real requests already waiting warm the path themselves; this must not take their place.
  if (service.backlog > 0) return;
  const envelope = Buffer.from(JSON.stringify({ id: "rehearsal", image: warmUpDigitPng().toString("base64") }));
  const request = parseRequest(envelope, {}, limits);
  if ("images" in request) return;
  toResult(await service.rehearse(request.image, threshold), request, service, threshold);
}
