// The non-matmul layers of a llama block, each forward next to its backward: RMSNorm, causal grouped-query
// attention over a key/value store, SwiGLU, and the softmax cross-entropy of the output head.

import type { FastKernels } from "./kernels/fast.js";
import type { HeapGemm } from "./kernels/index.js";
import type { FArray } from "./numerics.js";

// ---------------------------------------------------------------------------------------------------------
// RMSNorm: y = x / sqrt(mean(x²) + eps) * w

/** out[n, dim], rstd[n] = 1/sqrt(mean(x²)+eps) (kept for the backward pass). */
export function rmsnormForward(
  out: FArray,
  rstd: FArray,
  x: FArray,
  w: Float32Array,
  n: number,
  dim: number,
  eps: number,
): void {
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[o + j] * x[o + j];
    // ggml sums in double and takes the root in float; the float64 engine keeps full precision.
    const r = 1 / Math.sqrt(ss / dim + eps);
    rstd[i] = r;
    const rr = rstd[i];
    for (let j = 0; j < dim; j++) out[o + j] = x[o + j] * rr * w[j];
  }
}

/**
 * dx[n, dim] += ∂L/∂x and, when given, dw[dim] += ∂L/∂w. With g = w ⊙ dy and r = rstd:
 * dx = r g - r³ x (g·x) / dim,   dw += dy ⊙ x r.
 */
