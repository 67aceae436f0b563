// The llama-family forward pass: embeddings, RMSNorm, RoPE, grouped-query causal attention, SwiGLU, output head.
// One layer loop serves training (activations kept for backward), scoring (log-probs) and KV-cached decoding.

import { InputError } from "../util/errors.js";
import { dequantizeRow } from "./kernels/reference.js";
import { dropoutMask, loraScale, mixSeed } from "./lora.js";
import { f32Matrix, f32Numerics, type FArray, type Numerics } from "./numerics.js";
import type { FastKernels } from "./kernels/fast.js";
import { getKernels } from "./kernels/index.js";
import {
  attentionForward,
  attentionPlan,
  logSumExp,
  rmsnormForward,
  swigluForward,
  type AttentionLayout,
  type AttentionPlan,
  type AttentionShape,
} from "./ops.js";
import { applyRope, RopeTable } from "./rope.js";
import {
  LORA_TARGETS,
  type LayerWeights,
  type LoraPair,
  type LoraTarget,
  type LoraWeights,
  type Matrix,
  type ModelWeights,
} from "./types.js";

/** ModelWeights plus what some checkpoints add: Llama-3 rope frequency factors (rope_freqs.weight). */
/** Kept as a name for the weights the engine runs on (rope factors now live on ModelWeights). */
export type EngineWeights = ModelWeights;

export interface ForwardOptions {
  /** Adapters applied unmerged: y = x Wᵀ + scale · (dropout(x) Aᵀ) Bᵀ. */
  lora?: LoraWeights;
  /** float32 through the kernels by default; f64Numerics for gradient checks. */
  numerics?: Numerics;
  /** When set (training), LoRA dropout is active with masks derived from this seed. */
  dropoutSeed?: number;
}

// ---------------------------------------------------------------------------------------------------------
// Rope tables are per model and grown on demand.

const ropeTables = new WeakMap<ModelWeights, RopeTable>();
export function ropeTableFor(model: EngineWeights, positions: number): RopeTable {
  let table = ropeTables.get(model);
  if (!table) {
    table = new RopeTable(model.spec, model.ropeFreqFactors);
    ropeTables.set(model, table);
  }
  table.ensure(positions);
  return table;
}

// ---------------------------------------------------------------------------------------------------------
// Activations kept for the backward pass.

export interface LoraActs {
  /** Dropout mask over the adapter's input [n, in]; absent without dropout. */
  mask?: Uint8Array;
  /** The adapter's input after dropout [n, in] (the projection input itself without dropout). */
  xd: FArray;
  /** scale · xd Aᵀ [n, rank]. */
  hs: FArray;
}

export interface LayerActs {
  xIn: FArray; // [n, hidden] residual stream entering the layer
  xn1: FArray; // [n, hidden] attn_norm(xIn)
  rstd1: FArray; // [n]
  q: FArray; // [n, heads*headDim] after rope
  k: FArray; // [n, kvHeads*headDim] after rope
  v: FArray; // [n, kvHeads*headDim]
  probs: FArray; // saved softmax, laid out as AttentionPlan says (empty when not kept)
  att: FArray; // [n, heads*headDim] attention output before wo
  xMid: FArray; // [n, hidden] xIn + attention block
  xn2: FArray; // [n, hidden] ffn_norm(xMid)
  rstd2: FArray; // [n]
  gate: FArray; // [n, ffn]
  up: FArray; // [n, ffn]
  act: FArray; // [n, ffn] silu(gate) * up
  lora: Partial<Record<LoraTarget, LoraActs>>;
}

/** Rows of a batch: token, position, and where the row's sequence starts in the key/value store. */
export interface RowBatch extends AttentionLayout {
  tokens: Int32Array; // [n]
}

export interface Activations {
  batch: RowBatch;
  /** Start row of each sequence (training batches are packed back to back, no padding). */
  seqOffsets: number[];
  /** Attention segments of the batch and the layout of each layer's saved softmax. */
  plan: AttentionPlan;
  layers: LayerActs[]; // empty when activations are not kept
  xOut: FArray; // [n, hidden] residual stream after the last layer
  xnF: FArray; // [n, hidden] output_norm(xOut): the head's input
  rstdF: FArray; // [n]
  numerics: Numerics;
}

