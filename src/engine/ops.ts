// The non-matmul layers of a llama block, each forward next to its backward: RMSNorm, causal grouped-query
// attention over a key/value store, SwiGLU, and the softmax cross-entropy of the output head.

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

/** Offsets of each row's saved probabilities: row i, head h at off[i] + h*(positions[i]+1). */
export function probOffsets(layout: AttentionLayout, heads: number): { offsets: Int32Array; total: number } {
  const offsets = new Int32Array(layout.n);
  let total = 0;
  for (let i = 0; i < layout.n; i++) {
    offsets[i] = total;
    total += heads * (layout.positions[i] + 1);
  }
  return { offsets, total };
}

/**
 * out[n, heads*headDim] = softmax(q kᵀ / sqrt(headDim), causal) v, for every query head; kv head
 * g = h / (heads/kvHeads) serves a group of query heads. When `probs` is given the softmax is saved there.
 */
export function attentionForward(
  out: FArray,
  q: FArray,
  kStore: FArray,
  vStore: FArray,
  layout: AttentionLayout,
  shape: AttentionShape,
  scratch: FArray,
  probs?: { data: FArray; offsets: Int32Array },
): void {
  const { heads, kvHeads, headDim: hd } = shape;
  const group = heads / kvHeads;
  const qDim = heads * hd;
  const kvDim = kvHeads * hd;
  const scale = 1 / Math.sqrt(hd);
  for (let i = 0; i < layout.n; i++) {
    const len = layout.positions[i] + 1;
    const row0 = layout.kvRow0[i];
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      const qo = i * qDim + h * hd;
      // scores p[j] = q·k_j * scale, then a max-shifted softmax
      const p = probs
        ? probs.data.subarray(probs.offsets[i] + h * len, probs.offsets[i] + (h + 1) * len)
        : scratch;
      let max = -Infinity;
      for (let j = 0; j < len; j++) {
        const ko = (row0 + j) * kvDim + g * hd;
        let s = 0;
        for (let d = 0; d < hd; d++) s += q[qo + d] * kStore[ko + d];
        p[j] = s * scale;
        if (p[j] > max) max = p[j];
      }
      let sum = 0;
      for (let j = 0; j < len; j++) {
        p[j] = Math.exp(p[j] - max);
        sum += p[j];
      }
      const inv = 1 / sum;
      for (let j = 0; j < len; j++) p[j] *= inv;
      // out = Σ_j p[j] v_j
      const oo = i * qDim + h * hd;
      for (let d = 0; d < hd; d++) out[oo + d] = 0;
      for (let j = 0; j < len; j++) {
        const vo = (row0 + j) * kvDim + g * hd;
        const pj = p[j];
        for (let d = 0; d < hd; d++) out[oo + d] += pj * vStore[vo + d];
      }
    }
  }
}

/**
 * Backward of attentionForward when the store is the batch's own rows (training). With P the saved softmax:
 * dV_j += Σ_i P_ij dOut_i;  dP_ij = dOut_i·v_j;  dS_ij = P_ij (dP_ij - Σ_j P_ij dP_ij);
 * dq_i = scale Σ_j dS_ij k_j (overwrites dq);  dk_j += scale Σ_i dS_ij q_i.
 */
export function attentionBackward(
  dq: FArray,
  dk: FArray,
  dv: FArray,
  dout: FArray,
  q: FArray,
  k: FArray,
  v: FArray,
  layout: AttentionLayout,
  shape: AttentionShape,
  probs: { data: FArray; offsets: Int32Array },
  scratch: FArray,
): void {
  const { heads, kvHeads, headDim: hd } = shape;
  const group = heads / kvHeads;
  const qDim = heads * hd;
  const kvDim = kvHeads * hd;
  const scale = 1 / Math.sqrt(hd);
  dq.fill(0, 0, layout.n * qDim);
  for (let i = 0; i < layout.n; i++) {
    const len = layout.positions[i] + 1;
    const row0 = layout.kvRow0[i];
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      const o = i * qDim + h * hd;
      const p = probs.data.subarray(probs.offsets[i] + h * len, probs.offsets[i] + (h + 1) * len);
      const dp = scratch;
      let dot = 0;
      for (let j = 0; j < len; j++) {
        const vo = (row0 + j) * kvDim + g * hd;
        let s = 0;
        for (let d = 0; d < hd; d++) {
          s += dout[o + d] * v[vo + d];
          dv[vo + d] += p[j] * dout[o + d];
        }
        dp[j] = s;
        dot += p[j] * s;
      }
      for (let j = 0; j < len; j++) {
        const ds = p[j] * (dp[j] - dot) * scale;
        if (ds === 0) continue;
        const ko = (row0 + j) * kvDim + g * hd;
        for (let d = 0; d < hd; d++) {
          dq[o + d] += ds * k[ko + d];
          dk[ko + d] += ds * q[o + d];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// SwiGLU: act = silu(gate) ⊙ up, silu(g) = g σ(g)

export function swigluForward(act: FArray, gate: FArray, up: FArray, size: number): void {
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
): void {
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
 * Returns -log p[target].
 */
export function crossEntropyBackwardInPlace(
  logits: FArray,
  o: number,
  len: number,
  target: number,
  scale: number,
): number {
  const lse = logSumExp(logits, o, len);
  const nll = lse - logits[o + target];
  for (let j = 0; j < len; j++) logits[o + j] = scale * Math.exp(logits[o + j] - lse);
  logits[o + target] -= scale;
  return nll;
}