export function rmsnormBackward(
  dx: FArray,
  dw: FArray | undefined,
  dy: FArray,
  x: FArray,
  w: Float32Array,
  rstd: FArray,
  n: number,
  dim: number,
): void {
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    const r = rstd[i];
    let gx = 0;
    for (let j = 0; j < dim; j++) gx += w[j] * dy[o + j] * x[o + j];
    const k = (r * r * r * gx) / dim;
    for (let j = 0; j < dim; j++) dx[o + j] += r * w[j] * dy[o + j] - k * x[o + j];
    if (dw) for (let j = 0; j < dim; j++) dw[j] += dy[o + j] * x[o + j] * r;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Causal grouped-query attention.
//
// Queries come in rows; keys and values live in a store (the KV cache while decoding, or the batch's own
// k/v rows while training). Row i sits at position positions[i] of a sequence whose position 0 is store
// row kvRow0[i], and attends to store rows kvRow0[i] + 0 .. kvRow0[i] + positions[i].

export interface AttentionLayout {
  n: number;
  positions: Int32Array; // [n]
  kvRow0: Int32Array; // [n]
}

export interface AttentionShape {
  heads: number;
  kvHeads: number;
  headDim: number;
}

/**
 * A run of batch rows i0 .. i0+c-1 that are consecutive positions p0 .. p0+c-1 of one sequence (store rows
 * kv0 + 0 .. kv0 + p0+c-1): its attention is a few matrix products per head. cols = p0 + c keys.
 * Its saved softmax (training) is, per head h, a [c][cols] block at probOff + h*c*cols (zero above the diagonal).
 */
export interface AttentionSegment {
  i0: number;
  c: number;
  p0: number;
  kv0: number;
  cols: number;
  probOff: number;
}

export interface AttentionPlan {
  segments: AttentionSegment[];
  /** Floats of the saved softmax of all segments and heads. */
  probTotal: number;
  /** Floats of one head's [c][cols] block of the largest segment (the scratch a pass needs). */
  maxBlock: number;
}

/** Rows of a query block in the matrix-product path: bounds the work above the causal diagonal. */
export const ATTENTION_ROW_BLOCK = 64;

/** Splits a batch into segments of consecutive positions of one sequence. */
export function attentionPlan(layout: AttentionLayout, heads: number): AttentionPlan {
  const segments: AttentionSegment[] = [];
  let probTotal = 0;
  let maxBlock = 0;
  let i = 0;
  while (i < layout.n) {
    const i0 = i;
    const kv0 = layout.kvRow0[i];
    const p0 = layout.positions[i];
    i++;
    while (i < layout.n && layout.kvRow0[i] === kv0 && layout.positions[i] === layout.positions[i - 1] + 1)
      i++;
    const c = i - i0;
    const cols = p0 + c;
    segments.push({ i0, c, p0, kv0, cols, probOff: probTotal });
    probTotal += heads * c * cols;
    maxBlock = Math.max(maxBlock, c * cols);
  }
  return { segments, probTotal, maxBlock };
}

/** Scale, causal mask and softmax of rows [r0, r1) of a [c][cols] score block (row r sees p0 + r + 1 keys). */
function softmaxRows(
  p: FArray,
  r0: number,
  r1: number,
  cols: number,
  ncols: number,
  p0: number,
  scale: number,
): void {
  for (let r = r0; r < r1; r++) {
    const o = r * cols;
    const len = p0 + r + 1;
    let max = -Infinity;
    for (let j = 0; j < len; j++) {
      const v = p[o + j] * scale;
      p[o + j] = v;
      if (v > max) max = v;
    }
    let sum = 0;
    for (let j = 0; j < len; j++) {
      const e = Math.exp(p[o + j] - max);
      p[o + j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = 0; j < len; j++) p[o + j] *= inv;
    for (let j = len; j < ncols; j++) p[o + j] = 0;
  }
}

function unavailableGemm(): void {
  throw new Error("attention: the matrix-product path needs every array in the kernel heap");
}

/** True when every array lives in the kernel heap (the matrix-product path can run on them in place). */
function allInHeap(heap: FastKernels | undefined, arrays: FArray[]): heap is FastKernels {
  if (!heap) return false;
  for (const a of arrays) if (!(a instanceof Float32Array) || !heap.inHeap(a)) return false;
  return true;
}

/**
 * out[n, heads*headDim] = softmax(q kᵀ / sqrt(headDim), causal) v, for every query head; kv head
 * g = h / (heads/kvHeads) serves a group of query heads. `scratch` holds plan.maxBlock floats. When `probs` is given
 * (plan.probTotal floats) the softmax is saved there. With `heap` and every array in it, the scores and the
 * weighted sum run as matrix products (query blocks of ATTENTION_ROW_BLOCK rows, only the keys they can see).
 */
export function attentionForward(
  out: FArray,
  q: FArray,
  kStore: FArray,
  vStore: FArray,
  plan: AttentionPlan,
  shape: AttentionShape,
  scratch: FArray,
  probs?: FArray,
  heap?: FastKernels,
  gemm?: HeapGemm,
): void {
  const { heads, kvHeads, headDim: hd } = shape;
  const group = heads / kvHeads;
  const qDim = heads * hd;
  const kvDim = kvHeads * hd;
  const scale = 1 / Math.sqrt(hd);
  const arrays = [out, q, kStore, vStore, scratch];
  if (probs) arrays.push(probs);
  const fast = allInHeap(heap, arrays);
  const mm: HeapGemm = fast ? (gemm ?? heap.gemm.bind(heap)) : unavailableGemm;
  for (const seg of plan.segments) {
    const { i0, c, p0, kv0, cols } = seg;
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      const p = probs
        ? probs.subarray(seg.probOff + h * c * cols, seg.probOff + (h + 1) * c * cols)
        : scratch;
      if (fast) {
        const pA = heap.addr(p);
        const kA = heap.addr(kStore) + (kv0 * kvDim + g * hd) * 4;
        const vA = heap.addr(vStore) + (kv0 * kvDim + g * hd) * 4;
        for (let r0 = 0; r0 < c; r0 += ATTENTION_ROW_BLOCK) {
          const r1 = Math.min(c, r0 + ATTENTION_ROW_BLOCK);
          const ncols = p0 + r1;
          const qA = heap.addr(q) + ((i0 + r0) * qDim + h * hd) * 4;
          mm(r1 - r0, ncols, hd, qA, qDim * 4, 4, kA, kvDim * 4, true, pA + r0 * cols * 4, cols * 4, false);
          softmaxRows(p, r0, r1, cols, ncols, p0, scale);
          const oA = heap.addr(out) + ((i0 + r0) * qDim + h * hd) * 4;
          mm(r1 - r0, hd, ncols, pA + r0 * cols * 4, cols * 4, 4, vA, kvDim * 4, false, oA, qDim * 4, false);
        }
        continue;
      }
      for (let r = 0; r < c; r++) {
        const qo = (i0 + r) * qDim + h * hd;
        const len = p0 + r + 1;
        for (let j = 0; j < len; j++) {
          const ko = (kv0 + j) * kvDim + g * hd;
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[qo + d] * kStore[ko + d];
          p[r * cols + j] = s;
        }
      }
      softmaxRows(p, 0, c, cols, cols, p0, scale);
      for (let r = 0; r < c; r++) {
        const oo = (i0 + r) * qDim + h * hd;
        const len = p0 + r + 1;
        for (let d = 0; d < hd; d++) out[oo + d] = 0;
        for (let j = 0; j < len; j++) {
          const vo = (kv0 + j) * kvDim + g * hd;
          const pj = p[r * cols + j];
          for (let d = 0; d < hd; d++) out[oo + d] += pj * vStore[vo + d];
        }
      }
    }
  }
}

/**
 * Backward of attentionForward when the store is the batch's own rows (training). With P the saved softmax:
 * dV_j += Σ_i P_ij dOut_i;  dP_ij = dOut_i·v_j;  dS_ij = P_ij (dP_ij - Σ_j P_ij dP_ij);
 * dq_i = scale Σ_j dS_ij k_j (overwrites dq);  dk_j += scale Σ_i dS_ij q_i.  `scratch` holds plan.maxBlock floats.
 */
export function attentionBackward(
  dq: FArray,
  dk: FArray,
  dv: FArray,
  dout: FArray,
  q: FArray,
  k: FArray,
  v: FArray,
  plan: AttentionPlan,
  shape: AttentionShape,
  probs: FArray,
  scratch: FArray,
  heap?: FastKernels,
  gemm?: HeapGemm,
): void {
  const { heads, kvHeads, headDim: hd } = shape;
  const group = heads / kvHeads;
  const qDim = heads * hd;
  const kvDim = kvHeads * hd;
  const scale = 1 / Math.sqrt(hd);
  const rows = plan.segments.reduce((s, g) => Math.max(s, g.i0 + g.c), 0);
  dq.fill(0, 0, rows * qDim);
  const fast = allInHeap(heap, [dq, dk, dv, dout, q, k, v, probs, scratch]);
  const mm: HeapGemm = fast ? (gemm ?? heap.gemm.bind(heap)) : unavailableGemm;
  for (const seg of plan.segments) {
    const { i0, c, p0, kv0, cols } = seg;
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      const pOff = seg.probOff + h * c * cols;
      const p = probs.subarray(pOff, pOff + c * cols);
      const ds = scratch; // dP, then dS, [rows][cols]
      const rb = fast ? ATTENTION_ROW_BLOCK : c;
      for (let r0 = 0; r0 < c; r0 += rb) {
        const r1 = Math.min(c, r0 + rb);
        const rc = r1 - r0;
        const ncols = p0 + r1;
        if (fast) {
          const pA = heap.addr(p) + r0 * cols * 4;
          const kvOff = (kv0 * kvDim + g * hd) * 4;
          const qOff = ((i0 + r0) * qDim + h * hd) * 4;
          const dsA = heap.addr(ds);
          // dV[0:ncols] += Pᵀ dOut ; dP = dOut Vᵀ
          mm(
            ncols,
            hd,
            rc,
            pA,
            4,
            cols * 4,
            heap.addr(dout) + qOff,
            qDim * 4,
            false,
            heap.addr(dv) + kvOff,
            kvDim * 4,
            true,
          );
          mm(
            rc,
            ncols,
            hd,
            heap.addr(dout) + qOff,
            qDim * 4,
            4,
            heap.addr(v) + kvOff,
            kvDim * 4,
            true,
            dsA,
            cols * 4,
            false,
          );
          softmaxBackwardRows(ds, p, r0, rc, cols, ncols, p0, scale);
          // dq = dS K ; dK[0:ncols] += dSᵀ q
          mm(
            rc,
            hd,
            ncols,
            dsA,
            cols * 4,
            4,
            heap.addr(k) + kvOff,
            kvDim * 4,
            false,
            heap.addr(dq) + qOff,
            qDim * 4,
            true,
          );
          mm(
            ncols,
            hd,
            rc,
            dsA,
            4,
            cols * 4,
            heap.addr(q) + qOff,
            qDim * 4,
            false,
            heap.addr(dk) + kvOff,
            kvDim * 4,
            true,
          );
          continue;
        }
        for (let r = 0; r < rc; r++) {
          const o = (i0 + r0 + r) * qDim + h * hd;
          const len = p0 + r0 + r + 1;
          for (let j = 0; j < len; j++) {
            const vo = (kv0 + j) * kvDim + g * hd;
            const pj = p[(r0 + r) * cols + j];
            let s = 0;
            for (let d = 0; d < hd; d++) {
              s += dout[o + d] * v[vo + d];
              dv[vo + d] += pj * dout[o + d];
            }
            ds[r * cols + j] = s;
          }
        }
        softmaxBackwardRows(ds, p, r0, rc, cols, ncols, p0, scale);
        for (let r = 0; r < rc; r++) {
          const o = (i0 + r0 + r) * qDim + h * hd;
          const len = p0 + r0 + r + 1;
          for (let j = 0; j < len; j++) {
            const d_ = ds[r * cols + j];
            if (d_ === 0) continue;
            const ko = (kv0 + j) * kvDim + g * hd;
            for (let d = 0; d < hd; d++) {
              dq[o + d] += d_ * k[ko + d];
              dk[ko + d] += d_ * q[o + d];
            }
          }
        }
      }
    }
  }
}

