// The confidence below which a result is unsure when neither the request nor
// the node sets one: the model card's, else a fallback.
import type { ModelInfo } from "./classifier";

/**
 * "Unsure below" for a model whose card sets none: a 10-class softmax whose top
 * class has under half the probability has a rival at least as likely as not.
 */
const FALLBACK_UNSURE_BELOW = 0.5;

/** The model card's `unsureBelow` (chosen on held-out data when the model was trained), or the fallback. */
export function modelThreshold(info: ModelInfo | undefined): number {
  const value = info?.card?.unsureBelow;
  return typeof value === "number" && value >= 0 && value <= 1 ? value : FALLBACK_UNSURE_BELOW;
}
