/**
 * Why a request could not be classified. `code` is stable and machine-readable
 * (it travels in error replies on `result/error`); `message` says what was
 * wrong and what is accepted, for people reading a Catch node or debug panel.
 */
export type InputErrorCode =
  | "empty"
  | "too-large"
  | "truncated"
  | "corrupt"
  | "unsupported"
  | "bad-json"
  | "bad-envelope"
  | "bad-base64"
  | "file-path"
  | "bad-pixels"
  | "bad-label"
  | "bad-threshold"
  | "no-ink"
  | "queue-full"
  | "model"
  | "closed"
  | "internal";

export class InputError extends Error {
  /** The request's id, when it was readable, so an error reply can carry it. */
  requestId?: string | number;

  constructor(readonly code: InputErrorCode, message: string) {
    super(message);
    this.name = "InputError";
  }
}

/** What every "accepted formats" hint says, so all errors agree. */
export const ACCEPTED =
  "accepted: image bytes (PNG, JPEG, WebP, GIF, TIFF, BMP), a base64 string or data: URL of one, " +
  'a JSON envelope {"id","label","image":"<base64>"}, or pixels (784 numbers in 0–1 or 0–255, or {data,width,height})';

/**
 * What a sender is told when mnist-infer itself failed on a request (a bug, not
 * bad input): the request still gets an answer, and the stack goes to the log.
 */
export function internalFailure(err: unknown): InputError {
  const reason = String((err as Error)?.message ?? err).split("\n")[0].slice(0, 200);
  return new InputError("internal", `mnist-infer failed on this request through a fault of its own, not of the request (${reason}); it was logged`);
}
