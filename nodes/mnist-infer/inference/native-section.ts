// Whether an inference worker is inside ONNX Runtime's own code (loading a
// model, running a batch, releasing a session). Ending a worker thread there
// aborts the whole Node-RED process: onnxruntime-node throws a C++ exception
// out of a thread that is shutting down. So the main thread ends a worker only
// after it has locked the worker out of that code, waiting for a run to finish.
// One shared 32-bit word: how many calls of the worker are inside (a batch can
// start while another awaits its run), or LOCKED_OUT once the main thread has locked it.

const LOCKED_OUT = -1;

export type NativeSectionFlag = Int32Array;

export function newNativeSectionFlag(): NativeSectionFlag {
  return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
}

/**
 * Worker side: runs `work` inside the section. Once the worker is locked out
 * it is about to be ended, so the work never starts and this never settles.
 */
export async function insideNative<T>(flag: NativeSectionFlag, work: () => Promise<T>): Promise<T> {
  for (;;) {
    const inside = Atomics.load(flag, 0);
    if (inside === LOCKED_OUT) return new Promise<T>(() => undefined);
    if (Atomics.compareExchange(flag, 0, inside, inside + 1) === inside) break;
  }
  try {
    return await work();
  } finally {
    if (Atomics.sub(flag, 0, 1) === 1) Atomics.notify(flag, 0);
  }
}

/** Main side: resolves once the worker is outside the section and can no longer enter it. */
export async function lockOut(flag: NativeSectionFlag): Promise<void> {
  for (;;) {
    const inside = Atomics.compareExchange(flag, 0, 0, LOCKED_OUT);
    if (inside === 0 || inside === LOCKED_OUT) return;
    const wait = Atomics.waitAsync(flag, 0, inside);
    if (wait.async) await wait.value;
  }
}

/** Main side, for diagnostics and tests: the worker is inside the section now. */
export function isInside(flag: NativeSectionFlag): boolean {
  return Atomics.load(flag, 0) > 0;
}
