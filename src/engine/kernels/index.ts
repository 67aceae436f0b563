// The kernel contract: the matrix products forward and backward passes are made of, as one swappable object.
// getKernels() picks the implementation; the reference set is plain TypeScript, a fast set can replace it.

import type { Matrix } from "../types.js";
import { referenceKernels } from "./reference.js";

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
}

export { referenceKernels } from "./reference.js";

/** The kernels the engine uses by default. */
export function getKernels(): Kernels {
  return referenceKernels;
}
