// Reference kernels in plain TypeScript: the three matrix products the engine needs, written for clarity.
// The fast kernels must agree with these; the float64 variants back the finite-difference gradient checks.

import { bf16BitsToF32, f16BitsToF32 } from "../../formats/gguf/index.js";
import type { Matrix } from "../types.js";
import type { Kernels } from "./index.js";

/** Bytes of one ggml Q8_0 block: an f16 scale then 32 int8 values. */
export const Q8_0_BLOCK_BYTES = 34;
export const Q8_0_BLOCK_VALUES = 32;

/** f16 and bf16 bit patterns to f32 by table lookup: a function call per weight would dominate the matmul. */
let f16Table: Float32Array | undefined;
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** Bytes one row of `w` occupies in `w.data`'s buffer. */
export function matrixRowBytes(w: Matrix): number {
  switch (w.type) {
    case "f32":
      return w.cols * 4;
    case "f16":
    case "bf16":
      return w.cols * 2;
    case "q8_0":
      return (w.cols / Q8_0_BLOCK_VALUES) * Q8_0_BLOCK_BYTES;
  }
}

/** Row r of `w` as floats into dst[0..cols): the one place that knows every storage type. */
export function dequantizeRow(w: Matrix, r: number, dst: Float32Array | Float64Array): void {
  const cols = w.cols;
  switch (w.type) {
    case "f32": {
      const d = w.data as Float32Array;
      const o = r * cols;
      for (let c = 0; c < cols; c++) dst[c] = d[o + c];
      return;
    }
    case "f16": {
      const d = w.data as Uint16Array;
      const lut = f16Lut();
      const o = r * cols;
      for (let c = 0; c < cols; c++) dst[c] = lut[d[o + c]];
      return;
    }
    case "bf16": {
      const d = w.data as Uint16Array;
      const o = r * cols;
      for (let c = 0; c < cols; c++) dst[c] = bf16BitsToF32(d[o + c]);
      return;
    }
    case "q8_0": {
      const d = w.data as Uint8Array;
      const lut = f16Lut();
      const blocks = cols / Q8_0_BLOCK_VALUES;
      let o = r * blocks * Q8_0_BLOCK_BYTES;
      for (let b = 0; b < blocks; b++, o += Q8_0_BLOCK_BYTES) {
        const scale = lut[d[o] | (d[o + 1] << 8)];
        const base = b * Q8_0_BLOCK_VALUES;
        for (let j = 0; j < Q8_0_BLOCK_VALUES; j++) dst[base + j] = scale * ((d[o + 2 + j] << 24) >> 24);
      }
      return;
    }
  }
}

/** Row r of an f32 matrix without copying; other types are dequantized into `scratch`. */
function rowOf(w: Matrix, r: number, scratch: Float32Array): Float32Array {
  if (w.type === "f32") return (w.data as Float32Array).subarray(r * w.cols, (r + 1) * w.cols);
  dequantizeRow(w, r, scratch);
  return scratch;
}

/** out[m, w.rows] = x[m, w.cols] · Wᵀ (overwrites out). */
export function matmul(out: Float32Array, x: Float32Array, w: Matrix, m: number): void {
  const { rows, cols } = w;
  const scratch = new Float32Array(cols);
  // W row outermost: each quantized row is dequantized once and then dotted with every x row.
  for (let r = 0; r < rows; r++) {
    const wr = rowOf(w, r, scratch);
    for (let i = 0; i < m; i++) {
      const xo = i * cols;
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0;
      let c = 0;
      for (; c + 3 < cols; c += 4) {
        s0 += x[xo + c] * wr[c];
        s1 += x[xo + c + 1] * wr[c + 1];
        s2 += x[xo + c + 2] * wr[c + 2];
        s3 += x[xo + c + 3] * wr[c + 3];
      }
      for (; c < cols; c++) s0 += x[xo + c] * wr[c];
      out[i * rows + r] = s0 + s1 + s2 + s3;
    }
  }
}

/** dx[m, w.cols] += dy[m, w.rows] · W. Accumulates, because the residual stream and LoRA both add into dx. */
export function matmulBackwardInput(dx: Float32Array, dy: Float32Array, w: Matrix, m: number): void {
  const { rows, cols } = w;
  const scratch = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    const wr = rowOf(w, r, scratch);
    for (let i = 0; i < m; i++) {
      const g = dy[i * rows + r];
      if (g === 0) continue;
      const xo = i * cols;
      for (let c = 0; c < cols; c++) dx[xo + c] += g * wr[c];
    }
  }
}

/** dW[rows, cols] += dy[m, rows]ᵀ · x[m, cols] (f32 gradients only: LoRA factors and full fine-tuning). */
export function matmulBackwardWeight(
  dw: Float32Array,
  dy: Float32Array,
  x: Float32Array,
  m: number,
  rows: number,
  cols: number,
): void {
  for (let i = 0; i < m; i++) {
    const xo = i * cols;
    for (let r = 0; r < rows; r++) {
      const g = dy[i * rows + r];
      if (g === 0) continue;
      const wo = r * cols;
      for (let c = 0; c < cols; c++) dw[wo + c] += g * x[xo + c];
    }
  }
}

export const referenceKernels: Kernels = {
  name: "reference",
  matmul,
  matmulBackwardInput,
  matmulBackwardWeight,
};

// Float64 twins of the three products, for the float64 reference path of the engine (gradient checks).
// Weights are read exactly (every f32/f16/bf16/q8_0 value is a float64), activations stay float64.

export function matmulF64(out: Float64Array, x: Float64Array, w: Matrix, m: number): void {
  const { rows, cols } = w;
  const wr = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    dequantizeRow(w, r, wr);
    for (let i = 0; i < m; i++) {
      const xo = i * cols;
      let s = 0;
      for (let c = 0; c < cols; c++) s += x[xo + c] * wr[c];
      out[i * rows + r] = s;
    }
  }
}

export function matmulBackwardInputF64(dx: Float64Array, dy: Float64Array, w: Matrix, m: number): void {
  const { rows, cols } = w;
  const wr = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    dequantizeRow(w, r, wr);
    for (let i = 0; i < m; i++) {
      const g = dy[i * rows + r];
      const xo = i * cols;
      for (let c = 0; c < cols; c++) dx[xo + c] += g * wr[c];
    }
  }
}

export function matmulBackwardWeightF64(
  dw: Float64Array,
  dy: Float64Array,
  x: Float64Array,
  m: number,
  rows: number,
  cols: number,
): void {
  for (let i = 0; i < m; i++) {
    for (let r = 0; r < rows; r++) {
      const g = dy[i * rows + r];
      for (let c = 0; c < cols; c++) dw[r * cols + c] += g * x[i * cols + c];
    }
  }
}
