// The precision the engine computes in: float32 through the kernels (normal use) or float64 (gradient checks).
// Forward and backward code is written once against this interface, so the float64 path checks the real code.

import { getKernels, type Kernels } from "./kernels/index.js";
import type { FastKernels } from "./kernels/fast.js";
import { matmulBackwardInputF64, matmulBackwardWeightF64, matmulF64 } from "./kernels/reference.js";
import type { Matrix } from "./types.js";

/** Activations and gradients: Float32Array in the float32 engine, Float64Array in the float64 one. */
export type FArray = Float32Array | Float64Array;

export interface Numerics {
  readonly precision: "f32" | "f64";
  /** n zeros. */
  alloc(n: number): FArray;
  /**
   * Like alloc, but the contents are unspecified (not zeroed): only for outputs that the caller writes completely
   * before reading any element. Saves a pass over the memory for the large activations of a training step.
   */
  allocUninit(n: number): FArray;
  /** out[m, w.rows] = x[m, w.cols] · Wᵀ (overwrites). */
  matmul(out: FArray, x: FArray, w: Matrix, m: number): void;
  /** dx[m, w.cols] += dy[m, w.rows] · W (accumulates). */
  matmulBackwardInput(dx: FArray, dy: FArray, w: Matrix, m: number): void;
  /** dw[rows, cols] += dyᵀ x (accumulates). */
  matmulBackwardWeight(dw: FArray, dy: FArray, x: FArray, m: number, rows: number, cols: number): void;
  /** The kernel set behind this numerics (absent for float64). */
  readonly kernels?: Kernels;
  /**
   * The kernel heap, when alloc() hands out heap views (fast kernels): products then run on them in place and
   * attention runs through heap.gemm.
   */
  readonly heap?: FastKernels;
  /** A position in the allocation stack; release(mark) frees everything allocated after it. */
  mark(): number;
  release(mark: number): void;
}

// Heap blocks of arenas that were dropped without release() go back to the heap when the view is collected.
const heapFinalizer = new FinalizationRegistry<{ heap: FastKernels; at: number }>(({ heap, at }) => {
  heap.freeBytes(at);
});

/**
 * float32 numerics. With a kernel set that owns a heap, alloc() allocates in that heap (activations and gradients
 * are then used in place by the kernels); callers release what a pass allocated with mark()/release().
 */
export function f32Numerics(kernels: Kernels = getKernels()): Numerics {
  // The casts hold because this engine only ever allocates Float32Array.
  const heap = kernels.heap;
  const live: Float32Array[] = [];
  const heapAlloc = (n: number, zero: boolean): Float32Array => {
    const v = (heap as FastKernels).allocF32(n, zero);
    heapFinalizer.register(v, { heap: heap as FastKernels, at: v.byteOffset }, v);
    live.push(v);
    return v;
  };
  return {
    precision: "f32",
    kernels,
    heap,
    alloc: heap ? (n) => heapAlloc(n, true) : (n) => new Float32Array(n),
    allocUninit: heap ? (n) => heapAlloc(n, false) : (n) => new Float32Array(n),
    mark: () => live.length,
    release: (mark) => {
      if (!heap) return;
      while (live.length > mark) {
        const v = live.pop() as Float32Array;
        heapFinalizer.unregister(v);
        heap.free(v);
      }
    },
    matmul: (out, x, w, m) => kernels.matmul(out as Float32Array, x as Float32Array, w, m),
    matmulBackwardInput: (dx, dy, w, m) =>
      kernels.matmulBackwardInput(dx as Float32Array, dy as Float32Array, w, m),
    matmulBackwardWeight: (dw, dy, x, m, rows, cols) =>
      kernels.matmulBackwardWeight(dw as Float32Array, dy as Float32Array, x as Float32Array, m, rows, cols),
  };
}

export const f64Numerics: Numerics = {
  precision: "f64",
  alloc: (n) => new Float64Array(n),
  allocUninit: (n) => new Float64Array(n),
  mark: () => 0,
  release: () => undefined,
  matmul: (out, x, w, m) => matmulF64(out as Float64Array, x as Float64Array, w, m),
  matmulBackwardInput: (dx, dy, w, m) => matmulBackwardInputF64(dx as Float64Array, dy as Float64Array, w, m),
  matmulBackwardWeight: (dw, dy, x, m, rows, cols) =>
    matmulBackwardWeightF64(dw as Float64Array, dy as Float64Array, x as Float64Array, m, rows, cols),
};

/** An f32 view of a LoRA factor or other plain array as a Matrix, so it goes through the same kernels. */
export function f32Matrix(data: Float32Array, rows: number, cols: number): Matrix {
  return { type: "f32", rows, cols, data };
}
