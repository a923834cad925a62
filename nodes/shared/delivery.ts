// Confirmed delivery through Node-RED's own `mqtt out` node.
//
// While its broker connection is down, `mqtt out` drops what it is given
// without calling done(), so neither Catch nor Complete nodes hear of it
// (node-red/node-red#2864). A node that must not lose what it sends keeps each
// message until a Complete node watching that `mqtt out`, wired back into the
// node, hands it back; whatever does not come back is sent again.
//
// When to send again: MQTT.js publishes in order and calls back in order, so
// a message is missing for sure once a message sent after it has come back.
// The only exception is a message MQTT.js itself still holds, unacknowledged,
// across a reconnect: it sends those again first thing after reconnecting. So
// a message is sent again only when a later one came back at least one tick
// ago (by then MQTT.js has had its chance) and it is older than twice the
// slowest recent round trip (a busy Node-RED may take a while to hand
// messages back, and error replies take a longer path than results), or,
// with nothing coming back at all, after `idleMs`, and only once confirmations
// have proved the Complete node is wired: a missing wire must not turn every
// message into a repeat.

import type { Node, NodeAPI, NodeMessage } from "node-red";

/** The mark a tracked message carries through `mqtt out` and the Complete node. */
export interface DeliveryMark {
  /** The node that sent it: only that node confirms it. */
  by: string;
  /** Which message, the same for every copy sent. */
  seq: number;
  /** Which sending of it: every copy gets a new one, in sending order. */
  send: number;
}

export const MARK = "_mnistDelivery";

const ROUND_TRIP_HALF_LIFE_MS = 10_000;

type Marked = { [MARK]?: DeliveryMark };

interface Pending<M> {
  msg: M;
  send: number;
  sentAt: number;
  resend: (copy: M) => void;
}

export interface DeliveryOptions<M> {
  /** The owning node's id, written into every mark. */
  owner: string;
  /** A copy of a message to send again (Node-RED: RED.util.cloneMessage). */
  copy: (msg: M) => M;
  /** How often to look for missing messages; also the grace MQTT.js gets after a reconnect. */
  tickMs?: number;
  /** With nothing coming back, send again after this long. */
  idleMs?: number;
  /** At most this many messages wait for confirmation; beyond it the oldest is given up. */
  limit?: number;
  /**
   * Called when messages are given up: on close, and over the limit (the first
   * at once, later ones summed at most every `giveUpWarnMs`, so a long outage
   * does not log a warning per message).
   */
  onGiveUp?: (count: number, why: "limit" | "closed") => void;
  giveUpWarnMs?: number;
  /** Called when messages are sent again, with how many. */
  onResend?: (count: number) => void;
  /** Called once when messages wait `unconfirmedWarnMs` and nothing was ever confirmed. */
  onNeverConfirmed?: () => void;
  unconfirmedWarnMs?: number;
  now?: () => number;
  /** false: the owner calls tick() itself (tests). */
  timer?: boolean;
}

export interface DeliveryCounts {
  tracked: number;
  confirmed: number;
  resent: number;
  givenUp: number;
  waiting: number;
}

export class DeliveryTracker<M extends object> {
  private readonly pending = new Map<number, Pending<M>>();
  private readonly options: Required<Omit<DeliveryOptions<M>, "onGiveUp" | "onResend" | "onNeverConfirmed">> & DeliveryOptions<M>;
  private nextSeq = 0;
  private nextSend = 0;
  /** The latest sending known to have come back, and the same as of the previous tick. */
  private confirmedSend = -1;
  private confirmedSendAtLastTick = -1;
  private everConfirmed = false;
  /** The slowest recent round trip (ms), halving every ROUND_TRIP_HALF_LIFE_MS. */
  private slowest = 0;
  private slowestAt = 0;
  private warnedUnconfirmed = false;
  /** Given up over the limit and not yet reported, and when the last report was. */
  private givenUpUnreported = 0;
  private givenUpReportedAt = -Infinity;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly counts = { tracked: 0, confirmed: 0, resent: 0, givenUp: 0 };

  constructor(options: DeliveryOptions<M>) {
    this.options = { tickMs: 500, idleMs: 10_000, limit: 10_000, unconfirmedWarnMs: 10_000, giveUpWarnMs: 10_000, now: Date.now, timer: true, ...options };
  }

  /** Marks `msg` and keeps it until it comes back; `resend` sends a copy again. Call before sending it. */
  track(msg: M, resend: (copy: M) => void): void {
    // After close (a redeploy), results the worker still finishes go out untracked.
    if (this.closed) return;
    const seq = this.nextSeq++;
    const entry: Pending<M> = { msg, send: 0, sentAt: 0, resend };
    this.stamp(seq, entry, msg);
    this.pending.set(seq, entry);
    this.counts.tracked++;
    if (this.pending.size > this.options.limit) {
      const oldest = this.pending.keys().next().value as number;
      this.pending.delete(oldest);
      this.counts.givenUp++;
      this.givenUpUnreported++;
      this.reportGivenUp(false);
    }
    this.startTimer();
  }

  /** True if `msg` is one of this owner's messages coming back from a Complete node. */
  isReturn(msg: unknown): boolean {
    const mark = (msg as Marked | null)?.[MARK];
    return typeof mark === "object" && mark !== null && mark.by === this.options.owner;
  }