/** dP -> dS in place for query rows r0 .. r0+rc-1 (scratch row r holds query row r0 + r): dS = P (dP - P·dP) scale. */
function softmaxBackwardRows(
  ds: FArray,
  p: FArray,
  r0: number,
  rc: number,
  cols: number,
  ncols: number,
  p0: number,
  scale: number,
): void {
  for (let r = 0; r < rc; r++) {
    const o = r * cols;
    const po = (r0 + r) * cols;
    const len = p0 + r0 + r + 1;
    let dot = 0;
    for (let j = 0; j < len; j++) dot += p[po + j] * ds[o + j];
    for (let j = 0; j < len; j++) ds[o + j] = p[po + j] * (ds[o + j] - dot) * scale;
    for (let j = len; j < ncols; j++) ds[o + j] = 0;
  }
}

// ---------------------------------------------------------------------------------------------------------
// SwiGLU: act = silu(gate) ⊙ up, silu(g) = g σ(g)

export function swigluForward(act: FArray, gate: FArray, up: FArray, size: number, heap?: FastKernels): void {
  if (
    heap &&
    act instanceof Float32Array &&
    gate instanceof Float32Array &&
    up instanceof Float32Array &&
    heap.canSplit(size, act, gate, up)
  ) {
    heap.swiglu(act, gate, up, size); // the loop below, split across threads
    return;
  }
  for (let i = 0; i < size; i++) {
    const g = gate[i];
    act[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/** dgate, dup overwritten: dup = dact silu(g), dgate = dact up σ(g)(1 + g(1-σ(g))). */
export function swigluBackward(
  dgate: FArray,
  dup: FArray,
  dact: FArray,
  gate: FArray,
  up: FArray,
  size: number,
  heap?: FastKernels,
): void {
  if (
    heap &&
    dgate instanceof Float32Array &&
    dup instanceof Float32Array &&
    dact instanceof Float32Array &&
    gate instanceof Float32Array &&
    up instanceof Float32Array &&
    heap.canSplit(size, dgate, dup, dact, gate, up)
  ) {
    heap.swigluBackward(dgate, dup, dact, gate, up, size); // the loop below, split across threads
    return;
  }
  for (let i = 0; i < size; i++) {
    const g = gate[i];
    const sig = 1 / (1 + Math.exp(-g));
    dup[i] = dact[i] * g * sig;
    dgate[i] = dact[i] * up[i] * sig * (1 + g * (1 - sig));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Softmax cross-entropy of one row of logits.

/** log Σ exp(logits) of logits[o, o+len), in float64. */
export function logSumExp(logits: FArray, o: number, len: number): number {
  let max = -Infinity;
  for (let j = 0; j < len; j++) if (logits[o + j] > max) max = logits[o + j];
  let sum = 0;
  for (let j = 0; j < len; j++) sum += Math.exp(logits[o + j] - max);
  return max + Math.log(sum);
}

/**
 * Turns logits[o, o+len) into ∂(scale · -log p[target])/∂logits in place: scale (softmax - onehot).
 * Returns -log p[target]. One exponential per logit.
 */
export function crossEntropyBackwardInPlace(
  logits: FArray,
  o: number,
  len: number,
  target: number,
  scale: number,
): number {
  let max = -Infinity;
  for (let j = 0; j < len; j++) if (logits[o + j] > max) max = logits[o + j];
  const zt = logits[o + target] - max;
  let sum = 0;
  for (let j = 0; j < len; j++) {
    const e = Math.exp(logits[o + j] - max);
    logits[o + j] = e;
    sum += e;
  }
  const k = scale / sum;
  for (let j = 0; j < len; j++) logits[o + j] *= k;
  logits[o + target] -= scale;
  return Math.log(sum) - zt;
}