/** Pack sequences back to back: each restarts at position 0 and attends only to itself. */
export function packSequences(seqs: readonly (readonly number[])[]): {
  batch: RowBatch;
  seqOffsets: number[];
} {
  const n = seqs.reduce((s, q) => s + q.length, 0);
  const tokens = new Int32Array(n);
  const positions = new Int32Array(n);
  const kvRow0 = new Int32Array(n);
  const seqOffsets: number[] = [];
  let r = 0;
  for (const seq of seqs) {
    seqOffsets.push(r);
    const start = r;
    for (let t = 0; t < seq.length; t++, r++) {
      tokens[r] = seq[t];
      positions[r] = t;
      kvRow0[r] = start;
    }
  }
  return { batch: { n, tokens, positions, kvRow0 }, seqOffsets };
}

// ---------------------------------------------------------------------------------------------------------
// A projection with optional bias and optional LoRA adapter.

export interface AdapterUse {
  pair: LoraPair;
  scale: number;
  dropout: number;
  /** Mask seed when dropout is active, else undefined. */
  maskSeed?: number;
}

/** The adapter of (layer, target) as used in this pass, or undefined. */
export function adapterFor(
  lora: LoraWeights | undefined,
  layer: number,
  target: LoraTarget,
  dropoutSeed: number | undefined,
): AdapterUse | undefined {
  const pair = lora?.layers[layer]?.[target];
  if (!lora || !pair) return undefined;
  const dropout = lora.config.dropout;
  const active = dropoutSeed !== undefined && dropout > 0;
  return {
    pair,
    scale: loraScale(lora.config),
    dropout: active ? dropout : 0,
    maskSeed: active ? mixSeed(dropoutSeed, layer, LORA_TARGETS.indexOf(target)) : undefined,
  };
}

/** out[n, w.rows] = x[n, w.cols] Wᵀ + b + scale (dropout(x) Aᵀ) Bᵀ; `keep` receives the adapter activations. */
export function linearForward(
  nm: Numerics,
  out: FArray,
  x: FArray,
  n: number,
  w: Matrix,
  bias: Float32Array | undefined,
  adapter: AdapterUse | undefined,
  keep?: (acts: LoraActs) => void,
): void {
  nm.matmul(out, x, w, n);
  if (bias) {
    for (let i = 0; i < n; i++) for (let j = 0; j < w.rows; j++) out[i * w.rows + j] += bias[j];
  }
  if (!adapter) return;
  const { pair, scale } = adapter;
  const rank = pair.a.length / pair.in;
  let xd = x;
  let mask: Uint8Array | undefined;
  if (adapter.maskSeed !== undefined) {
    // Inverted dropout on the adapter's input only, as PEFT does: lora_B(lora_A(dropout(x))).
    mask = dropoutMask(n * pair.in, adapter.dropout, adapter.maskSeed);
    const keepScale = 1 / (1 - adapter.dropout);
    xd = nm.alloc(n * pair.in);
    for (let i = 0; i < xd.length; i++) xd[i] = mask[i] ? x[i] * keepScale : 0;
  }
  const hs = nm.alloc(n * rank); // [n, rank]
  nm.matmul(hs, xd, f32Matrix(pair.a, rank, pair.in), n);
  for (let i = 0; i < hs.length; i++) hs[i] *= scale;
  const heap = nm.heap;
  if (heap && out instanceof Float32Array && heap.inHeap(out) && heap.inHeap(hs)) {
    // out += hs Bᵀ straight into the output (B copied into the heap when it lives elsewhere: out x rank floats)
    const b = inHeapOrCopy(nm, heap, pair.b);
    heap.gemm(
      n,
      pair.out,
      rank,
      heap.addr(hs),
      rank * 4,
      4,
      heap.addr(b),
      rank * 4,
      true,
      heap.addr(out),
      pair.out * 4,
      true,
    );
  } else {
    const delta = nm.alloc(n * pair.out); // [n, out]
    nm.matmul(delta, hs, f32Matrix(pair.b, pair.out, rank), n);
    for (let i = 0; i < delta.length; i++) out[i] += delta[i];
  }
  keep?.({ mask, xd, hs });
}

