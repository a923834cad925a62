// The two ONNX Runtime backends behind one API (onnxruntime-common's): the
// native onnxruntime-node where its binding loads, and onnxruntime-web's
// WebAssembly build everywhere else (Alpine, 32-bit Raspberry Pi, Intel Macs).
import * as os from "os";
import type * as Ort from "onnxruntime-web";

/** What a user chooses in the node: `auto` takes native when it loads, WebAssembly otherwise. */
export type BackendSetting = "auto" | "native" | "wasm";
export type BackendName = "native" | "wasm";

export interface BackendInfo {
  name: BackendName;
  setting: BackendSetting;
  /** Why `auto` chose this backend; for a fallback, what kept native out and how to get it. */
  reason?: string;
  /** Threads one inference may use. */
  threads: number;
}

/** onnxruntime-node and onnxruntime-web export the same onnxruntime-common API. */
export type OrtApi = typeof Ort;

export interface Runtime {
  ort: OrtApi;
  info: BackendInfo;
  sessionOptions: Ort.InferenceSession.SessionOptions;
}

/** The chosen backend cannot run here (native asked for where it does not load). */
export class BackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackendError";
  }
}

const BACKEND_SETTINGS: readonly BackendSetting[] = ["auto", "native", "wasm"];

/** Platforms onnxruntime-node 1.30 ships a binding for. */
const NATIVE_PLATFORMS = ["linux/x64", "linux/arm64", "win32/x64", "win32/arm64", "darwin/arm64"];

export function backendSetting(value: unknown): BackendSetting {
  return BACKEND_SETTINGS.includes(value as BackendSetting) ? (value as BackendSetting) : "auto";
}

/**
 * Loads the backend `setting` asks for. `wasmThreads` is how many threads the
 * WebAssembly build may use; native inference runs on one thread, as the
 * worker batches instead.
 */
export function loadRuntime(setting: BackendSetting, wasmThreads?: number): Runtime {
  if (setting !== "wasm") {
    const native = tryNative();
    if ("ort" in native) {
      const reason = setting === "auto" ? `onnxruntime-node loaded on ${platform()}` : undefined;
      return {
        ort: native.ort,
        info: { name: "native", setting, reason, threads: 1 },
        sessionOptions: { executionProviders: ["cpu"], intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: "all" },
      };
    }
    if (setting === "native") {
      throw new BackendError(`the native backend cannot run here: ${native.failure}; choose "auto" or "WebAssembly"`);
    }
    return wasmRuntime(setting, wasmThreads ?? defaultWasmThreads(), native.failure);
  }
  return wasmRuntime(setting, wasmThreads ?? defaultWasmThreads());
}

function wasmRuntime(setting: BackendSetting, threads: number, nativeFailure?: string): Runtime {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ort = require("onnxruntime-web") as OrtApi;
  // The .wasm files are read from the onnxruntime-web package on disk: nothing is
  // downloaded. The thread count is read once, when the first session starts.
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = "error";
  return {
    ort,
    // For auto, the reason is what kept native out; chosen outright, WebAssembly needs none.
    info: { name: "wasm", setting, reason: nativeFailure, threads },
    sessionOptions: { executionProviders: ["wasm"], graphOptimizationLevel: "all" },
  };
}

/** onnxruntime-node, or a sentence saying why it cannot load and, where it can, how to get it. */
function tryNative(): { ort: OrtApi } | { failure: string } {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { ort: require("onnxruntime-node") as OrtApi };
  } catch (err) {
    return { failure: nativeFailure(err as NodeJS.ErrnoException) };
  }
}

function nativeFailure(err: NodeJS.ErrnoException): string {
  const message = String(err?.message ?? err).split("\n")[0].slice(0, 160);
  const supported = NATIVE_PLATFORMS.includes(platform());
  if (err?.code === "MODULE_NOT_FOUND" && /'onnxruntime-node'/.test(message)) {
    return supported
      ? "onnxruntime-node is not installed (npm leaves it out with --omit=optional, or when its install script " +
          "fails, as it does offline unless ONNXRUNTIME_NODE_INSTALL=skip is set for the npm that installs)"
      : `onnxruntime-node is not installed (it has no build for ${platform()})`;
  }
  if (!supported) return `onnxruntime-node has no binding for ${platform()}`;
  return `onnxruntime-node's binding failed to load (${message})`;
}

function platform(): string {
  return `${process.platform}/${process.arch}`;
}

/** Both cores of a small board, at most four: more threads help a 28×28 CNN little. */
function defaultWasmThreads(): number {
  const fromEnv = Number(process.env.MNIST_WASM_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv >= 1 && fromEnv <= 16) return fromEnv;
  return Math.max(1, Math.min(4, os.availableParallelism?.() ?? os.cpus().length));
}
