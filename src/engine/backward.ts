// The backward pass, mirroring forward.ts layer by layer: masked mean cross-entropy, then gradients for the
// LoRA factors of any projection and, optionally, every base weight (full fine-tuning of tiny models).

import { InputError } from "../util/errors.js";
import {
  adapterFor,
  forward,
  headChunkRows,
  headChunks,
  ropeTableFor,
  type Activations,
  type AdapterUse,
  type EngineWeights,
  type ForwardOptions,
  type LayerActs,
  type LoraActs,
} from "./forward.js";
import type { LoraGradPair, LoraGrads } from "./lora.js";
import { f32Matrix, f32Numerics, type FArray, type Numerics } from "./numerics.js";
import {
  attentionBackward,
  crossEntropyBackwardInPlace,
  logSumExp,
  rmsnormBackward,
  swigluBackward,
  type AttentionShape,
} from "./ops.js";
import { applyRope } from "./rope.js";
import type { LoraTarget, Matrix, ModelWeights } from "./types.js";

// ---------------------------------------------------------------------------------------------------------
// Gradient buffers for full fine-tuning, shaped like ModelWeights.

export interface LayerGrads {
  attnNorm: FArray;
  wq: FArray;
  wk: FArray;
  wv: FArray;
  wo: FArray;
  bq?: FArray;
  bk?: FArray;
  bv?: FArray;
  ffnNorm: FArray;
  wGate: FArray;
  wUp: FArray;
  wDown: FArray;
}

export interface BaseGrads {
  tokenEmbd: FArray;
  layers: LayerGrads[];
  outputNorm: FArray;
  /** Absent when embeddings are tied: the head's gradient then adds into tokenEmbd. */
  output?: FArray;
}

