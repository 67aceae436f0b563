// The precision the engine computes in: float32 through the kernels (normal use) or float64 (gradient checks).
// Forward and backward code is written once against this interface, so the float64 path checks the real code.

import { getKernels, type Kernels } from "./kernels/index.js";
import { matmulBackwardInputF64, matmulBackwardWeightF64, matmulF64 } from "./kernels/reference.js";
import type { Matrix } from "./types.js";

/** Activations and gradients: Float32Array in the float32 engine, Float64Array in the float64 one. */
export type FArray = Float32Array | Float64Array;

export interface Numerics {
  readonly precision: "f32" | "f64";
  alloc(n: number): FArray;
  /** out[m, w.rows] = x[m, w.cols] · Wᵀ (overwrites). */
  matmul(out: FArray, x: FArray, w: Matrix, m: number): void;
  /** dx[m, w.cols] += dy[m, w.rows] · W (accumulates). */
  matmulBackwardInput(dx: FArray, dy: FArray, w: Matrix, m: number): void;
  /** dw[rows, cols] += dyᵀ x (accumulates). */
  matmulBackwardWeight(dw: FArray, dy: FArray, x: FArray, m: number, rows: number, cols: number): void;
}

export function f32Numerics(kernels: Kernels = getKernels()): Numerics {
  // The casts hold because this engine only ever allocates Float32Array.
  return {
    precision: "f32",
    alloc: (n) => new Float32Array(n),
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
  matmul: (out, x, w, m) => matmulF64(out as Float64Array, x as Float64Array, w, m),
  matmulBackwardInput: (dx, dy, w, m) => matmulBackwardInputF64(dx as Float64Array, dy as Float64Array, w, m),
  matmulBackwardWeight: (dw, dy, x, m, rows, cols) =>
    matmulBackwardWeightF64(dw as Float64Array, dy as Float64Array, x as Float64Array, m, rows, cols),
};

/** An f32 view of a LoRA factor or other plain array as a Matrix, so it goes through the same kernels. */
export function f32Matrix(data: Float32Array, rows: number, cols: number): Matrix {
  return { type: "f32", rows, cols, data };
}