/** `a` itself when it lives in the heap, else a copy in the numerics' arena. */
export function inHeapOrCopy(nm: Numerics, heap: FastKernels, a: Float32Array): Float32Array {
  if (heap.inHeap(a)) return a;
  const c = nm.alloc(a.length) as Float32Array;
  c.set(a);
  return c;
}

// ---------------------------------------------------------------------------------------------------------
// Frozen weights in the kernel heap.

const placedModels = new WeakMap<ModelWeights, FastKernels>();

/**
 * Moves every matrix of `model` into the kernel heap (once per model and heap; the model object is updated in
 * place, tied embeddings stay one matrix), so the kernels never copy a weight, and prepacks the products' weights
 * (see FastKernels.prepack: they are then frozen; `unfreezeWeights` before changing them). Called at load when the
 * fast kernels are in use, and by every float32 pass that runs on a heap.
 */
export function placeWeights(model: ModelWeights, heap: FastKernels): void {
  if (placedModels.get(model) === heap) return;
  const tied = model.output === model.tokenEmbd;
  model.tokenEmbd = heap.place(model.tokenEmbd);
  model.output = tied ? model.tokenEmbd : heap.place(model.output);
  for (const l of model.layers) {
    l.wq = heap.place(l.wq);
    l.wk = heap.place(l.wk);
    l.wv = heap.place(l.wv);
    l.wo = heap.place(l.wo);
    l.wGate = heap.place(l.wGate);
    l.wUp = heap.place(l.wUp);
    l.wDown = heap.place(l.wDown);
  }
  // Pack the products' weights once into the kernels' panel layout (layers first, the head last, while the
  // budget lasts): decoding then reads each weight once per token instead of repacking it.
  for (const l of model.layers)
    for (const w of [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown]) heap.prepack(w);
  heap.prepack(model.output);
  placedModels.set(model, heap);
}

/** Drops the prepacked copies of `model`'s weights (full fine-tuning changes them in place). */
export function unfreezeWeights(model: ModelWeights, heap: FastKernels): void {
  heap.unpack(model.tokenEmbd);
  heap.unpack(model.output);
  for (const l of model.layers)
    for (const w of [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown]) heap.unpack(w);
}

// ---------------------------------------------------------------------------------------------------------
// The layer loop.

function checkTokens(tokens: Int32Array, vocab: number): void {
  for (const t of tokens) {
    if (!(t >= 0 && t < vocab)) throw new InputError(`token id ${t} is outside the vocabulary [0, ${vocab})`);
  }
}

function allocLayerActs(
  nm: Numerics,
  model: ModelWeights,
  n: number,
  probCount: number,
  xIn: FArray,
): LayerActs {
  const s = model.spec;
  const h = s.hiddenSize;
  const qDim = s.numHeads * s.headDim;
  const kvDim = s.numKvHeads * s.headDim;
  const f = s.intermediateSize;
  return {
    // every buffer is written completely by layerForward before it is read (probs: every entry attention reads)
    xIn,
    xn1: nm.allocUninit(n * h),
    rstd1: nm.allocUninit(n),
    q: nm.allocUninit(n * qDim),
    k: nm.allocUninit(n * kvDim),
    v: nm.allocUninit(n * kvDim),
    probs: nm.allocUninit(probCount),
    att: nm.allocUninit(n * qDim),
    xMid: nm.allocUninit(n * h),
    xn2: nm.allocUninit(n * h),
    rstd2: nm.allocUninit(n),
    gate: nm.allocUninit(n * f),
    up: nm.allocUninit(n * f),
    act: nm.allocUninit(n * f),
    lora: {},
  };
}

/** Where keys and values go: the batch's own rows (training, scoring) or a KV cache (decoding). */
interface KVStore {
  k: FArray;
  v: FArray;
}

/**
 * One transformer block: xOut = xMid + FFN(ffn_norm(xMid)), xMid = xIn + Attn(attn_norm(xIn)).
 * a.xIn holds the input; `store` (when given) receives this batch's k/v rows at kvRow0 + position.
 */