export function zeroBaseGrads(model: ModelWeights, alloc: (n: number) => FArray): BaseGrads {
  const size = (m: Matrix) => alloc(m.rows * m.cols);
  return {
    tokenEmbd: size(model.tokenEmbd),
    layers: model.layers.map((l) => ({
      attnNorm: alloc(l.attnNorm.length),
      wq: size(l.wq),
      wk: size(l.wk),
      wv: size(l.wv),
      wo: size(l.wo),
      bq: l.bq && alloc(l.bq.length),
      bk: l.bk && alloc(l.bk.length),
      bv: l.bv && alloc(l.bv.length),
      ffnNorm: alloc(l.ffnNorm.length),
      wGate: size(l.wGate),
      wUp: size(l.wUp),
      wDown: size(l.wDown),
    })),
    outputNorm: alloc(model.outputNorm.length),
    output: model.output === model.tokenEmbd ? undefined : size(model.output),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Backward of a projection (see linearForward): y = x Wᵀ + b + (dropout(x) Aᵀ s) Bᵀ, hs = s · xd Aᵀ.
//   dx += dy W;  dW += dyᵀ x;  db += Σ dy
//   dB += dyᵀ hs;  dh = s · dy B;  dA += dhᵀ xd;  dx += dropout'(dh A)

function linearBackward(
  nm: Numerics,
  dx: FArray,
  dy: FArray,
  x: FArray,
  n: number,
  w: Matrix,
  gW: FArray | undefined,
  gBias: FArray | undefined,
  adapter: AdapterUse | undefined,
  acts: LoraActs | undefined,
  gLora: LoraGradPair | undefined,
): void {
  nm.matmulBackwardInput(dx, dy, w, n);
  if (gW) nm.matmulBackwardWeight(gW, dy, x, n, w.rows, w.cols);
  if (gBias) {
    for (let i = 0; i < n; i++) for (let j = 0; j < w.rows; j++) gBias[j] += dy[i * w.rows + j];
  }
  if (!adapter || !acts) return;
  const { pair, scale } = adapter;
  const rank = pair.a.length / pair.in;
  const dh = nm.alloc(n * rank); // [n, rank]
  nm.matmulBackwardInput(dh, dy, f32Matrix(pair.b, pair.out, rank), n);
  for (let i = 0; i < dh.length; i++) dh[i] *= scale;
  if (gLora) {
    nm.matmulBackwardWeight(gLora.b, dy, acts.hs, n, pair.out, rank);
    nm.matmulBackwardWeight(gLora.a, dh, acts.xd, n, rank, pair.in);
  }
  const A = f32Matrix(pair.a, rank, pair.in);
  if (!acts.mask) {
    nm.matmulBackwardInput(dx, dh, A, n);
    return;
  }
  const dxd = nm.alloc(n * pair.in);
  nm.matmulBackwardInput(dxd, dh, A, n);
  const keepScale = 1 / (1 - adapter.dropout);
  for (let i = 0; i < dxd.length; i++) if (acts.mask[i]) dx[i] += dxd[i] * keepScale;
}

// ---------------------------------------------------------------------------------------------------------
// One block backward (mirror of layerForward). dxOut is ∂L/∂xOut on entry; returns ∂L/∂xIn.

function layerBackward(
  nm: Numerics,
  model: EngineWeights,
  l: number,
  a: LayerActs,
  acts: Activations,
  dxOut: FArray,
  opts: BackwardOptions,
  scratch: FArray,
): FArray {
  const s = model.spec;
  const batch = acts.batch;
  const n = batch.n;
  const H = s.hiddenSize;
  const F = s.intermediateSize;
  const qDim = s.numHeads * s.headDim;
  const kvDim = s.numKvHeads * s.headDim;
  const shape: AttentionShape = { heads: s.numHeads, kvHeads: s.numKvHeads, headDim: s.headDim };
  const w = model.layers[l];
  const g = opts.baseGrads?.layers[l];
  const gl = opts.loraGrads?.layers[l];
  const ad = (t: LoraTarget) => adapterFor(opts.lora, l, t, opts.dropoutSeed);
  const lin = (dx: FArray, dy: FArray, x: FArray, wt: Matrix, t: LoraTarget, gW?: FArray, gB?: FArray) =>
    linearBackward(nm, dx, dy, x, n, wt, gW, gB, ad(t), a.lora[t], gl?.[t]);

  // feed-forward block: xOut = xMid + down(silu(gate(xn2)) * up(xn2))
  const dAct = nm.alloc(n * F); // [n, F]
  lin(dAct, dxOut, a.act, w.wDown, "down_proj", g?.wDown);
  const dGate = nm.allocUninit(n * F); // [n, F], written by swigluBackward
  const dUp = nm.allocUninit(n * F); // [n, F]
  swigluBackward(dGate, dUp, dAct, a.gate, a.up, n * F, nm.heap);
  const dxn2 = nm.alloc(n * H); // [n, H]
  lin(dxn2, dGate, a.xn2, w.wGate, "gate_proj", g?.wGate);
  lin(dxn2, dUp, a.xn2, w.wUp, "up_proj", g?.wUp);
  const dxMid = nm.alloc(n * H); // residual path
  dxMid.set(dxOut);
  rmsnormBackward(dxMid, g?.ffnNorm, dxn2, a.xMid, w.ffnNorm, a.rstd2, n, H);

  // attention block: xMid = xIn + o(attn(rope(q(xn1)), rope(k(xn1)), v(xn1)))
  const dAtt = nm.alloc(n * qDim); // [n, heads*hd]
  lin(dAtt, dxMid, a.att, w.wo, "o_proj", g?.wo);
  const dq = nm.alloc(n * qDim); // [n, heads*hd]
  const dk = nm.alloc(n * kvDim); // [n, kvHeads*hd]
  const dv = nm.alloc(n * kvDim); // [n, kvHeads*hd]
  attentionBackward(
    dq,
    dk,
    dv,
    dAtt,
    a.q,
    a.k,
    a.v,
    acts.plan,
    shape,
    a.probs,
    scratch,
    nm.heap,
    nm.kernels?.attentionGemm,
  );
  const table = ropeTableFor(model, 0);
  applyRope(dq, n, s.numHeads, s.headDim, batch.positions, table, true);
  applyRope(dk, n, s.numKvHeads, s.headDim, batch.positions, table, true);
  const dxn1 = nm.alloc(n * H); // [n, H]
  lin(dxn1, dq, a.xn1, w.wq, "q_proj", g?.wq, g?.bq);
  lin(dxn1, dk, a.xn1, w.wk, "k_proj", g?.wk, g?.bk);
  lin(dxn1, dv, a.xn1, w.wv, "v_proj", g?.wv, g?.bv);
  const dxIn = dxMid; // residual path (dxMid is not needed any more)
  rmsnormBackward(dxIn, g?.attnNorm, dxn1, a.xIn, w.attnNorm, a.rstd1, n, H);
  return dxIn;
}

// ---------------------------------------------------------------------------------------------------------
// Loss and gradients of a batch.

/** A training sequence: mask[t] != 0 makes ids[t] a target, predicted from ids[<t] (mask[0] is ignored). */
export interface TrainSequence {
  ids: readonly number[];
  mask: ArrayLike<number>;
}

/** Token spans [start, end) (assistant answers, from the chat template) as a loss mask over `length` tokens. */
export function maskFromSpans(length: number, spans: readonly { start: number; end: number }[]): Uint8Array {
  const mask = new Uint8Array(length);
  for (const sp of spans) for (let t = Math.max(0, sp.start); t < Math.min(length, sp.end); t++) mask[t] = 1;
  return mask;
}

export interface BackwardOptions extends ForwardOptions {
  /** Accumulates ∂L/∂A, ∂L/∂B of every adapter (same layout as the LoraPair factors). */
  loraGrads?: LoraGrads;
  /** Accumulates the gradient of every base weight (full fine-tuning). */
  baseGrads?: BaseGrads;
  /**
   * Gradients are of gradScale · Σ(-log p) over target tokens. Default 1/count: the batch's mean loss.
   * Gradient accumulation passes 1/(targets in the whole optimizer step) to every micro-batch.
   */
  gradScale?: number;
}

export interface LossResult {
  /** Σ -log p(target) over target tokens (float64). */
  lossSum: number;
  /** Number of target tokens. */
  count: number;
}

/** (row, target) pairs: row t-1 of sequence k predicts ids[t] when mask[t] is set. */
function targetRows(
  seqs: readonly TrainSequence[],
  seqOffsets: number[],
  vocab: number,
): { rows: number[]; targets: number[] } {
  const rows: number[] = [];
  const targets: number[] = [];
  seqs.forEach((seq, k) => {
    if (seq.mask.length !== seq.ids.length) {
      throw new InputError(`sequence ${k}: mask has ${seq.mask.length} entries for ${seq.ids.length} tokens`);
    }
    for (let t = 1; t < seq.ids.length; t++) {
      if (!seq.mask[t]) continue;
      if (!(seq.ids[t] >= 0 && seq.ids[t] < vocab))
        throw new InputError(`sequence ${k}: token ${seq.ids[t]} out of range`);
      rows.push(seqOffsets[k] + t - 1);
      targets.push(seq.ids[t]);
    }
  });
  return { rows, targets };
}

/** Mean-able cross-entropy of the targets without gradients (held-out evaluation). */
export function lossOf(
  model: EngineWeights,
  seqs: readonly TrainSequence[],
  opts: ForwardOptions = {},
): LossResult {
  const nm = opts.numerics ?? f32Numerics();
  const mark = nm.mark();
  try {
    return lossOfIn(model, seqs, { ...opts, numerics: nm });
  } finally {
    nm.release(mark);
  }
}

function lossOfIn(model: EngineWeights, seqs: readonly TrainSequence[], opts: ForwardOptions): LossResult {
  const acts = forward(
    model,
    seqs.map((s) => s.ids),
    { ...opts, dropoutSeed: undefined, keepActivations: false },
  );
  const { rows, targets } = targetRows(seqs, acts.seqOffsets, model.spec.vocabSize);
  const V = model.output.rows;
  let lossSum = 0;
  let o = 0;
  headChunks(model, acts.numerics, acts.xnF, rows, (logits, chunkRows) => {
    for (let i = 0; i < chunkRows.length; i++, o++)
      lossSum += logSumExp(logits, i * V, V) - logits[i * V + targets[o]];
  });
  return { lossSum, count: rows.length };
}

/**
 * Forward, masked cross-entropy, backward. Gradients accumulate into opts.loraGrads / opts.baseGrads
 * (zero them before a new optimizer step). Returns the summed loss and the number of target tokens.
 */
export function lossAndGrad(
  model: EngineWeights,
  seqs: readonly TrainSequence[],
  opts: BackwardOptions = {},
): LossResult {
  const nm = opts.numerics ?? f32Numerics();
  const mark = nm.mark();
  try {
    return lossAndGradIn(model, seqs, { ...opts, numerics: nm });
  } finally {
    nm.release(mark);
  }
}

function lossAndGradIn(
  model: EngineWeights,
  seqs: readonly TrainSequence[],
  opts: BackwardOptions,
): LossResult {
  const acts = forward(
    model,
    seqs.map((s) => s.ids),
    { lora: opts.lora, numerics: opts.numerics, dropoutSeed: opts.dropoutSeed, keepActivations: true },
  );
  const nm = acts.numerics;
  const s = model.spec;
  const n = acts.batch.n;
  const H = s.hiddenSize;
  const V = model.output.rows;
  const { rows, targets } = targetRows(seqs, acts.seqOffsets, s.vocabSize);
  const count = rows.length;
  if (count === 0) return { lossSum: 0, count: 0 };
  const scale = opts.gradScale ?? 1 / count;
  const bg = opts.baseGrads;
  const gOutput = bg ? (bg.output ?? bg.tokenEmbd) : undefined;

  // output head, fused with its backward chunk by chunk: the [rows, vocab] logits are never all in memory
  const dxnF = nm.alloc(n * H); // [n, H]
  const dxc = nm.alloc(Math.min(count, headChunkRows(nm)) * H);
  let lossSum = 0;
  let o = 0;
  const heap = nm.heap;
  const cap = Math.min(count, headChunkRows(nm));
  const ce = heap
    ? { loss: new Float64Array(heap.buf(), heap.allocBytes(cap * 8), cap), tg: heap.allocU8(cap * 4) }
    : undefined;
  headChunks(model, nm, acts.xnF, rows, (logits, chunkRows, xc) => {
    const c = chunkRows.length;
    if (heap && ce && logits instanceof Float32Array && heap.canSplit(c * V, logits)) {
      // crossEntropyBackwardInPlace on every row, split across threads; losses summed in row order
      const tg = new Int32Array(ce.tg.buffer, ce.tg.byteOffset, c);
      for (let i = 0; i < c; i++) tg[i] = targets[o + i];
      heap.crossEntropyRows(ce.loss, logits, V, c, tg, scale);
      for (let i = 0; i < c; i++, o++) lossSum += ce.loss[i];
    } else
      for (let i = 0; i < c; i++, o++)
        lossSum += crossEntropyBackwardInPlace(logits, i * V, V, targets[o], scale);
    const d = dxc.subarray(0, c * H);
    d.fill(0);
    nm.matmulBackwardInput(d, logits, model.output, c); // [c, H]
    for (let i = 0; i < c; i++) {
      const r = chunkRows[i];
      for (let j = 0; j < H; j++) dxnF[r * H + j] += d[i * H + j];
    }
    if (gOutput) nm.matmulBackwardWeight(gOutput, logits, xc, c, V, H);
  });
  if (heap && ce) {
    heap.freeBytes(ce.loss.byteOffset);
    heap.free(ce.tg);
  }

  // final norm
  let dx = nm.alloc(n * H); // [n, H] ∂L/∂(residual stream)
  rmsnormBackward(dx, bg?.outputNorm, dxnF, acts.xOut, model.outputNorm, acts.rstdF, n, H);

  // layers, last to first
  const scratch = nm.alloc(acts.plan.maxBlock);
  for (let l = s.numLayers - 1; l >= 0; l--)
    dx = layerBackward(nm, model, l, acts.layers[l], acts, dx, opts, scratch);

  // token embedding: a scatter-add of each row's gradient
  if (bg) {
    for (let i = 0; i < n; i++) {
      const t = acts.batch.tokens[i];
      for (let j = 0; j < H; j++) bg.tokenEmbd[t * H + j] += dx[i * H + j];
    }
  }
  return { lossSum, count };
}
