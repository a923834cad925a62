// Notices a request delivered again. With QoS 1 the broker sends a request
// again when it did not see it acknowledged (a broker restart, a dropped
// connection); classifying it twice would answer it twice. A repeat is the
// same id with the same bytes: a sender that reuses an id for a new image
// still gets an answer.
import { createHash } from "crypto";

export class RepeatFilter {
  /** key → when it was first seen; Map order is arrival order, so the oldest come first. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly capacity = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.windowMs > 0;
  }

  /** Remembers (id, bytes); true if they arrived before, within the window. */
  isRepeat(id: string | number, bytes: Buffer | string): boolean {
    const now = this.now();
    this.forget(now);
    const key = `${typeof id}:${id}:${createHash("sha1").update(bytes).digest("base64")}`;
    if (this.seen.has(key)) return true;
    this.seen.set(key, now);
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.keys().next().value as string);
    return false;
  }

  private forget(now: number): void {
    for (const [key, at] of this.seen) {
      if (now - at < this.windowMs) return;
      this.seen.delete(key);
    }
  }
}
