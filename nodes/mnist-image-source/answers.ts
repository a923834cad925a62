// End-to-end at-least-once, as an option. Every request the source sends waits
// here for its answer: a result or an error reply carrying its id, wired back
// into the node (mqtt in on the result and error topics, or mnist-result's
// output). A request still unanswered after the timeout is sent again, with the
// same id and the same bytes, up to a number of times, and then given up.
// mnist-infer gives a request sent again the first one's answer, and classifies
// a retry after an error reply anew, so sending again is safe.
//
// Error replies that say "not now" rather than "not this image" (a full queue,
// the model not loaded, the node closing, a fault of its own) do not end the
// wait: the request is sent again when its time comes, like an unanswered one.
//
// Memory is bounded: at most `limit` requests and `limitBytes` of their
// payloads wait; beyond either, the oldest is given up.
import type { NodeMessage } from "node-red";

export const RETRYABLE_CODES: readonly string[] = ["queue-full", "model", "closed", "internal"];

export interface AnswerWaitOptions {
  /** Send again after this long without an answer. */
  timeoutMs: number;
  /** Send again at most this many times, then give up. */
  maxResends: number;
  /** A copy of a message to send again (Node-RED: RED.util.cloneMessage). */
  copy: (msg: NodeMessage) => NodeMessage;
  /** Sends a copy again. */
  resend: (copy: NodeMessage) => void;
  /** At most this many requests wait; beyond it the oldest is given up. */
  limit?: number;
  /** At most this many bytes of payload wait; beyond it the oldest are given up. */
  limitBytes?: number;
  /** What was sent again and given up since the last report, at most every `reportEveryMs`, with the totals. */
  onReport?: (since: { resent: number; givenUp: number }, totals: AnswerCounts) => void;
  reportEveryMs?: number;
  /** Called once when requests are given up and no answer at all has ever come back (answers not wired?). */
  onNeverAnswered?: () => void;
  now?: () => number;
  /** false: the owner calls tick() itself (tests). */
  timer?: boolean;
}

export interface AnswerCounts {
  waiting: number;
  waitingBytes: number;
  answered: number;
  resent: number;
  givenUp: number;
}

interface Waiting {
  msg: NodeMessage;
  bytes: number;
  /** When it is sent again (or given up) unless answered first. */
  due: number;
  resends: number;
}

/** What an answer wired into the source says: whose it is, and the error code of an error reply. */
export interface Answer {
  id: string;
  code?: string;
}

/** Answers are small; anything bigger is not read as one. */
const MAX_ANSWER_BYTES = 1024 * 1024;

/**
 * The answer a message carries, or undefined: msg.payload as `mqtt in` hands it
 * over (an object, JSON text or a Buffer of JSON), or msg.result as mnist-result
 * passes it on, holding a result `{digit, id, …}` or an error reply `{error, id}`.
 * The source's own requests (`{id, label, image, sentAt}`) are not answers.
 */
export function answerIn(msg: { payload?: unknown; result?: unknown }): Answer | undefined {
  return fromObject(parsed(msg.payload)) ?? fromObject(msg.result);
}

function parsed(payload: unknown): unknown {
  if (!Buffer.isBuffer(payload) && typeof payload !== "string") return payload;
  if (payload.length < 2 || payload.length > MAX_ANSWER_BYTES) return undefined;
  const text = Buffer.isBuffer(payload) ? payload.toString("utf8") : payload;
  if (!text.trimStart().startsWith("{")) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function fromObject(value: unknown): Answer | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const { id, digit, error } = value as { id?: unknown; digit?: unknown; error?: unknown };
  if (typeof id !== "string" && typeof id !== "number") return undefined;
  // Ids are compared as text everywhere in the package: 7 and "7" are one id.
  if (typeof digit === "number") return { id: String(id) };
  if (error !== null && typeof error === "object") return { id: String(id), code: String((error as { code?: unknown }).code ?? "") };
  return undefined;
}

/** About how many bytes a request holds: its image, base64 in the envelope or raw. */
function sizeOf(msg: NodeMessage): number {
  const payload = msg.payload as { image?: unknown } | Buffer | string | undefined;
  if (Buffer.isBuffer(payload) || typeof payload === "string") return payload.length;
  if (payload && typeof payload.image === "string") return payload.image.length + 100;
  return 100;
}