  /**
   * Takes `msg` if it is one of this owner's messages coming back: its sending is
   * confirmed, and so everything it overtook is missing. False for any other message.
   */
  confirm(msg: unknown): boolean {
    if (!this.isReturn(msg)) return false;
    const mark = (msg as Marked)[MARK] as DeliveryMark;
    this.everConfirmed = true;
    if (mark.send > this.confirmedSend) this.confirmedSend = mark.send;
    const entry = this.pending.get(mark.seq);
    if (!entry) return true;
    if (entry.send === mark.send) this.noteRoundTrip(this.options.now() - entry.sentAt);
    this.pending.delete(mark.seq);
    this.counts.confirmed++;
    return true;
  }

  /** Sends again what is missing. Runs on a timer while anything waits. */
  tick(): void {
    const now = this.options.now();
    // Only confirmations at least one tick old count as proof (see the top of the file).
    const overtakenBelow = this.confirmedSendAtLastTick;
    this.confirmedSendAtLastTick = this.confirmedSend;
    const again: Array<[number, Pending<M>]> = [];
    const patience = 2 * this.roundTrip(now);
    // Map order is sending order: each sending moves its entry to the end.
    for (const [seq, entry] of this.pending) {
      const overtaken = entry.send < overtakenBelow && now - entry.sentAt > patience;
      const idle = this.everConfirmed && now - entry.sentAt >= this.options.idleMs;
      if (!overtaken && !idle) break;
      again.push([seq, entry]);
    }
    for (const [seq, entry] of again) {
      this.pending.delete(seq);
      this.pending.set(seq, entry);
      const copy = this.options.copy(entry.msg);
      this.stamp(seq, entry, copy);
      this.counts.resent++;
      entry.resend(copy);
    }
    if (again.length) this.options.onResend?.(again.length);
    this.reportGivenUp(false);
    if (!this.everConfirmed && !this.warnedUnconfirmed && this.pending.size > 0) {
      const oldest = this.pending.values().next().value as Pending<M>;
      if (now - oldest.sentAt >= this.options.unconfirmedWarnMs) {
        this.warnedUnconfirmed = true;
        this.options.onNeverConfirmed?.();
      }
    }
    if (this.pending.size === 0 && this.givenUpUnreported === 0) this.stopTimer();
  }

  get stats(): DeliveryCounts {
    return { ...this.counts, waiting: this.pending.size };
  }

  /** Stops, and returns what still waits, oldest first, for the node to pass on (not counted as given up). */
  handOver(): M[] {
    const waiting = [...this.pending.values()].map((entry) => entry.msg);
    this.pending.clear();
    this.close();
    return waiting;
  }

  /** Stops; what still waits is given up (the node is going away). */
  close(): void {
    this.closed = true;
    this.stopTimer();
    this.reportGivenUp(true);
    if (this.pending.size > 0) {
      this.counts.givenUp += this.pending.size;
      this.options.onGiveUp?.(this.pending.size, "closed");
    }
    this.pending.clear();
  }

  /** Says how many were given up over the limit since it last said so, if that was `giveUpWarnMs` ago (or when `anyway`). */
  private reportGivenUp(anyway: boolean): void {
    if (this.givenUpUnreported === 0) return;
    const at = this.options.now();
    if (!anyway && at - this.givenUpReportedAt < this.options.giveUpWarnMs) return;
    this.options.onGiveUp?.(this.givenUpUnreported, "limit");
    this.givenUpUnreported = 0;
    this.givenUpReportedAt = at;
  }

  private roundTrip(now: number): number {
    return this.slowest * 0.5 ** ((now - this.slowestAt) / ROUND_TRIP_HALF_LIFE_MS);
  }

  private noteRoundTrip(took: number): void {
    const now = this.options.now();
    this.slowest = Math.max(this.roundTrip(now), took);
    this.slowestAt = now;
  }

  private stamp(seq: number, entry: Pending<M>, msg: M): void {
    entry.send = this.nextSend++;
    entry.sentAt = this.options.now();
    (msg as Marked)[MARK] = { by: this.options.owner, seq, send: entry.send };
  }

  private startTimer(): void {
    if (this.timer || !this.options.timer) return;
    this.timer = setInterval(() => this.tick(), this.options.tickMs);
    this.timer.unref?.();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * The tracker a node with "confirm delivery" on uses: copies with Node-RED's
 * cloneMessage, and says in the node's own words (`<catalogue>.delivery.*`)
 * when it sends again, gives up, or never hears back.
 */
export function nodeDeliveryTracker(RED: NodeAPI, node: Node, catalogue: string): DeliveryTracker<NodeMessage> {
  return new DeliveryTracker<NodeMessage>({
    owner: node.id,
    copy: (msg) => RED.util.cloneMessage(msg),
    onResend: (count) => node.warn(RED._(`${catalogue}.delivery.resent`, { count })),
    onGiveUp: (count, why) => node.warn(RED._(`${catalogue}.delivery.gave-up-${why}`, { count })),
    onNeverConfirmed: () => node.warn(RED._(`${catalogue}.delivery.never-confirmed`)),
  });
}
