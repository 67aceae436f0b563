// The kernel contract: the matrix products forward and backward passes are made of, as one swappable object.
// getKernels() picks the implementation: the reference set (plain TypeScript) until initKernels() starts the fast
// WebAssembly set, which then serves every float32 pass. The float64 gradient checks never use kernels.

import type { Matrix } from "../types.js";
import { getFastKernels, type FastInitOptions, type FastKernels } from "./fast.js";
import { referenceKernels } from "./reference.js";

/** A strided product on heap byte addresses, with FastKernels.gemm's signature and meaning. */
export type HeapGemm = (
  M: number,
  N: number,
  K: number,
  a: number,
  ars: number,
  aks: number,
  b: number,
  ldb: number,
  bT: boolean,
  c: number,
  ldc: number,
  accum: boolean,
) => void;

/**
 * Every product is row-major with torch.nn.Linear's weight layout: W is [rows = outputs, cols = inputs].
 * Frozen weights may be f32/f16/bf16/q8_0 (dequantized inside); gradients are always f32.
 */
export interface Kernels {
  readonly name: string;
  /** out[m, w.rows] = x[m, w.cols] · Wᵀ. Overwrites out. */
  matmul(out: Float32Array, x: Float32Array, w: Matrix, m: number): void;
  /** dx[m, w.cols] += dy[m, w.rows] · W. Accumulates into dx (callers zero it first when needed). */
  matmulBackwardInput(dx: Float32Array, dy: Float32Array, w: Matrix, m: number): void;
  /** dw[rows, cols] += dy[m, rows]ᵀ · x[m, cols]. Accumulates into dw. */
  matmulBackwardWeight(
    dw: Float32Array,
    dy: Float32Array,
    x: Float32Array,
    m: number,
    rows: number,
    cols: number,
  ): void;
  /**
   * Strided C (+)= A · B on heap byte addresses, with FastKernels.gemm's signature (attention's products). Kernel
   * sets with a faster route provide it; absent, callers use heap.gemm.
   */
  readonly attentionGemm?: HeapGemm;
  /**
   * Present on kernel sets that own a heap (the WebAssembly set and the ggml set on top of it): the engine then
   * places frozen weights there once, allocates activations there, and runs attention through `heap.gemm`.
   */
  readonly heap?: FastKernels;
}

export { referenceKernels } from "./reference.js";

let current: Kernels = referenceKernels;

/** The kernels the engine uses by default: the reference set until initKernels() (or setKernels) is called. */
export function getKernels(): Kernels {
  return current;
}

/** Make `k` the default kernel set (tests, benchmarks, the ggml route). */
export function setKernels(k: Kernels): void {
  current = k;
}

/** Start the fast WebAssembly kernels with `threads` threads (default 2) and make them the default set. */
export async function initKernels(opts: FastInitOptions = {}): Promise<FastKernels> {
  const k = getFastKernels();
  await k.init(opts);
  current = k;
  return k;
}

/** Stop the fast kernels' worker threads and go back to the reference set. */
export async function disposeKernels(): Promise<void> {
  if (current.heap) await current.heap.dispose();
  current = referenceKernels;
  choice = undefined;
}

/** What ensureFastKernels chose, and why the BLAS route is off when it is (for `buckle doctor` and run records). */
export interface KernelChoice {
  name: string;
  threads: number;
  /** The BLAS library in use, when the BLAS route is on. */
  blas?: string;
  /** Why the BLAS route is off (not installed, turned off, a worker thread), when it is. */
  blasOff?: string;
}

let choice: KernelChoice | undefined;

/**
 * The kernel set in use in this thread: what ensureFastKernels chose, or (after initKernels/setKernels) the set
 * that was made the default; undefined while the reference kernels are the default.
 */
export function kernelChoice(): KernelChoice | undefined {
  if (choice && choice.name === current.name) return choice;
  if (current === referenceKernels) return undefined;
  return { name: current.name, threads: current.heap?.threads ?? 1 };
}

/**
 * Make sure the fast kernels are the default, starting them once per process with `threads` threads
 * (default: the machine's parallelism). Every entry point that runs the engine for real calls this.
 *
 * On the main thread, large float32 products then go to the machine's BLAS when koffi and an optimized BLAS are
 * there (see ./blas.ts; BUCKLE_BLAS=off turns that off); everything else, and every worker thread (a BLAS
 * library's own threads are process-wide), runs on the WebAssembly kernels.
 */
export async function ensureFastKernels(threads?: number): Promise<Kernels> {
  if (current === referenceKernels) {
    const { availableParallelism } = await import("node:os");
    const n = Math.max(1, threads ?? availableParallelism());
    const heap = await initKernels({ threads: n });
    choice = { name: heap.name, threads: n };
    const { isMainThread } = await import("node:worker_threads");
    if (!isMainThread) choice.blasOff = "worker thread";
    else {
      try {
        const { createBlasKernels } = await import("./blas.js");
        const blas = createBlasKernels({ threads: n, heap });
        current = blas;
        choice = { name: blas.name, threads: n, blas: blas.library };
      } catch (e) {
        choice.blasOff = (e as Error).message;
        // a library the user named explicitly and that does not load deserves a word (once per process)
        const want = process.env.BUCKLE_BLAS?.trim();
        if (want && !["off", "0", "none"].includes(want))
          process.emitWarning(
            `${choice.blasOff}; the engine uses its WebAssembly kernels`,
            "BuckleBlasWarning",
          );
      }
    }
  }
  return current;
}