export class AnswerWait {
  /** id → the request; Map order is the order they are due in (each sending moves its entry to the end). */
  private readonly waiting = new Map<string, Waiting>();
  private readonly options: Required<Omit<AnswerWaitOptions, "onReport" | "onNeverAnswered">> & AnswerWaitOptions;
  private readonly counts = { answered: 0, resent: 0, givenUp: 0 };
  private waitingBytes = 0;
  private unreported = { resent: 0, givenUp: 0 };
  private lastReportAt = -Infinity;
  private everAnswered = false;
  private warnedNeverAnswered = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: AnswerWaitOptions) {
    this.options = { limit: 10_000, limitBytes: 64 * 1024 * 1024, reportEveryMs: 10_000, now: Date.now, timer: true, ...options };
  }

  /** Keeps a request just sent (its id in msg.id) until its answer comes. */
  wait(msg: NodeMessage): void {
    const id = (msg as { id?: unknown }).id;
    if (this.closed || (typeof id !== "string" && typeof id !== "number")) return;
    const key = String(id);
    this.drop(key);
    const entry: Waiting = { msg, bytes: sizeOf(msg), due: this.options.now() + this.options.timeoutMs, resends: 0 };
    this.waiting.set(key, entry);
    this.waitingBytes += entry.bytes;
    while (this.waiting.size > this.options.limit || (this.waitingBytes > this.options.limitBytes && this.waiting.size > 1)) {
      this.drop(this.waiting.keys().next().value as string);
      this.giveUp(1);
    }
    this.startTimer();
  }

  /**
   * Takes an answer: the request it answers no longer waits, unless the answer is
   * an error reply that asks to retry later. False when no request of this source
   * waits for that id (answered already, given up, or another sender's).
   */
  answered(answer: Answer): boolean {
    this.everAnswered = true;
    if (!this.waiting.has(answer.id)) return false;
    if (answer.code !== undefined && RETRYABLE_CODES.includes(answer.code)) return true;
    this.drop(answer.id);
    this.counts.answered++;
    return true;
  }

  /** Sends again what is due, gives up what has been sent often enough. Runs on a timer while anything waits. */
  tick(): void {
    const now = this.options.now();
    const due: Array<[string, Waiting]> = [];
    for (const [id, entry] of this.waiting) {
      if (entry.due > now) break;
      due.push([id, entry]);
    }
    let resent = 0;
    let givenUp = 0;
    for (const [id, entry] of due) {
      if (entry.resends >= this.options.maxResends) {
        this.drop(id);
        givenUp++;
        continue;
      }
      entry.resends++;
      entry.due = now + this.options.timeoutMs;
      this.waiting.delete(id);
      this.waiting.set(id, entry);
      const copy = this.options.copy(entry.msg);
      (copy as { attempt?: number }).attempt = entry.resends + 1;
      resent++;
      this.options.resend(copy);
    }
    this.counts.resent += resent;
    this.unreported.resent += resent;
    if (givenUp) this.giveUp(givenUp);
    if (givenUp && !this.everAnswered && !this.warnedNeverAnswered) {
      this.warnedNeverAnswered = true;
      this.options.onNeverAnswered?.();
    }
    // With nothing left waiting the timer stops: say now what has not been said.
    this.report(now, this.waiting.size === 0);
    if (this.waiting.size === 0) this.stopTimer();
  }

  get stats(): AnswerCounts {
    return { ...this.counts, waiting: this.waiting.size, waitingBytes: this.waitingBytes };
  }

  /** Stops; what still waits is forgotten (the node is going away). Returns how many. */
  close(): number {
    this.closed = true;
    this.stopTimer();
    const left = this.waiting.size;
    this.waiting.clear();
    this.waitingBytes = 0;
    return left;
  }

  private drop(id: string): void {
    const entry = this.waiting.get(id);
    if (!entry) return;
    this.waiting.delete(id);
    this.waitingBytes -= entry.bytes;
  }

  private giveUp(count: number): void {
    this.counts.givenUp += count;
    this.unreported.givenUp += count;
  }

  private report(now: number, force: boolean): void {
    const { resent, givenUp } = this.unreported;
    if ((resent === 0 && givenUp === 0) || (!force && now - this.lastReportAt < this.options.reportEveryMs)) return;
    this.lastReportAt = now;
    this.unreported = { resent: 0, givenUp: 0 };
    this.options.onReport?.({ resent, givenUp }, this.stats);
  }

  private startTimer(): void {
    if (this.timer || !this.options.timer) return;
    const every = Math.min(1000, Math.max(20, Math.floor(this.options.timeoutMs / 4)));
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref?.();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
