// Shared engine data structures: weight matrices (possibly quantized, frozen), model weights, LoRA adapters.
// The forward/backward code, the kernels, and the adapter exporters all agree on these layouts.

import type { ModelSpec } from "../formats/model-spec.js";

/** Storage types a weight matrix may keep in memory; frozen base weights are dequantized inside the matmul. */
export type MatrixType = "f32" | "f16" | "bf16" | "q8_0";

/**
 * A weight matrix laid out like torch.nn.Linear.weight: `rows` outputs x `cols` inputs, row-major.
 * data: f32 -> Float32Array(rows*cols); f16/bf16 -> Uint16Array(rows*cols) of raw bits;
 * q8_0 -> Uint8Array of ggml Q8_0 blocks (34 bytes per 32 values: f16 scale then 32 int8), row by row.
 */
export interface Matrix {
  type: MatrixType;
  rows: number;
  cols: number;
  data: Float32Array | Uint16Array | Uint8Array;
}

export interface LayerWeights {
  attnNorm: Float32Array; // [hidden]
  wq: Matrix; // [heads*headDim, hidden]
  wk: Matrix; // [kvHeads*headDim, hidden]
  wv: Matrix; // [kvHeads*headDim, hidden]
  wo: Matrix; // [hidden, heads*headDim]
  bq?: Float32Array; // [heads*headDim] (Qwen2)
  bk?: Float32Array; // [kvHeads*headDim]
  bv?: Float32Array; // [kvHeads*headDim]
  ffnNorm: Float32Array; // [hidden]
  wGate: Matrix; // [ffn, hidden]
  wUp: Matrix; // [ffn, hidden]
  wDown: Matrix; // [hidden, ffn]
}

export interface ModelWeights {
  spec: ModelSpec;
  tokenEmbd: Matrix; // [vocab, hidden]
  layers: LayerWeights[];
  outputNorm: Float32Array; // [hidden]
  /** [vocab, hidden]; the same object as tokenEmbd when embeddings are tied. */
  output: Matrix;
  /** [headDim / 2] Llama-3 style per-frequency divisors (GGUF rope_freqs.weight), when the model has them. */
  ropeFreqFactors?: Float32Array;
}

/** Projections LoRA can adapt, named as PEFT's target_modules do. */
export type LoraTarget = "q_proj" | "k_proj" | "v_proj" | "o_proj" | "gate_proj" | "up_proj" | "down_proj";
export const LORA_TARGETS: readonly LoraTarget[] = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
];

export interface LoraConfig {
  rank: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
}

/**
 * One adapted projection: W' = W + (alpha / rank) * B A, as in PEFT.
 * Rows are in llama.cpp/GGUF order (the engine runs on GGUF-ordered weights), so for llama/mistral the
 * B rows of q_proj/k_proj differ from PEFT's Hugging Face order by the rotary permutation (see hf/names.ts).
 * a: [rank, in] row-major (PEFT lora_A.weight), b: [out, rank] row-major (PEFT lora_B.weight).
 */
export interface LoraPair {
  a: Float32Array;
  b: Float32Array;
  in: number;
  out: number;
}

export interface LoraWeights {
  config: LoraConfig;
  /** layers[i][target] for every adapted projection of layer i. */
  layers: Partial<Record<LoraTarget, LoraPair>>[];
}