function layerForward(
  nm: Numerics,
  model: EngineWeights,
  l: number,
  a: LayerActs,
  xOut: FArray,
  batch: RowBatch,
  opts: ForwardOptions,
  plan: AttentionPlan,
  probs: FArray | undefined,
  store: KVStore | undefined,
  scratch: FArray,
): void {
  const s = model.spec;
  const n = batch.n;
  const H = s.hiddenSize;
  const F = s.intermediateSize;
  const shape: AttentionShape = { heads: s.numHeads, kvHeads: s.numKvHeads, headDim: s.headDim };
  const kvDim = s.numKvHeads * s.headDim;
  const w: LayerWeights = model.layers[l];
  const ad = (t: LoraTarget) => adapterFor(opts.lora, l, t, opts.dropoutSeed);
  const keep = (t: LoraTarget) => (acts: LoraActs) => (a.lora[t] = acts);
  const table = ropeTableFor(model, 0);

  // attention block
  rmsnormForward(a.xn1, a.rstd1, a.xIn, w.attnNorm, n, H, s.rmsNormEps); // [n, H]
  linearForward(nm, a.q, a.xn1, n, w.wq, w.bq, ad("q_proj"), keep("q_proj")); // [n, heads*hd]
  linearForward(nm, a.k, a.xn1, n, w.wk, w.bk, ad("k_proj"), keep("k_proj")); // [n, kvHeads*hd]
  linearForward(nm, a.v, a.xn1, n, w.wv, w.bv, ad("v_proj"), keep("v_proj")); // [n, kvHeads*hd]
  applyRope(a.q, n, s.numHeads, s.headDim, batch.positions, table);
  applyRope(a.k, n, s.numKvHeads, s.headDim, batch.positions, table);
  let kStore = a.k;
  let vStore = a.v;
  if (store) {
    for (let i = 0; i < n; i++) {
      const row = batch.kvRow0[i] + batch.positions[i];
      store.k.set(a.k.subarray(i * kvDim, (i + 1) * kvDim), row * kvDim);
      store.v.set(a.v.subarray(i * kvDim, (i + 1) * kvDim), row * kvDim);
    }
    kStore = store.k;
    vStore = store.v;
  }
  attentionForward(
    a.att,
    a.q,
    kStore,
    vStore,
    plan,
    shape,
    scratch,
    probs,
    nm.heap,
    nm.kernels?.attentionGemm,
  ); // [n, heads*hd]
  linearForward(nm, a.xMid, a.att, n, w.wo, undefined, ad("o_proj"), keep("o_proj")); // [n, H]
  for (let i = 0; i < n * H; i++) a.xMid[i] += a.xIn[i];

  // feed-forward block
  rmsnormForward(a.xn2, a.rstd2, a.xMid, w.ffnNorm, n, H, s.rmsNormEps); // [n, H]
  linearForward(nm, a.gate, a.xn2, n, w.wGate, undefined, ad("gate_proj"), keep("gate_proj")); // [n, F]
  linearForward(nm, a.up, a.xn2, n, w.wUp, undefined, ad("up_proj"), keep("up_proj")); // [n, F]
  swigluForward(a.act, a.gate, a.up, n * F, nm.heap); // [n, F]
  linearForward(nm, xOut, a.act, n, w.wDown, undefined, ad("down_proj"), keep("down_proj")); // [n, H]
  for (let i = 0; i < n * H; i++) xOut[i] += a.xMid[i];
}

/**
 * Run all layers over a row batch. keepActivations = true keeps every layer's activations (training);
 * otherwise one set of buffers is reused. `stores` (per layer) redirects keys/values into a KV cache.
 */
