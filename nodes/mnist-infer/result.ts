// The result message mnist-infer sends for a classified image (see shared/contract.ts).
import type { InferResult } from "../shared/contract";
import type { ModelInfo } from "./inference/classifier";
import type { InferenceService, Prediction } from "./inference/inference-service";
import type { Request } from "./request/envelope";

/**
 * "Unsure below" for a model whose card sets none: a 10-class softmax whose top
 * class has under half the probability has a rival at least as likely as not.
 */
export const FALLBACK_UNSURE_BELOW = 0.5;

/** The model card's `unsureBelow` (chosen on held-out data when the model was trained), or the fallback. */
export function modelThreshold(info: ModelInfo | undefined): number {
  const value = info?.card?.unsureBelow;
  return typeof value === "number" && value >= 0 && value <= 1 ? value : FALLBACK_UNSURE_BELOW;
}

/**
 * The result for one request. Its threshold is the request's own, else the
 * node's setting, else the model's.
 */
export function toResult(prediction: Prediction, request: Request, service: InferenceService, nodeThreshold?: number): InferResult {
  const threshold = request.threshold ?? nodeThreshold ?? modelThreshold(service.info);
  const result: InferResult = {
    digit: prediction.digit,
    confidence: prediction.confidence,
    probabilities: prediction.probabilities,
    unsure: prediction.confidence < threshold,
    threshold,
    model: modelOf(service),
    timings: prediction.timings,
    inverted: prediction.inverted,
  };
  if (request.id !== undefined) result.id = request.id;
  if (request.label !== undefined) {
    result.label = request.label;
    result.correct = request.label === prediction.digit;
  }
  if (request.sentAt !== undefined) result.sentAt = request.sentAt;
  return result;
}

/** Which model answered, on which backend, and for `auto` why that backend. */
function modelOf(service: InferenceService): InferResult["model"] {
  const info = service.info;
  const model: InferResult["model"] = { name: info?.name ?? "unknown", sha256: info?.sha256 ?? "", backend: info?.backend.name ?? "native" };
  if (info?.backend.reason) model.backendReason = info.backend.reason;
  return model;
}
