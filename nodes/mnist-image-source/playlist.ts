// The order an image source walks its images in: as listed, or shuffled by a
// seeded generator so that the same seed always gives the same sequence.

export interface PlaylistOptions {
  shuffle: boolean;
  /** Any text; the same text gives the same order. */
  seed: string;
  loop: boolean;
}

export class Playlist {
  private order: number[] = [];
  private position = 0;
  private random: () => number = Math.random;

  constructor(private readonly length: number, private readonly options: PlaylistOptions) {
    this.rewind();
  }

  /** Back to the first image of the first pass: the same order as at the start. */
  rewind(): void {
    this.random = mulberry32(hashSeed(this.options.seed));
    this.order = this.pass();
    this.position = 0;
  }

  /** Index of the next image, or undefined at the end of the list when not looping. */
  next(): number | undefined {
    if (this.length === 0) return undefined;
    if (this.position >= this.order.length) {
      if (!this.options.loop) return undefined;
      // Each further pass continues the same random stream: a new order, still reproducible.
      this.order = this.pass();
      this.position = 0;
    }
    return this.order[this.position++];
  }

  /** The last image has been handed out and there is no next pass. */
  get finished(): boolean {
    return !this.options.loop && this.position >= this.order.length;
  }

  private pass(): number[] {
    const order = Array.from({ length: this.length }, (_, i) => i);
    if (!this.options.shuffle) return order;
    // Fisher–Yates (Knuth, TAOCP vol. 2, 3.4.2, algorithm P).
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  }
}

/** FNV-1a over the seed's UTF-16 code units: text to a 32-bit seed. */
function hashSeed(seed: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) {
    hash ^= seed.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** A small, fast, well-distributed 32-bit generator (Tommy Ettinger's mulberry32). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