export function forwardRows(
  model: EngineWeights,
  batch: RowBatch,
  seqOffsets: number[],
  opts: ForwardOptions & { keepActivations?: boolean; stores?: KVStore[] },
): Activations {
  const nm = opts.numerics ?? f32Numerics();
  const s = model.spec;
  const n = batch.n;
  const H = s.hiddenSize;
  checkTokens(batch.tokens, s.vocabSize);
  if (nm.heap) placeWeights(model, nm.heap);
  let maxPos = 0;
  for (let i = 0; i < n; i++) maxPos = Math.max(maxPos, batch.positions[i] + 1);
  ropeTableFor(model, maxPos);
  const keepActs = opts.keepActivations ?? false;
  const plan = attentionPlan(batch, s.numHeads);
  const scratch = nm.alloc(plan.maxBlock);

  // token embedding: x[i] = tokenEmbd[token_i]
  const x0 = nm.alloc(n * H);
  for (let i = 0; i < n; i++)
    dequantizeRow(model.tokenEmbd, batch.tokens[i], x0.subarray(i * H, (i + 1) * H));

  const layers: LayerActs[] = [];
  const shared = keepActs ? undefined : allocLayerActs(nm, model, n, 0, x0);
  let x = x0;
  for (let l = 0; l < s.numLayers; l++) {
    const a = shared ?? allocLayerActs(nm, model, n, plan.probTotal, x);
    a.lora = {};
    a.xIn = x;
    const xOut = nm.allocUninit(n * H); // written by layerForward's down projection
    const probs = keepActs ? a.probs : undefined;
    layerForward(nm, model, l, a, xOut, batch, opts, plan, probs, opts.stores?.[l], scratch);
    if (keepActs) layers.push(a);
    x = xOut;
  }
  const xnF = nm.alloc(n * H);
  const rstdF = nm.alloc(n);
  rmsnormForward(xnF, rstdF, x, model.outputNorm, n, H, s.rmsNormEps);
  return { batch, seqOffsets, plan, layers, xOut: x, xnF, rstdF, numerics: nm };
}

/** Batched full-sequence forward over packed sequences, keeping activations for backward. */
export function forward(
  model: EngineWeights,
  seqs: readonly (readonly number[])[],
  opts: ForwardOptions & { keepActivations?: boolean } = {},
): Activations {
  const { batch, seqOffsets } = packSequences(seqs);
  return forwardRows(model, batch, seqOffsets, { keepActivations: true, ...opts });
}

// ---------------------------------------------------------------------------------------------------------
// Output head.

/** Rows the head processes per matmul: bounds the [rows, vocab] logits buffer (more on the fast kernels, whose
 * cost per product includes a pass over the whole vocabulary matrix). */
export const HEAD_CHUNK_ROWS = 32;
export const HEAD_CHUNK_ROWS_FAST = 256;
export function headChunkRows(nm: Numerics): number {
  return nm.heap ? HEAD_CHUNK_ROWS_FAST : HEAD_CHUNK_ROWS;
}

/**
 * Logits of the selected rows of xn [*, hidden], chunk by chunk: visit(logits [c, vocab], rows) for each
 * chunk of at most HEAD_CHUNK_ROWS rows. The logits buffer is reused between chunks.
 */
export function headChunks(
  model: ModelWeights,
  nm: Numerics,
  xn: FArray,
  rows: ArrayLike<number>,
  visit: (logits: FArray, chunkRows: ArrayLike<number>, xChunk: FArray) => void,
): void {
  const H = model.spec.hiddenSize;
  const V = model.output.rows;
  const cap = Math.min(headChunkRows(nm), rows.length);
  const xc = nm.alloc(cap * H);
  const logits = nm.alloc(cap * V);
  for (let start = 0; start < rows.length; start += cap) {
    const c = Math.min(cap, rows.length - start);
    const chunkRows = Array.from({ length: c }, (_, i) => rows[start + i]);
    for (let i = 0; i < c; i++) xc.set(xn.subarray(chunkRows[i] * H, (chunkRows[i] + 1) * H), i * H);
    const lc = logits.subarray(0, c * V);
    const xcc = xc.subarray(0, c * H);
    nm.matmul(lc, xcc, model.output, c);
    visit(lc, chunkRows, xcc);
  }
}

