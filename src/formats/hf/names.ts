// Maps Hugging Face transformers tensor names to buckle's canonical (llama.cpp GGUF) names and back,
// and reorders q/k projection rows between the two rotary-embedding layouts.

import { InputError } from "../../util/errors.js";
import type { ModelArch } from "../model-spec.js";

const GLOBAL: readonly [hf: string, canonical: string][] = [
  ["model.embed_tokens.weight", "token_embd.weight"],
  ["model.norm.weight", "output_norm.weight"],
  ["lm_head.weight", "output.weight"],
];

const PER_LAYER: readonly [hf: string, canonical: string][] = [
  ["self_attn.q_proj.weight", "attn_q.weight"],
  ["self_attn.q_proj.bias", "attn_q.bias"],
  ["self_attn.k_proj.weight", "attn_k.weight"],
  ["self_attn.k_proj.bias", "attn_k.bias"],
  ["self_attn.v_proj.weight", "attn_v.weight"],
  ["self_attn.v_proj.bias", "attn_v.bias"],
  ["self_attn.o_proj.weight", "attn_output.weight"],
  ["mlp.gate_proj.weight", "ffn_gate.weight"],
  ["mlp.up_proj.weight", "ffn_up.weight"],
  ["mlp.down_proj.weight", "ffn_down.weight"],
  ["input_layernorm.weight", "attn_norm.weight"],
  ["post_attention_layernorm.weight", "ffn_norm.weight"],
];

const HF_GLOBAL = new Map(GLOBAL);
const CANON_GLOBAL = new Map(GLOBAL.map(([h, c]) => [c, h]));
const HF_LAYER = new Map(PER_LAYER);
const CANON_LAYER = new Map(PER_LAYER.map(([h, c]) => [c, h]));

// Layer numbers without leading zeros, so each tensor has exactly one spelling in either naming.
const HF_LAYER_RE = /^model\.layers\.(0|[1-9][0-9]*)\.(.+)$/;
const CANON_LAYER_RE = /^blk\.(0|[1-9][0-9]*)\.(.+)$/;

/** The canonical name for a Hugging Face tensor name, or undefined when buckle has no use for it. */
export function hfToCanonical(hfName: string): string | undefined {
  const g = HF_GLOBAL.get(hfName);
  if (g) return g;
  const m = HF_LAYER_RE.exec(hfName);
  const suffix = m && HF_LAYER.get(m[2]);
  return suffix ? `blk.${m[1]}.${suffix}` : undefined;
}

/** The Hugging Face name for a canonical tensor name, or undefined when it has none. */
export function canonicalToHF(canonicalName: string): string | undefined {
  const g = CANON_GLOBAL.get(canonicalName);
  if (g) return g;
  const m = CANON_LAYER_RE.exec(canonicalName);
  const suffix = m && CANON_LAYER.get(m[2]);
  return suffix ? `model.layers.${m[1]}.${suffix}` : undefined;
}

/**
 * Tensors some checkpoints carry that hold no learned weights: old llama exports saved the rotary
 * inverse frequencies, which are recomputed from rope_theta anyway.
 */
export function isIgnorableHFTensor(hfName: string): boolean {
  return /^model\.layers\.[0-9]+\.self_attn\.rotary_emb\.inv_freq$/.test(hfName);
}

/*
 * Why q and k rows are permuted.
 *
 * Rotary position embedding rotates each query/key head vector in 2-D pairs of components.
 * Hugging Face's llama/mistral code ("rotate_half") pairs component j with component j + headDim/2:
 * the first half of a head holds the "x" of every pair and the second half the "y".
 * llama.cpp's "llama" architecture (used for HF llama and mistral checkpoints alike) instead pairs
 * adjacent components 2j and 2j+1. Both compute the same attention once the rows of q_proj and
 * k_proj are reordered so each pair lands where the other convention expects it; attention scores
 * are dot products within a head, so any consistent reordering of q and k rows inside a head leaves
 * them unchanged, and v/o need no change.
 *
 * Within every head of headDim rows, HF -> GGUF maps
 *     GGUF row 2j     <- HF row j
 *     GGUF row 2j + 1 <- HF row j + headDim/2        (j < headDim/2)
 * e.g. headDim 4: GGUF rows come from HF rows [0, 2, 1, 3].
 * A bias is one value per row, so q/k biases move the same way (cols = 1). k uses the number of
 * key/value heads, which differs from q's under grouped-query attention.
 *
 * llama.cpp runs qwen2 with NeoX-style rotary embedding, which pairs j with j + headDim/2 just as
 * HF does, so qwen2 weights are not permuted.
 */

/** True for architectures whose canonical q/k rows are interleaved (llama.cpp "llama" rope) rather than HF's halves. */
export function needsQKPermute(arch: ModelArch): boolean {
  return arch === "llama" || arch === "mistral";
}

function checkPermuteArgs(data: Float32Array, rows: number, cols: number, nHeads: number): number {
  if (
    !Number.isSafeInteger(rows) ||
    !Number.isSafeInteger(cols) ||
    !Number.isSafeInteger(nHeads) ||
    nHeads <= 0 ||
    rows < 0 ||
    cols < 0
  )
    throw new InputError(
      `permuteQK: rows ${rows}, cols ${cols} and heads ${nHeads} must be non-negative integers (heads positive)`,
    );
  if (data.length !== rows * cols)
    throw new InputError(`permuteQK: ${data.length} values do not make ${rows} rows of ${cols}`);
  const headDim = rows / nHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0)
    throw new InputError(`permuteQK: ${rows} rows do not split into ${nHeads} heads of an even size`);
  return headDim;
}

function permuteRows(
  data: Float32Array,
  rows: number,
  cols: number,
  nHeads: number,
  toInterleaved: boolean,
): Float32Array {
  const headDim = checkPermuteArgs(data, rows, cols, nHeads);
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHeads; h++) {
    const base = h * headDim;
    for (let j = 0; j < half; j++) {
      for (let s = 0; s < 2; s++) {
        const interleaved = base + 2 * j + s;
        const halves = base + s * half + j;
        const [dst, src] = toInterleaved ? [interleaved, halves] : [halves, interleaved];
        out.set(data.subarray(src * cols, src * cols + cols), dst * cols);
      }
    }
  }
  return out;
}

/**
 * HF -> GGUF row order for a q or k projection (row-major [rows, cols]; cols = 1 for a bias).
 * `nHeads` is the attention head count for q and the key/value head count for k. Returns a new array.
 */
export function permuteQK(data: Float32Array, rows: number, cols: number, nHeads: number): Float32Array {
  return permuteRows(data, rows, cols, nHeads, true);
}

/** GGUF -> HF row order: the inverse of permuteQK. */
export function unpermuteQK(data: Float32Array, rows: number, cols: number, nHeads: number): Float32Array {
  return permuteRows(data, rows, cols, nHeads, false);
}
