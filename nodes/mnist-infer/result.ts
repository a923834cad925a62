// The result messages mnist-infer sends: one image's, or a batch's (see shared/contract.ts).
import type { BatchItem, InferBatchResult, InferResult } from "../shared/contract";
import type { InputError } from "./errors";
import type { InferenceService, Prediction } from "./inference/inference-service";
import type { BatchRequest, ImageRequest } from "./request/envelope";
import { modelThreshold } from "./inference/unsure-below";

/**
 * One image's answer. Its threshold is the request's own, else the node's
 * setting, else the model's. No object spreads: this runs for every image, and
 * copying an object into a new one costs more here than the rest of the answer.
 */
function answer(prediction: Prediction, label: number | undefined, threshold: number): Omit<InferResult, "model"> {
  const result: Omit<InferResult, "model"> = {
    digit: prediction.digit,
    confidence: prediction.confidence,
    probabilities: prediction.probabilities,
    // A second look can raise the confidence of an answer that was unsure; it stays unsure.
    unsure: prediction.lookedAgain || prediction.confidence < threshold,
    threshold,
    timings: prediction.timings,
    inverted: prediction.inverted,
  };
  if (prediction.lookedAgain) result.secondLook = true;
  if (label !== undefined) {
    result.label = label;
    result.correct = label === prediction.digit;
  }
  return result;
}

export function toResult(prediction: Prediction, request: ImageRequest, service: InferenceService, nodeThreshold?: number): InferResult {
  const threshold = request.threshold ?? nodeThreshold ?? modelThreshold(service.info);
  const result = answer(prediction, request.label, threshold) as InferResult;
  result.model = modelOf(service);
  if (request.id !== undefined) result.id = request.id;
  if (request.sentAt !== undefined) result.sentAt = request.sentAt;
  return result;
}

/** A batch's reply: each image's answer or error in its own slot, in the order of the images. */
export function toBatchResult(outcomes: Array<Prediction | InputError>, request: BatchRequest, service: InferenceService, nodeThreshold?: number): InferBatchResult {
  const threshold = request.threshold ?? nodeThreshold ?? modelThreshold(service.info);
  const results: BatchItem[] = outcomes.map((outcome, i) =>
    "digit" in outcome ? answer(outcome, request.labels?.[i], threshold) : { error: { code: outcome.code, message: outcome.message } },
  );
  const reply: InferBatchResult = { results, model: modelOf(service) };
  if (request.id !== undefined) reply.id = request.id;
  if (request.sentAt !== undefined) reply.sentAt = request.sentAt;
  return reply;
}

/** Which model answered, on which backend, and for `auto` why that backend. */
function modelOf(service: InferenceService): InferResult["model"] {
  const info = service.info;
  const model: InferResult["model"] = { name: info?.name ?? "unknown", sha256: info?.sha256 ?? "", backend: info?.backend.name ?? "native" };
  if (info?.backend.reason) model.backendReason = info.backend.reason;
  return model;
}
