// One mnist-infer node's side of the outbox (outbox.ts): while it closes, what
// it cannot deliver any more is kept for the node that takes its place, and a
// new node takes over what its predecessor left.
import type { NodeMessage } from "node-red";
import { InputError } from "./errors";
import { collect, leave, type Parcel } from "./outbox";

export interface Successor {
  /** Classifies a request again, as if it had just arrived. */
  classify(msg: NodeMessage): void;
  /** Sends an answer (tracked for delivery, when that is on). */
  reply(msg: NodeMessage): void;
  /** Raises an error reply for the Catch node again. */
  fail(error: InputError, msg: NodeMessage): void;
}

export class Handover {
  private closing = false;
  private readonly kept: Parcel[] = [];
  /** Error replies waiting for delivery confirmation, told apart from answers when handed over. */
  private readonly errors = new WeakMap<object, { code: string; message: string }>();

  constructor(
    private readonly nodeId: string,
    private readonly userDir: string | undefined,
  ) {}

  /** True once the node is closing: what it finishes now goes to the next node instead of out. */
  keeps(parcel: Parcel): boolean {
    if (this.closing) this.kept.push(parcel);
    return this.closing;
  }

  /** Marks `msg` as an error reply, for `leave`. */
  noteError(msg: NodeMessage, error: InputError): void {
    this.errors.set(msg, { code: error.code, message: error.message });
  }

  close(): void {
    this.closing = true;
  }

  /**
   * Leaves what was kept, and `unconfirmed` (sent, not known to be published), for
   * the next node with this id. A removed node has no successor: says how many were lost.
   */
  leave(removed: boolean, unconfirmed: NodeMessage[]): { left: number; lost: number } {
    const parcels: Parcel[] = unconfirmed.map((msg) => {
      const error = this.errors.get(msg);
      return error ? { kind: "error", msg, error } : { kind: "reply", msg };
    });
    parcels.push(...this.kept);
    if (removed) return { left: 0, lost: parcels.length };
    leave(this.nodeId, parcels, this.userDir);
    return { left: parcels.length, lost: 0 };
  }

  /** Takes over what the previous node with this id left: how many parcels. */
  inherit(successor: Successor): number {
    const parcels = collect(this.nodeId, this.userDir);
    for (const parcel of parcels) {
      if (parcel.kind === "request") successor.classify(parcel.msg);
      else if (parcel.kind === "reply") successor.reply(parcel.msg);
      else successor.fail(new InputError(parcel.error.code as InputError["code"], parcel.error.message), parcel.msg);
    }
    return parcels.length;
  }
}
