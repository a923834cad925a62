// What can reach mnist-result, read into one of: a result, an error reply, or
// a command. `mqtt in` hands over a parsed object, JSON text or a Buffer
// depending on its output setting, and the original Python chain published
// plain text such as `tensor([7])`; all of them are read here.
import type { ErrorReply, InferResult } from "../shared/contract";

export type Command = "summary" | "reset";

/** A result as the node passes it on in `msg.result`. */
export interface ReadResult extends Partial<Omit<InferResult, "digit">> {
  digit: number;
  /** Plain text from the original chain: a digit and nothing else. */
  legacy: boolean;
  /** Set by the node when `sentAt` is known: arrival time minus `sentAt`. */
  latencyMs?: number;
}

/** One image's answer, or its error, from a result or a batch reply. */
export type Answer = { kind: "result"; result: ReadResult } | { kind: "error-reply"; reply: ErrorReply };

export type Incoming =
  | Answer
  /** A batch reply {"id", "results": [...]}: each item counted as an answer of its own, id "<id>#<index>". */
  | { kind: "batch"; id?: string | number; answers: Answer[] }
  | { kind: "command"; command: Command };

export class UnreadableMessage extends Error {
  constructor(readonly code: "unreadable" | "unknown-command", message: string) {
    super(message);
    this.name = "UnreadableMessage";
  }
}

export const ACCEPTED =
  'accepted: a result {"digit":0-9,"confidence","label","id","sentAt",...} as an object, JSON text or a Buffer of JSON; ' +
  'an error reply {"error":{"code","message"},"id"}; a batch reply {"id","results":[result or error, ...]}; plain text such as tensor([7]) or 7; ' +
  'or a command ("summary" or "reset" in msg.command or as the payload)';

const COMMANDS: readonly string[] = ["summary", "reset"];

// tensor([7]), tensor([[7]]), tensor(7), tensor([7.]), tensor([7], device='cuda:0'), ...
const TENSOR = /^tensor\(\s*([\[\]\d\s,.]*?)\s*(?:,\s*[a-z_]+\s*=[^)]*)?\)$/i;

export function readIncoming(msg: { payload?: unknown; topic?: unknown; command?: unknown }): Incoming {
  if (msg.command !== undefined && msg.command !== null && msg.command !== "") {
    const command = String(msg.command).trim().toLowerCase();
    if (!COMMANDS.includes(command)) {
      throw new UnreadableMessage("unknown-command", `unknown command ${JSON.stringify(msg.command)} in msg.command: use "summary" or "reset"`);
    }
    return { kind: "command", command: command as Command };
  }
  const payload = msg.payload;
  const fail = (problem: string): never => {
    const topic = typeof msg.topic === "string" && msg.topic ? ` on topic "${msg.topic}"` : "";
    throw new UnreadableMessage("unreadable", `cannot read the result: ${problem}; received ${describe(payload)}${topic}. ${ACCEPTED}`);
  };

  if (Buffer.isBuffer(payload) || typeof payload === "string") {
    const text = (Buffer.isBuffer(payload) ? payload.toString("utf8") : payload).trim();
    if (text === "") return fail("it is empty");
    if (COMMANDS.includes(text.toLowerCase())) return { kind: "command", command: text.toLowerCase() as Command };
    if (text.startsWith("{")) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        return fail(`it is not valid JSON (${(err as Error).message})`);
      }
      return readObject(parsed as Record<string, unknown>, fail);
    }
    return { kind: "result", result: { digit: readLegacy(text, fail), legacy: true } };
  }
  if (typeof payload === "number") {
    if (!isDigit(payload)) return fail("a digit must be an integer from 0 to 9");
    return { kind: "result", result: { digit: payload, legacy: true } };
  }
  if (payload !== null && typeof payload === "object" && !Array.isArray(payload)) {
    return readObject(payload as Record<string, unknown>, fail);
  }
  return fail("it is neither an object, text nor a Buffer");
}

function readLegacy(text: string, fail: (problem: string) => never): number {
  let values: string[];
  const tensor = TENSOR.exec(text);
  if (tensor) {
    values = tensor[1].replace(/[\[\]]/g, " ").split(/[\s,]+/).filter(Boolean);
  } else if (/^\d+(\.0*)?$/.test(text)) {
    values = [text];
  } else {
    return fail("it is neither JSON nor a digit in plain text");
  }
  if (values.length !== 1) return fail(`one digit expected, found ${values.length}`);
  const digit = Number(values[0]);
  if (!isDigit(digit)) return fail("a digit must be an integer from 0 to 9");
  return digit;
}

