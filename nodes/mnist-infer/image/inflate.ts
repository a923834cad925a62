// Inflates a PNG's image data (one zlib stream) whose size the header gives.
// zlib.inflateSync builds a stream object and a fresh native zlib state for
// every call: about 2 of its 3 µs for a 28×28 digit, on every request. Node has
// no public way to reuse one synchronously, so this keeps one native inflater
// per thread and resets it between images, through the handle that
// zlib.Inflate wraps (as npm's own minizlib does). Anything it is not sure of,
// errors included, goes through zlib.inflateSync instead, so every image gets
// exactly zlib.inflateSync's bytes or error; where the handle is not what this
// expects (another Node), zlib.inflateSync is all there is.
import * as zlib from "zlib";

/** The native handle inside a zlib.Inflate, as Node 20 to 24 have it. */
interface NativeInflater {
  reset(): void;
  writeSync(flush: number, input: Uint8Array, inOffset: number, inLength: number, output: Uint8Array, outOffset: number, outLength: number): void;
  onerror: (message: string, errno: number) => void;
}

interface Reusable {
  /** Held so that the handle it owns stays alive. */
  engine: zlib.Inflate;
  handle: NativeInflater;
  /** [output bytes left, input bytes left] after each writeSync. */
  state: Uint32Array;
  failed: boolean;
}

/** undefined: not tried yet in this thread; null: not available, zlib.inflateSync only. */
let reusable: Reusable | null | undefined;

/**
 * What zlib.inflateSync(data, { maxOutputLength: expected + 1 }) returns or
 * throws; `expected` is the byte count a well-formed image inflates to.
 */
export function inflateImageData(data: Uint8Array, expected: number): Buffer {
  if (reusable === undefined) reusable = openReusable();
  if (reusable) {
    const out = inflateReusing(reusable, data, expected);
    if (out) return out;
  }
  return zlib.inflateSync(data, { maxOutputLength: expected + 1, chunkSize: Math.max(64, expected + 1) });
}

/** The bytes when the stream ended cleanly at exactly `expected` bytes; undefined for zlib.inflateSync to decide. */
function inflateReusing(inflater: Reusable, data: Uint8Array, expected: number): Buffer | undefined {
  // One byte more than a good image needs: a stream that fills it is longer than its header says.
  const out = Buffer.allocUnsafe(expected + 1);
  inflater.failed = false;
  inflater.handle.reset();
  inflater.handle.writeSync(zlib.constants.Z_FINISH, data, 0, data.length, out, 0, out.length);
  // With Z_FINISH, a stream that has not ended (truncated input) is reported through onerror too.
  if (inflater.failed || inflater.state[0] !== 1) return undefined;
  return out.subarray(0, expected);
}

function openReusable(): Reusable | null {
  try {
    const engine = zlib.createInflate();
    const internals = engine as unknown as { _handle?: Partial<NativeInflater>; _writeState?: unknown };
    const handle = internals._handle;
    const state = internals._writeState;
    if (!handle || typeof handle.reset !== "function" || typeof handle.writeSync !== "function") return null;
    if (!(state instanceof Uint32Array) || state.length < 2) return null;
    const inflater: Reusable = { engine, handle: handle as NativeInflater, state, failed: false };
    // Node's own handler would destroy the stream and close the handle on the first corrupt image.
    inflater.handle.onerror = () => {
      inflater.failed = true;
    };
    return selfTestPasses(inflater) ? inflater : null;
  } catch {
    return null;
  }
}

/** A good stream, a corrupt one, then the good one again must give zlib's answers, or the handle is not used. */
function selfTestPasses(inflater: Reusable): boolean {
  const plain = Buffer.from(Array.from({ length: 841 }, (_, i) => (i * 7) % 13));
  const good = zlib.deflateSync(plain);
  const corrupt = Buffer.from(good);
  corrupt[corrupt.length - 1] ^= 0xff; // the Adler-32 check no longer matches
  const first = inflateReusing(inflater, good, plain.length);
  const refused = inflateReusing(inflater, corrupt, plain.length) === undefined;
  const again = inflateReusing(inflater, good, plain.length);
  return refused && first !== undefined && again !== undefined && first.equals(plain) && again.equals(plain);
}