/** Logits [rows.length, vocab] of the selected rows. */
export function logitsOf(model: ModelWeights, acts: Activations, rows: ArrayLike<number>): Float32Array {
  const V = model.output.rows;
  const out = new Float32Array(rows.length * V);
  let o = 0;
  headChunks(model, acts.numerics, acts.xnF, rows, (logits) => {
    out.set(logits, o);
    o += logits.length;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Scoring: per-token log-probabilities.

export interface ScoreRequest {
  ids: readonly number[];
  /** Score tokens ids[start .. end), each given all tokens before it; start ≥ 1. */
  start: number;
  end: number;
}

/**
 * log p(ids[t] | ids[<t]) for t in [start, end) of each request, computed in one batched forward
 * (sequences are cut at `end`: later tokens cannot influence earlier ones).
 */
export function scoreTokens(
  model: EngineWeights,
  requests: readonly ScoreRequest[],
  opts: ForwardOptions = {},
): Float64Array[] {
  for (const r of requests) {
    if (!(Number.isInteger(r.start) && r.start >= 1 && r.end <= r.ids.length && r.start <= r.end)) {
      throw new InputError(
        `cannot score tokens [${r.start}, ${r.end}) of a ${r.ids.length}-token sequence: need 1 <= start <= end <= length`,
      );
    }
  }
  const seqs = requests.map((r) => r.ids.slice(0, r.end));
  const { batch, seqOffsets } = packSequences(seqs);
  const nm = opts.numerics ?? f32Numerics();
  const mark = nm.mark();
  try {
    return scoreRows(model, requests, batch, seqOffsets, { ...opts, numerics: nm });
  } finally {
    nm.release(mark);
  }
}

function scoreRows(
  model: EngineWeights,
  requests: readonly ScoreRequest[],
  batch: RowBatch,
  seqOffsets: number[],
  opts: ForwardOptions,
): Float64Array[] {
  const acts = forwardRows(model, batch, seqOffsets, {
    ...opts,
    dropoutSeed: undefined,
    keepActivations: false,
  });
  const rows: number[] = [];
  const targets: number[] = [];
  requests.forEach((r, k) => {
    for (let t = r.start; t < r.end; t++) {
      rows.push(seqOffsets[k] + t - 1);
      targets.push(r.ids[t]);
    }
  });
  const flat = new Float64Array(rows.length);
  const V = model.output.rows;
  let o = 0;
  const heap = acts.numerics.heap;
  const lse = heap
    ? new Float64Array(
        heap.buf(),
        heap.allocBytes(headChunkRows(acts.numerics) * 8),
        headChunkRows(acts.numerics),
      )
    : undefined;
  headChunks(model, acts.numerics, acts.xnF, rows, (logits, chunkRows) => {
    const c = chunkRows.length;
    if (heap && lse && logits instanceof Float32Array && heap.canSplit(c * V, logits)) {
      heap.logSumExpRows(lse, logits, V, c); // logSumExp of every row, split across threads
      for (let i = 0; i < c; i++, o++) flat[o] = logits[i * V + targets[o]] - lse[i];
      return;
    }
    for (let i = 0; i < c; i++, o++) flat[o] = logits[i * V + targets[o]] - logSumExp(logits, i * V, V);
  });
  if (heap && lse) heap.freeBytes(lse.byteOffset);
  const out: Float64Array[] = [];
  let p = 0;
  for (const r of requests) {
    out.push(flat.slice(p, p + r.end - r.start));
    p += r.end - r.start;
  }
  return out;
}

/** Per-token log-probs of ids[start .. end) given the prefix. */
export function logprobs(
  model: EngineWeights,
  ids: readonly number[],
  start: number,
  end: number = ids.length,
  opts: ForwardOptions = {},
): Float64Array {
  return scoreTokens(model, [{ ids, start, end }], opts)[0];
}

/** exp(-mean log p): the perplexity of a span given its log-probs. */
export function perplexity(logps: ArrayLike<number>): number {
  if (logps.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < logps.length; i++) sum += logps[i];
  return Math.exp(-sum / logps.length);
}

// ---------------------------------------------------------------------------------------------------------
// KV-cached incremental decoding.

// KV caches in the kernel heap give their blocks back when the cache is collected (or at dispose()).
const cacheFinalizer = new FinalizationRegistry<{ heap: FastKernels; blocks: number[] }>(
  ({ heap, blocks }) => {
    for (const at of blocks) heap.freeBytes(at);
  },
);

/**
 * Keys and values of up to maxSeqs sequences of up to maxLen positions, per layer (float32). With the fast kernels
 * the cache lives in their heap, so attention reads it in place.
 */
export class KVCache {
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  /** Tokens already cached per sequence slot. */
  readonly lengths: Int32Array;
  private readonly kvDim: number;

  constructor(
    model: ModelWeights,
    readonly maxSeqs: number,
    readonly maxLen: number,
    kernels = getKernels(),
  ) {
    const s = model.spec;
    this.kvDim = s.numKvHeads * s.headDim;
    const size = maxSeqs * maxLen * this.kvDim;
    const heap = kernels.heap;
    const alloc = heap ? () => heap.allocF32(size) : () => new Float32Array(size);
    this.k = Array.from({ length: s.numLayers }, alloc);
    this.v = Array.from({ length: s.numLayers }, alloc);
    this.lengths = new Int32Array(maxSeqs);
    if (heap) {
      this.heap = heap;
      cacheFinalizer.register(this, { heap, blocks: [...this.k, ...this.v].map((a) => a.byteOffset) }, this);
    }
  }

  private heap: FastKernels | undefined;

  /** Gives heap memory back now (the cache must not be used afterwards); otherwise it goes when collected. */
  dispose(): void {
    if (!this.heap) return;
    cacheFinalizer.unregister(this);
    for (const a of [...this.k, ...this.v]) this.heap.free(a);
    this.heap = undefined;
  }

  /** Forget a sequence slot's tokens. */
  clear(seq: number): void {
    this.lengths[seq] = 0;
  }

  /** Make slot `dst` a copy of slot `src` (share a prompt between samples without recomputing it). */
  copy(src: number, dst: number): void {
    const len = this.lengths[src];
    const d = this.kvDim;
    for (let l = 0; l < this.k.length; l++) {
      this.k[l].copyWithin(dst * this.maxLen * d, src * this.maxLen * d, (src * this.maxLen + len) * d);
      this.v[l].copyWithin(dst * this.maxLen * d, src * this.maxLen * d, (src * this.maxLen + len) * d);
    }
    this.lengths[dst] = len;
  }
}

export interface DecodeEntry {
  /** Sequence slot in the cache. */
  seq: number;
  /** New tokens appended to that sequence (a whole prompt, or one sampled token). */
  tokens: readonly number[];
}

/**
 * Append tokens to several cached sequences in one batch and return logits: [entries, vocab] for the last new
 * token of each entry, or [all new tokens, vocab] with allLogits.
 */
export function decode(
  model: EngineWeights,
  cache: KVCache,
  entries: readonly DecodeEntry[],
  opts: Omit<ForwardOptions, "numerics" | "dropoutSeed"> & { allLogits?: boolean; numerics?: Numerics } = {},
): Float32Array {
  const n = entries.reduce((s, e) => s + e.tokens.length, 0);
  const tokens = new Int32Array(n);
  const positions = new Int32Array(n);
  const kvRow0 = new Int32Array(n);
  const lastRows: number[] = [];
  const seen = new Set<number>();
  let r = 0;
  for (const e of entries) {
    if (!(e.seq >= 0 && e.seq < cache.maxSeqs) || seen.has(e.seq)) {
      throw new InputError(`decode: sequence slot ${e.seq} is out of range or appears twice in one batch`);
    }
    seen.add(e.seq);
    const len = cache.lengths[e.seq];
    if (len + e.tokens.length > cache.maxLen) {
      throw new InputError(
        `decode: sequence ${e.seq} would hold ${len + e.tokens.length} tokens; the cache holds ${cache.maxLen}`,
      );
    }
    for (let t = 0; t < e.tokens.length; t++, r++) {
      tokens[r] = e.tokens[t];
      positions[r] = len + t;
      kvRow0[r] = e.seq * cache.maxLen;
    }
    if (e.tokens.length > 0) lastRows.push(r - 1);
  }
  const stores = cache.k.map((k, l) => ({ k, v: cache.v[l] }));
  const nm = opts.numerics ?? f32Numerics();
  if (nm.precision !== "f32") throw new InputError("decode runs in float32 (the KV cache is float32)");
  const mark = nm.mark();
  try {
    const acts = forwardRows(model, { n, tokens, positions, kvRow0 }, [], {
      lora: opts.lora,
      numerics: nm,
      stores,
    });
    for (const e of entries) cache.lengths[e.seq] += e.tokens.length;
    const rows = opts.allLogits ? Array.from({ length: n }, (_, i) => i) : lastRows;
    return logitsOf(model, acts, rows);
  } finally {
    nm.release(mark);
  }
}
