// Operations run one after another, each after the previous one has settled,
// with a bound on how many may wait: beyond it they are refused, not dropped.

export type Done = (err?: Error) => void;

/** Messages waiting behind a burst or the folder being read. */
export const MAX_WAITING = 1000;

export class SerialQueue {
  private chain: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  /** `busy` makes the error for an operation refused because MAX_WAITING already wait. */
  constructor(private readonly busy: () => Error) {}

  /** Runs `op` after whatever runs now; its failure is the returned promise's, not the queue's. */
  run(op: () => Promise<void>): Promise<void> {
    const run = this.chain.then(op);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** As run, for a control message: counted against the bound, and ended in `done`. */
  enqueue(op: () => Promise<void>, done: Done): void {
    if (this.waiting >= MAX_WAITING) {
      done(this.busy());
      return;
    }
    this.waiting++;
    this.run(async () => {
      this.waiting--;
      await op();
    }).then(() => done(), (err) => done(err instanceof Error ? err : new Error(String(err))));
  }
}