function readObject(value: Record<string, unknown>, fail: (problem: string) => never): Incoming {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return fail("the JSON is not an object");
  if (value.error !== undefined && value.error !== null) return { kind: "error-reply", reply: readErrorReply(value, fail) };
  if (Array.isArray(value.results)) return readBatch(value, fail);
  if (value.digit === undefined) return fail('it has no "digit"');
  const { digit, confidence, probabilities, label, id, sentAt } = value;
  if (!isDigit(digit)) return fail(`"digit" must be an integer from 0 to 9, not ${JSON.stringify(digit)}`);
  const result: ReadResult = { digit, legacy: false };

  if (probabilities !== undefined && probabilities !== null) {
    if (!Array.isArray(probabilities) || probabilities.length !== 10 || !probabilities.every((p) => typeof p === "number" && Number.isFinite(p))) {
      return fail('"probabilities" must be an array of 10 numbers');
    }
    result.probabilities = probabilities;
  }
  if (confidence !== undefined && confidence !== null) {
    if (typeof confidence !== "number" || !(confidence >= 0 && confidence <= 1)) return fail(`"confidence" must be a number from 0 to 1, not ${JSON.stringify(confidence)}`);
    result.confidence = confidence;
  } else if (result.probabilities) {
    result.confidence = result.probabilities[digit];
  }
  if (id !== undefined && id !== null) {
    if (typeof id !== "string" && typeof id !== "number") return fail('"id" must be a string or a number');
    result.id = id;
  }
  if (label !== undefined && label !== null) {
    if (!isDigit(label)) return fail(`"label" must be an integer from 0 to 9, not ${JSON.stringify(label)}`);
    result.label = label;
    // Recomputed rather than trusted: the statistics and this flag must agree.
    result.correct = label === digit;
  }
  if (sentAt !== undefined && sentAt !== null) {
    if (typeof sentAt !== "number" || !Number.isFinite(sentAt) || sentAt <= 0) return fail('"sentAt" must be milliseconds since 1970 (a number)');
    result.sentAt = sentAt;
  }
  // Descriptive fields pass through as they came; the statistics do not depend on them.
  if (isObject(value.model)) result.model = value.model as InferResult["model"];
  if (isObject(value.timings)) result.timings = value.timings as InferResult["timings"];
  if (typeof value.inverted === "boolean") result.inverted = value.inverted;
  // Counted apart by the statistics; a result without it (an older sender) counts as sure.
  if (typeof value.unsure === "boolean") result.unsure = value.unsure;
  if (typeof value.threshold === "number") result.threshold = value.threshold;
  return { kind: "result", result };
}

function readBatch(value: Record<string, unknown>, fail: (problem: string) => never): Incoming {
  const { id, sentAt, model } = value;
  if (id !== undefined && id !== null && typeof id !== "string" && typeof id !== "number") return fail('"id" must be a string or a number');
  const answers = (value.results as unknown[]).map((item, i): Answer => {
    if (item === null || typeof item !== "object" || Array.isArray(item)) return fail(`batch item ${i} is not an object`);
    // Each item is read as a reply of its own, with the batch's id, time and model.
    const own: Record<string, unknown> = { ...(item as Record<string, unknown>), sentAt, model };
    if (typeof id === "string" || typeof id === "number") own.id = `${id}#${i}`;
    const answer = readObject(own, (problem) => fail(`batch item ${i}: ${problem}`));
    if (answer.kind !== "result" && answer.kind !== "error-reply") return fail(`batch item ${i} is neither a result nor an error`);
    return answer;
  });
  return typeof id === "string" || typeof id === "number" ? { kind: "batch", id, answers } : { kind: "batch", answers };
}

function readErrorReply(value: Record<string, unknown>, fail: (problem: string) => never): ErrorReply {
  const error = value.error;
  let reply: ErrorReply;
  if (typeof error === "string") {
    reply = { error: { code: "unknown", message: error } };
  } else if (isObject(error)) {
    const { code, message } = error as Record<string, unknown>;
    reply = {
      error: {
        code: typeof code === "string" && code ? code : "unknown",
        message: typeof message === "string" ? message : "",
      },
    };
  } else {
    return fail('"error" must be an object {"code","message"}');
  }
  if (typeof value.id === "string" || typeof value.id === "number") reply.id = value.id;
  return reply;
}

function isDigit(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 9;
}

function isObject(value: unknown): boolean {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A short description of what arrived, for the error message: never the whole payload. */
function describe(value: unknown): string {
  const clip = (text: string) => JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
  if (value === undefined) return "no payload";
  if (value === null) return "null";
  if (Buffer.isBuffer(value)) {
    const text = value.toString("utf8");
    const printable = value.length > 0 && !/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text);
    return `a Buffer of ${value.length} bytes${printable ? ` (${clip(text.trim())})` : ""}`;
  }
  if (typeof value === "string") return `the text ${clip(value)}`;
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  if (typeof value === "object") {
    const keys = Object.keys(value);
    return keys.length === 0 ? "an empty object" : `an object with ${keys.slice(0, 6).join(", ")}${keys.length > 6 ? ", …" : ""}`;
  }
  return `the ${typeof value} ${String(value)}`;
}
