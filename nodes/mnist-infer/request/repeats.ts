// Makes a request sent again safe (idempotent). With QoS 1 the broker sends a
// request again when it did not see it acknowledged (a broker restart, a
// dropped connection), and a sender may retry one whose answer it never got.
// A repeat is the same id with the same bytes: it gets the answer the first
// got, or is still being worked out, rather than silence or a second
// classification; a sender that reuses an id for a new image gets a new answer.
// A request that failed is forgotten, so a retry after an error reply (a full
// queue, a model still loading) is classified again.
import { createHash } from "crypto";

export class RepeatedRequests<T> {
  /** key → when it was first seen and its answer; Map order is arrival order, so the oldest come first. */
  private readonly entries = new Map<string, { at: number; answer: Promise<T> }>();

  constructor(
    private readonly windowMs: number,
    private readonly capacity = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.windowMs > 0;
  }

  /**
   * The answer of the same request (id and bytes) seen within the window: given,
   * or still on its way. `key` is what `remember` takes for this request.
   */
  earlier(id: string | number, bytes: Buffer | string): { key: string; answer?: Promise<T> } {
    this.forget(this.now());
    // Ids are compared as text everywhere in the package: 7 and "7" are one id.
    const key = `${String(id)}\n${createHash("sha1").update(bytes).digest("base64")}`;
    return { key, answer: this.entries.get(key)?.answer };
  }

  /** Remembers the answer on its way for `key`; forgets it again if it fails. */
  remember(key: string, answer: Promise<T>): void {
    const entry = { at: this.now(), answer };
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    answer.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
  }

  private forget(now: number): void {
    for (const [key, { at }] of this.entries) {
      if (now - at < this.windowMs) return;
      this.entries.delete(key);
    }
  }
}
